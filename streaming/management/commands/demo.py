"""``manage.py demo``: migrate, create a demo superuser once, and serve on 127.0.0.1:8000.

The user is a superuser, so that the same login opens the admin's cost review.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Set up the database, create a demo superuser (printing its password once) and serve the app."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="Where to serve.")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--no-serve", action="store_true", help="Set up only; do not start the server.")

    def handle(self, *args: Any, addrport: str, username: str, no_serve: bool, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database is up to date.")
        User = get_user_model()
        if not User.objects.filter(**{User.USERNAME_FIELD: username}).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(**{User.USERNAME_FIELD: username}, email="", password=password)
            self.stdout.write(
                self.style.SUCCESS(f"Created the superuser {username!r} with password: {password}")
            )
            self.stdout.write("This password is shown only now.")
        else:
            self.stdout.write(
                f"The user {username!r} exists already; its password was printed when it was made."
                f" To set a new one: python manage.py changepassword {username}"
            )
        if not no_serve:
            self.stdout.write(
                f"Open http://{addrport}/ and log in; the admin is at http://{addrport}/admin/."
            )
            call_command("runserver", addrport, use_reloader=False)
