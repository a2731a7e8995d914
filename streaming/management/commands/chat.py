"""``manage.py chat "Hello"``: stream a reply in the terminal, stored like any other conversation."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from streaming.exceptions import StreamingError
from streaming.services import ChatInput, start_reply
from streaming.streams import reply_chunks


class Command(BaseCommand):
    help = "Send a message and stream the reply to the terminal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("message")
        parser.add_argument(
            "--model", default=None, help="A provider:model id (default: the first configured)."
        )
        parser.add_argument("--user", default="demo", help="Whose conversation this is (default: demo).")
        parser.add_argument("--conversation", default=None, help="Continue this conversation (a UUID).")
        parser.add_argument(
            "--reasoning", action="store_true", help="Ask for reasoning where the model has it."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: options["user"]}).first()
        if user is None:
            raise CommandError(
                f"No user {options['user']!r}. Run 'manage.py demo --no-serve' or pass --user."
            )
        try:
            conversation = uuid.UUID(options["conversation"]) if options["conversation"] else None
        except ValueError:
            raise CommandError("--conversation must be a UUID.") from None
        chat = ChatInput(conversation, options["message"], options["model"], options["reasoning"])
        try:
            reply = start_reply(user, chat)
        except StreamingError as error:
            raise CommandError(error.message) from None
        for chunk in reply_chunks(reply):
            self._show(chunk)
        self.stdout.write("")
        self.stdout.write(self.style.HTTP_INFO(f"conversation {reply.conversation_id}"))

    def _show(self, chunk: dict[str, Any]) -> None:
        kind = chunk["type"]
        if kind in ("text-delta", "reasoning-delta"):
            text = chunk["delta"]
            self.stdout.write(self.style.HTTP_NOT_MODIFIED(text) if kind[0] == "r" else text, ending="")
            self.stdout.flush()
        elif kind == "reasoning-end":
            self.stdout.write("\n")
        elif kind == "error":
            self.stderr.write(f"\nerror ({chunk['code']}): {chunk['errorText']}")
        elif kind == "tool-input-available":
            arguments = json.dumps(chunk["input"], ensure_ascii=False)
            self.stdout.write(self.style.HTTP_INFO(f"\n[{chunk['toolName']}({arguments})]"))
        elif kind in ("tool-output-available", "tool-output-error", "tool-output-denied"):
            said = chunk.get("errorText") or json.dumps(chunk.get("output"), ensure_ascii=False)
            said = "denied" if kind == "tool-output-denied" else said
            self.stdout.write(self.style.HTTP_INFO(f"[→ {said[:300]}]"))
        elif kind == "tool-approval-request":
            self.stdout.write(
                self.style.WARNING("[waits for approval: answer it on the chat page or the API]")
            )
        elif kind in ("finish", "message-metadata"):
            meta = chunk["messageMetadata"]
            usage = meta.get("usage") or {}
            tokens = f"{usage.get('inputTokens', 0)} in / {usage.get('outputTokens', 0)} out"
            estimated = " (estimated)" if usage.get("estimated") else ""
            self.stdout.write(
                f"\n\n[{meta['status']}] {tokens}{estimated}, first token {meta['ttftMs']} ms,"
                f" {meta['durationMs']} ms in all"
            )
