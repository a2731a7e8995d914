"""``manage.py mark_interrupted``: mark replies whose server process died as ``interrupted``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from streaming.conf import app_settings
from streaming.models import mark_stale_interrupted


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
        seconds = app_settings.stale_after_seconds if older_than is None else older_than
        count = mark_stale_interrupted(stale_after=seconds)
        self.stdout.write(f"Marked {count} stale repl{'y' if count == 1 else 'ies'} as interrupted.")
