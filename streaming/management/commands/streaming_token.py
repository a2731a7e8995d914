"""``manage.py streaming_token <username>``: create an API token for a user and print it, once.

The token is alone on the last line of the output, so a script can take it with ``tail -n 1``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from streaming.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token (Authorization: Bearer <token>) for a user and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="Whose token it is: it acts as this user.")
        parser.add_argument("--name", default="manage.py streaming_token", help="What the token is for.")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not getattr(user, "is_active", True):
            raise CommandError(f"The user {username!r} is inactive: a token of theirs would open nothing.")
        token, raw = ApiToken.objects.create_token(user, name)
        self.stderr.write(
            f"Created the API token {token.name!r} ({token.prefix}…) for {username}. It is shown only now;"
            " send it as the header 'Authorization: Bearer <token>'. Revoke it in the admin."
        )
        self.stdout.write(raw)
