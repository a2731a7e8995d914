"""The service layer: context, persistence, constant queries, retries and fallbacks, stops, stale replies."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from streaming import database, streams, upkeep
from streaming.conf import app_settings
from streaming.events import Finish, ReasoningDelta, TextDelta, Usage
from streaming.exceptions import (
    Overloaded,
    ProviderAuthError,
    RateLimited,
    ReplyInProgress,
    UpstreamError,
)
from streaming.models import Conversation, Message
from streaming.models import Usage as UsageRow
from streaming.providers.scripted import Pause, ScriptedProvider, text_reply
from streaming.replylog import reply_log
from streaming.services import ChatInput, start_reply
from streaming.stopping import request_stop
from tests import replies
from tests.queries import Queries, all_queries

pytestmark = pytest.mark.django_db(transaction=True)


def ask(user: Any, text: str = "Hi", model: str = "scripted:model-a", **kwargs: Any) -> Any:
    return start_reply(user, ChatInput(kwargs.pop("conversation", None), text, model, **kwargs))


def run(reply: Any) -> list[dict[str, Any]]:
    return replies.chunks(reply)


def test_a_reply_costs_the_same_queries_whatever_its_length(user: Any) -> None:
    counts = []
    for tokens in (10, 2000):
        script = text_reply(tokens)
        for at in range(tokens - 200, 0, -200):  # pauses: many batches, not one merged delta
            script.insert(at, Pause(0.01))
        ScriptedProvider.enqueue(script)
        with all_queries() as queries:
            chunks = run(database.run(partial(ask, user, f"{tokens} tokens please")))
        deltas = [c["delta"] for c in chunks if c["type"] == "text-delta"]
        assert "".join(deltas) == "".join(f"w{i} " for i in range(tokens))
        assert len(deltas) >= (tokens // 200 if tokens > 200 else 1)
        counts.append(queries.work().kinds())
    assert counts[0] == counts[1]
    # Start: the budget read, then a transaction (the conversation; both messages in one INSERT).
    # Save: the price lookup, then a transaction (the reply; its usage row; the conversation).
    # (SQLite adds a BEGIN to each transaction, PostgreSQL none: tests.queries counts the work.)
    assert counts[0] == {"SELECT": 2, "INSERT": 3, "UPDATE": 2}, queries.kinds()


def test_the_first_chunk_leaves_before_the_provider_is_called(user: Any) -> None:
    reply = ask(user)
    batches = replies.batches(reply)
    first = next(batches)
    assert [c["type"] for c in first] == ["start", "start-step"]
    assert ScriptedProvider.calls == []
    assert [c["type"] for b in batches for c in b][-1] == "finish"
    assert len(ScriptedProvider.calls) == 1


def test_history_is_the_stored_conversation(user: Any) -> None:
    run(ask(user, "First question"))
    conversation = Conversation.objects.get()
    ScriptedProvider.enqueue(text_reply(2))
    run(ask(user, "Second question", conversation=conversation.id))

    messages = ScriptedProvider.calls[1].request.messages
    assert [(m.role, m.content) for m in messages] == [
        ("user", "First question"),
        ("assistant", "w0 w1 w2 "),
        ("user", "Second question"),
    ]
    assert conversation.messages.count() == 4


def test_system_prompt_and_history_limit(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "SYSTEM_PROMPT": "Be brief.", "HISTORY_MESSAGES": 2}
    run(ask(user, "one"))
    conversation = Conversation.objects.get()
    run(ask(user, "two", conversation=conversation.id))
    run(ask(user, "three", conversation=conversation.id))

    messages = ScriptedProvider.calls[2].request.messages
    assert [m.content for m in messages] == ["Be brief.", "two", "w0 w1 w2 ", "three"]


def test_title_comes_from_the_first_message(user: Any) -> None:
    run(ask(user, "  How do   I **stream**\nreplies in `Django`? " + "and more words " * 10))
    title = Conversation.objects.get().title
    assert title.startswith("How do I stream replies in Django? and more")
    assert len(title) <= 80 and title.endswith("words…")


def test_regenerate_keeps_the_last_reply_as_an_earlier_version(user: Any) -> None:
    run(ask(user, "Question"))
    conversation = Conversation.objects.get()
    first_reply = conversation.messages.get(role="assistant")
    ScriptedProvider.enqueue([TextDelta("Another answer"), Finish()])
    run(start_reply(user, ChatInput(conversation.id, "", "scripted:model-a", regenerate=True)))

    question = conversation.messages.get(role="user")
    replies = list(conversation.messages.filter(role="assistant").order_by("created_at"))
    assert [(r.content, r.parent_id) for r in replies] == [
        (first_reply.content, question.pk),
        ("Another answer", question.pk),
    ]
    assert [m.content for m in ScriptedProvider.calls[1].request.messages] == ["Question"]
    assert UsageRow.objects.count() == 2


def test_a_second_reply_while_one_streams_is_refused(user: Any) -> None:
    reply = ask(user)
    with pytest.raises(ReplyInProgress):
        ask(user, conversation=uuid.UUID(reply.conversation_id))


def test_retries_transient_errors_before_the_first_token(user: Any) -> None:
    ScriptedProvider.enqueue([RateLimited(retry_after=0.01)])
    ScriptedProvider.enqueue([Overloaded()])
    ScriptedProvider.enqueue([TextDelta("ok"), Usage(1, 1), Finish()])
    chunks = run(ask(user))

    assert chunks[-1]["messageMetadata"]["status"] == "complete"
    assert len(ScriptedProvider.calls) == 3
    assert UsageRow.objects.count() == 1


def test_falls_back_to_the_next_model_and_records_who_answered(user: Any, settings: Any) -> None:
    settings.STREAMING = {
        **settings.STREAMING,
        "FALLBACKS": {"scripted:model-a": ["backup:model-b"]},
        "RETRY_ATTEMPTS": 2,
    }
    ScriptedProvider.enqueue([UpstreamError()])
    ScriptedProvider.enqueue([UpstreamError()])
    ScriptedProvider.enqueue([TextDelta("from backup"), Usage(2, 2), Finish()])
    run(ask(user))

    assert [(c.provider, c.request.model) for c in ScriptedProvider.calls] == [
        ("scripted", "model-a"),
        ("scripted", "model-a"),
        ("backup", "model-b"),
    ]
    message = Message.objects.get(role="assistant")
    assert (message.model, message.content) == ("backup:model-b", "from backup")
    usage = UsageRow.objects.get()
    assert (usage.provider, usage.model) == ("backup", "model-b")


def test_a_refused_call_is_not_retried_and_the_chain_ends_with_its_error(user: Any) -> None:
    ScriptedProvider.enqueue([ProviderAuthError()])
    chunks = run(ask(user))

    assert len(ScriptedProvider.calls) == 1
    assert [c["code"] for c in chunks if c["type"] == "error"] == ["auth"]
    assert UsageRow.objects.count() == 0  # no tokens, no usage row


def test_attempts_are_bounded(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "RETRY_ATTEMPTS": 3}
    for _ in range(10):
        ScriptedProvider.enqueue([Overloaded()])
    chunks = run(ask(user))
    assert len(ScriptedProvider.calls) == 3
    assert chunks[-1]["messageMetadata"]["status"] == "error"


def stop_soon(message_id: str, delay: float = 0.1) -> None:
    threading.Timer(delay, request_stop, args=(message_id,)).start()


def test_stop_keeps_the_partial_reply_as_cancelled(user: Any) -> None:
    ScriptedProvider.enqueue([TextDelta("Partial "), Pause(60), TextDelta("never")])
    reply = ask(user)
    stop_soon(reply.message_id)
    started = time.monotonic()
    chunks = run(reply)

    assert time.monotonic() - started < 30  # not the provider's minute of silence
    assert [c["type"] for c in chunks][-3:] == ["text-end", "message-metadata", "abort"]
    assert chunks[-1] == {"type": "abort", "reason": "stopped"}
    metadata = chunks[-2]["messageMetadata"]
    assert metadata["status"] == "cancelled"
    assert metadata["usage"]["estimated"] is True
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content, message.error_code) == ("cancelled", "Partial ", "stopped")
    assert UsageRow.objects.get().estimated is True


def test_stop_on_the_async_path_closes_the_provider(user: Any) -> None:
    ScriptedProvider.enqueue([TextDelta("Partial "), Pause(5), TextDelta("never")])
    reply = ask(user)

    async def consume() -> list[str]:
        stop_soon(reply.message_id)
        return [c["type"] async for batch in replies.abatches(reply) for c in batch]

    kinds = asyncio.run(consume())
    assert kinds[-1] == "abort"
    assert ScriptedProvider.calls[0].closed_early
    assert Message.objects.get(role="assistant").status == "cancelled"


def test_a_consumer_that_goes_away_with_no_grace_leaves_a_cancelled_reply(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "DISCONNECT_GRACE_SECONDS": 0}
    ScriptedProvider.enqueue([TextDelta("a "), TextDelta("b "), Pause(5), TextDelta("c")])
    batches = replies.batches(ask(user))
    next(batches)  # start
    next(batches)  # first text
    batches.close()  # the client disconnected
    replies.settle()

    message = Message.objects.get(role="assistant")
    assert message.status == "cancelled"
    assert message.error_code == "disconnected"
    assert message.content.startswith("a ")
    assert UsageRow.objects.get().estimated is True
    assert ScriptedProvider.calls[0].closed_early


def test_a_reply_nobody_comes_back_for_is_cancelled_after_the_grace(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "DISCONNECT_GRACE_SECONDS": 0.5}
    ScriptedProvider.enqueue([TextDelta("a "), Pause(0.2), TextDelta("b "), Pause(30), TextDelta("c")])
    batches = replies.batches(ask(user))
    next(batches)
    next(batches)
    batches.close()
    left = time.monotonic()
    time.sleep(0.3)
    message = Message.objects.get(role="assistant")
    assert message.status == "streaming"  # it goes on, waiting for a reader
    replies.settle()
    waited = time.monotonic() - left
    message.refresh_from_db()
    assert (message.status, message.error_code, message.content) == ("cancelled", "disconnected", "a b ")
    assert waited >= 0.5
    assert ScriptedProvider.calls[0].closed_early  # the upstream call was closed
    assert UsageRow.objects.get().estimated is True


def test_a_reader_that_attaches_within_the_grace_gets_the_whole_reply(user: Any) -> None:
    ScriptedProvider.enqueue(
        [TextDelta("a "), Pause(0.3), TextDelta("b "), Pause(0.2), TextDelta("c"), Finish()]
    )
    reply = ask(user)
    batches = replies.batches(reply)
    next(batches)
    next(batches)
    batches.close()  # a reload: the first reader goes...
    message = Message.objects.get(pk=reply.message_id)
    reader = streams.attach(message)  # ...and the reloaded page attaches from the first chunk
    got = replies.read(reader)
    assert [c["type"] for c in got][:2] == ["start", "start-step"]
    assert "".join(c["delta"] for c in got if c["type"] == "text-delta") == "a b c"
    assert got[-1]["messageMetadata"]["status"] == "complete"
    ids = replies.read_ids(streams.attach(message))
    assert ids == list(range(len(ids)))  # a reader after the end reads the same log, ids and all


def test_a_reply_with_no_grace_limit_finishes_without_readers(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "DISCONNECT_GRACE_SECONDS": None}
    ScriptedProvider.enqueue([TextDelta("a "), Pause(0.3), TextDelta("b"), Finish()])
    batches = replies.batches(ask(user))
    next(batches)
    next(batches)
    batches.close()
    replies.settle()
    message = Message.objects.get(role="assistant")
    assert (message.status, message.content) == ("complete", "a b")
    assert not ScriptedProvider.calls[0].closed_early


def test_stale_streaming_replies_become_interrupted(user: Any) -> None:
    reply = ask(user)  # never streamed: as if its process died
    Message.objects.filter(pk=reply.message_id).update(updated_at=timezone.now() - timedelta(minutes=10))
    call_command("mark_interrupted")
    assert Message.objects.get(pk=reply.message_id).status == "interrupted"


def test_a_stale_reply_does_not_block_the_conversation(user: Any) -> None:
    reply = ask(user)
    Message.objects.filter(pk=reply.message_id).update(updated_at=timezone.now() - timedelta(minutes=10))
    run(ask(user, "again", conversation=uuid.UUID(reply.conversation_id)))
    assert Message.objects.get(pk=reply.message_id).status == "interrupted"


def test_a_live_reply_renews_its_lease(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "STALE_AFTER_SECONDS": 0.4}
    ScriptedProvider.enqueue([TextDelta("slow"), Pause(0.6), TextDelta(" reply"), Finish()])
    reply = ask(user)
    before = Message.objects.get(pk=reply.message_id).updated_at
    batches = replies.batches(reply)
    next(batches)
    next(batches)
    renewed = wait_for(lambda: Message.objects.filter(pk=reply.message_id, updated_at__gt=before).first())
    assert renewed.status == "streaming"  # renewed, not taken for a dead one
    list(batches)
    assert Message.objects.get(pk=reply.message_id).status == "complete"


def test_leases_are_renewed_in_one_query_whatever_the_number_of_replies(user: Any, settings: Any) -> None:
    for _ in range(5):
        ScriptedProvider.enqueue([TextDelta("x"), Pause(2), Finish()])
    started = [replies.batches(ask(user)) for _ in range(5)]
    for batches in started:
        next(batches)
        next(batches)
    with count_upkeep() as queries:
        upkeep.upkeep()
    assert queries.kinds() == {"UPDATE": 1, "SELECT": 1}  # the renewal; the look for dead ones
    for batches in started:
        batches.close()


def test_a_log_that_dies_with_its_process_is_checkpointed(
    user: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the in-memory log, the text so far is stored now and then: a reply taken over after its
    process died keeps what its user had read, up to one checkpoint behind."""
    settings.STREAMING = {**settings.STREAMING, "STALE_AFTER_SECONDS": 0.4}
    monkeypatch.setattr(upkeep, "CHECKPOINT_SECONDS", 0.1)
    ScriptedProvider.enqueue([TextDelta("slow"), Pause(1.0), TextDelta(" reply"), Finish()])
    reply = ask(user)
    batches = replies.batches(reply)
    next(batches)
    next(batches)
    saved = wait_for(lambda: Message.objects.filter(pk=reply.message_id, content="slow").first())
    assert saved.status == "streaming"
    list(batches)


