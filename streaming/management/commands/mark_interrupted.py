"""``manage.py mark_interrupted``: take over replies whose server process died (``interrupted``).

Every process that streams or serves the API does this on its own every few seconds; the command is
for a deployment whose servers are all down, or for an operator who wants it done now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from streaming.models import Message
from streaming.upkeep import take_over_stale


class Command(BaseCommand):
    help = "Mark 'streaming' replies that no live process has touched recently as 'interrupted'."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            help="Seconds since the reply was last touched (default: STREAMING['STALE_AFTER_SECONDS']).",
        )

    def handle(self, *args: Any, older_than: float | None, **options: Any) -> None:
        count = take_over_stale(Message.objects.all(), older_than)
        self.stdout.write(f"Marked {count} stale repl{'y' if count == 1 else 'ies'} as interrupted.")
