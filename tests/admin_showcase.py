"""A month of made-up usage for the admin's browser tests and screenshots, written into a server's database.

Run as ``python -m tests.admin_showcase`` with the server's environment (``tests.servers.server_env``): it
adds users, conversations with their messages (one holding two lines of code thousands of characters long, a
few failed replies) and priced usage rows over the last 30 days: costs from a fraction of a cent to dollars,
an unpriced model and a free one, so every cost format and state shows. Deterministic: the same rows each run.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

MODELS = [  # (provider, model, input tokens, output tokens, ttft ms): typical calls
    ("openai", "gpt-4.1-mini", 3_000, 400, 420),
    ("anthropic", "claude-haiku-4-5", 1_200, 150, 610),
    ("gemini", "gemini-2.5-flash", 900, 700, 380),
    ("openai", "gpt-4.1", 40_000, 2_000, 900),
    ("openai", "in-house-model", 2_000, 300, 250),  # unpriced
    ("demo", "echo", 100, 80, 30),  # free
]
USERS = ["alice", "bob", "carol", "dmitri-with-a-long-username"]
LONG_LINE = "result = compute(" + ", ".join(f"argument_{i}" for i in range(220)) + ")"
NO_SPACES = "key = '" + "0123456789abcdef" * 150 + "'"  # a 2,400-character word: wraps anywhere
DAYS = 30


def seed() -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from streaming.models import Conversation, Usage

    chance = random.Random(16)
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    people = [get_user_model().objects.get_or_create(username=name)[0] for name in USERS]
    usage = []
    for day in range(DAYS):
        for index, person in enumerate(people):
            at = now - timedelta(days=day, hours=index)
            conversation = Conversation.objects.create(
                owner=person, title=f"Question {day} from {person.username}", model="openai:gpt-4.1-mini",
                created_at=at, updated_at=at,
            )  # fmt: skip
            for call in range(chance.randint(1, 3)):
                long = (day, index, call) == (0, 0, 0)
                text = f"{LONG_LINE}\n{NO_SPACES}" if long else f"Answer {call} about day {day}."
                model = chance.choice(MODELS[: 4 if day % 3 else 6])
                sent = at + timedelta(minutes=call * 3)
                usage.append(exchange(conversation, model, text, sent, chance, cached=call > 0))
    Usage.objects.bulk_create(usage)


def exchange(conversation: Any, model: tuple[str, str, int, int, int], text: str, sent: datetime,
             chance: random.Random, cached: bool) -> Any:  # fmt: skip
    """A user's question and the reply of ``model`` (failed now and then), with the reply's usage row to
    store: tokens and time to first token around the model's typical call, priced as a reply is."""
    from streaming.costs import price_call
    from streaming.events import Usage as Counts
    from streaming.models import Message, Usage

    provider, name, base_in, base_out, ttft = model
    failed = chance.random() < 0.08
    counts = Counts(
        input_tokens=int(base_in * chance.uniform(0.5, 1.5)),
        output_tokens=int(base_out * chance.uniform(0.3, 1.7)),
        cached_input_tokens=int(base_in * 0.25) if cached else 0,
        estimated=failed,
    )
    Message.objects.create(conversation=conversation, role="user", content="Tell me more.", created_at=sent)
    reply = Message.objects.create(
        conversation=conversation, role="assistant", content=text, model=f"{provider}:{name}",
        status="error" if failed else "complete", error_code="upstream" if failed else "",
        error_text="The provider failed." if failed else "", created_at=sent + timedelta(seconds=2),
        ttft_ms=int(ttft * chance.uniform(0.6, 2.5)),
    )  # fmt: skip
    return Usage(
        user=conversation.owner, conversation=conversation, message=reply, provider=provider, model=name,
        ttft_ms=reply.ttft_ms, duration_ms=(reply.ttft_ms or 0) + 900, created_at=sent, priced_at=sent,
        **counts.as_dict(), **price_call(counts, provider, name, sent).as_fields(),
    )  # fmt: skip


if __name__ == "__main__":
    import django

    django.setup()
    seed()