@contextlib.contextmanager
def count_upkeep() -> Iterator[Queries]:
    queries = Queries()

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield queries
    queries[:] = queries.work()


def wait_for(find: Any, timeout: float = 5.0) -> Any:
    """What ``find()`` returns once it returns something (a write made on a database thread)."""
    deadline = time.monotonic() + timeout
    while (found := find()) is None:
        assert time.monotonic() < deadline, "not written in time"
        time.sleep(0.02)
    return found


def test_a_lease_renewal_does_not_hold_the_stream_up(user: Any, settings: Any) -> None:
    """The renewal is written in the background: with every database thread busy (a thousand replies
    renewing at once, a slow database), the tokens go on and the renewal waits its turn."""
    settings.STREAMING = {**settings.STREAMING, "STALE_AFTER_SECONDS": 0.4}  # a renewal every 0.1 s
    ScriptedProvider.enqueue(
        [TextDelta("a"), Pause(0.3), TextDelta("b"), Pause(0.3), TextDelta("c"), Finish()]
    )
    reply = ask(user)
    batches = replies.batches(reply)
    next(batches)  # start
    release = threading.Event()
    for _ in range(app_settings.database_threads):
        database.threads.submit(lambda: release.wait(60))
    try:
        started, texts = time.monotonic(), ""
        while "c" not in texts:
            texts += "".join(c["delta"] for c in next(batches) if c["type"] == "text-delta")
        assert texts == "abc"
        assert time.monotonic() - started < 30  # not the minute the database threads are held
        assert Message.objects.get(pk=reply.message_id).content == ""  # no renewal written yet
    finally:
        release.set()
    assert [c["type"] for c in next(batches)][-1] == "finish"  # saved once the database was free again
    message = Message.objects.get(pk=reply.message_id)
    assert (message.status, message.content) == ("complete", "abc")


def test_a_fallback_without_reasoning_is_not_asked_for_it(user: Any, settings: Any) -> None:
    settings.STREAMING = {**settings.STREAMING, "FALLBACKS": {"scripted:thinker": ["backup:model-b"]}}
    ScriptedProvider.enqueue([ProviderAuthError()])
    ScriptedProvider.enqueue([TextDelta("plain"), Finish()])
    run(ask(user, model="scripted:thinker", reasoning=True))

    assert [c.request.reasoning for c in ScriptedProvider.calls] == [True, False]


@pytest.mark.django_db(transaction=True)
def test_replies_starting_at_once_all_start(user: Any) -> None:
    """Under ASGI each request has its own thread: many replies starting at once all start. On SQLite
    they queue for its single writer instead of failing with "database is locked" (or "table is
    locked" in memory); PostgreSQL has concurrent writers."""
    started: list[Any] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            started.append(start_reply(user, ChatInput(None, "At once", "scripted:model-a")))
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert len(started) == 24
    assert Message.objects.filter(status=Message.Status.STREAMING).count() == 24


def test_a_reply_whose_log_is_gone_replays_from_storage(user: Any) -> None:
    ScriptedProvider.enqueue(
        [ReasoningDelta("Think"), TextDelta("Hel"), TextDelta("lo"), Usage(4, 2), Finish()]
    )
    reply = ask(user, model="scripted:thinker", reasoning=True)
    live = run(reply)
    replies.settle()
    reply_log()._transcripts.clear()  # (kept a few minutes after the end; a restart drops it)
    message = Message.objects.get(pk=reply.message_id)
    replayed = replies.read(streams.attach(message, after=7))  # an id is no use: it replays whole
    assert [c["type"] for c in replayed] == [
        "start", "start-step",
        "reasoning-start", "reasoning-delta", "reasoning-end",
        "text-start", "text-delta", "text-end",
        "finish-step", "finish",
    ]  # fmt: skip
    assert replayed[0] == live[0]  # the same ids of message, conversation and question
    assert [c.get("delta") for c in replayed if "delta" in c] == ["Think", "Hello"]
    assert replayed[-1] == live[-1]  # the stored usage, cost and timings
