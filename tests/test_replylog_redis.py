"""The Redis reply log, against a Redis server of the test's own: a reply streamed here is read through
the log as another process reads it (a second backend on the same Redis, which does not have the
reply's transcript), with the same chunks and ids; writes are batched, never one per token; the log is
trimmed after the end; and a Redis that goes away costs the reply nothing but its readers elsewhere."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streaming.events import Finish, TextDelta, Usage
from streaming.exceptions import LogUnavailable
from streaming.models import Message
from streaming.providers.scripted import Pause, ScriptedProvider
from streaming.readers import RemoteReader
from streaming.replylog import Slice, reply_log
from streaming.replylog.redis import RedisReplyLog
from streaming.services import ChatInput, start_reply
from tests import replies
from tests.private_services import RedisServer, private_redis

pytestmark = pytest.mark.django_db(transaction=True)

KEEP = 60


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path) as server:
        yield server


@pytest.fixture
def log(server: RedisServer, settings: Any) -> RedisReplyLog:
    options = {"URL": server.url, "KEEP_SECONDS": KEEP, "FLUSH_SECONDS": 0.02}
    backend = "streaming.replylog.redis.RedisReplyLog"
    settings.STREAMING = {**settings.STREAMING, "REPLY_LOG": {"BACKEND": backend, "OPTIONS": options}}
    found = reply_log()
    assert isinstance(found, RedisReplyLog)
    return found


def elsewhere(server: RedisServer) -> RedisReplyLog:
    """The same log as another process sees it: none of this process's transcripts."""
    return RedisReplyLog({"URL": server.url})


def ask(user: Any) -> Any:
    return start_reply(user, ChatInput(None, "Hi", "scripted:model-a"))


def chunks_of(found: Slice) -> list[dict[str, Any]]:
    return [orjson.loads(data) for data in found.json_chunks()]


def read_to_end(remote: Any, after: int = -1) -> tuple[list[int], list[dict[str, Any]]]:
    ids: list[int] = []
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = remote.read(after, 1.0)
        if found is None:
            continue
        ids += range(found.first, found.next)
        got += chunks_of(found)
        after = found.next - 1
        if found.ended:
            return ids, got
    raise AssertionError("the log never ended")


def test_a_reply_is_read_through_the_log_by_another_process(
    user: Any, log: RedisReplyLog, server: Any
) -> None:
    ScriptedProvider.enqueue([TextDelta("Hel"), Pause(0.2), TextDelta("lo"), Pause(0.2), TextDelta("!")])
    reply = ask(user)
    local = replies.batches(reply)
    first = next(local) + next(local)  # start, then the first token
    remote = elsewhere(server).remote(reply.message_id)
    ids, got = read_to_end(remote)  # from the first chunk, then live until the end
    rest = [chunk for batch in local for chunk in batch]
    assert got == first + rest  # the same chunks...
    assert ids == list(range(len(got)))  # ...with the same ids
    assert "".join(c["delta"] for c in got if c["type"] == "text-delta") == "Hello!"
    _, tail = read_to_end(elsewhere(server).remote(reply.message_id), after=len(first) - 1)
    assert tail == rest  # after an id: only what came after it


def test_writes_are_batched_never_one_per_token(user: Any, log: RedisReplyLog, server: Any) -> None:
    script: list[Any] = []
    for n in range(400):
        script += [TextDelta(f"w{n} "), Pause(0.002)]
    ScriptedProvider.enqueue([*script, Usage(1, 400), Finish()])
    client = redis.Redis.from_url(server.url)
    client.config_resetstat()
    began = time.monotonic()
    replies.chunks(ask(user))
    took = time.monotonic() - began
    replies.settle()
    time.sleep(0.1)
    calls = int(client.info("commandstats")["cmdstat_xadd"]["calls"])
    assert calls <= took / 0.02 + 3, (calls, took)  # a write per flush at most, not 400
    _, got = read_to_end(elsewhere(server).remote(str(Message.objects.get(role="assistant").pk)))
    assert "".join(c["delta"] for c in got if c["type"] == "text-delta") == "".join(
        f"w{n} " for n in range(400)
    )


def test_the_log_is_trimmed_after_the_end(user: Any, log: RedisReplyLog, server: Any) -> None:
    reply = ask(user)
    replies.chunks(reply)
    replies.settle()
    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 5
    while (ttl := client.pttl(log.key(reply.message_id))) < 0 or ttl > KEEP * 1000:
        assert time.monotonic() < deadline, ttl
        time.sleep(0.05)
    assert 0 < ttl <= KEEP * 1000


def test_a_reader_elsewhere_keeps_a_reply_going_after_its_own_readers_left(
    user: Any, log: RedisReplyLog, server: Any, settings: Any
) -> None:
    settings.STREAMING = {**settings.STREAMING, "DISCONNECT_GRACE_SECONDS": 0.4}
    ScriptedProvider.enqueue([TextDelta("a"), Pause(1.5), TextDelta("b"), Finish()])
    reply = ask(user)
    local = replies.batches(reply)
    next(local)
    next(local)
    # A tab in another process reads it (it marks itself in the shared cache as it waits)...
    reader = RemoteReader(reply.message_id, elsewhere(server).remote(reply.message_id))
    assert reader.wait(1.0) is not None
    local.close()  # ...while the tab of this process goes
    got = replies.read(reader)
    assert got[-1]["messageMetadata"]["status"] == "complete"  # not cancelled after 0.4 s
    assert Message.objects.get(role="assistant").content == "ab"


def test_redis_going_away_costs_the_reply_nothing_but_its_readers_elsewhere(
    user: Any, log: RedisReplyLog, server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ScriptedProvider.enqueue(
        [TextDelta("a"), Pause(0.3), TextDelta("b"), Pause(0.3), TextDelta("c"), Finish()]
    )
    reply = ask(user)
    local = replies.batches(reply)
    got = next(local) + next(local)
    server.kill()
    with caplog.at_level(logging.WARNING, "streaming"):
        got += [chunk for batch in local for chunk in batch]
        with pytest.raises(LogUnavailable):
            elsewhere(server).remote(reply.message_id).read(-1, 0)
    assert "".join(c["delta"] for c in got if c["type"] == "text-delta") == "abc"
    assert got[-1]["messageMetadata"]["status"] == "complete"
    replies.settle()
    assert Message.objects.get(role="assistant").status == "complete"
    assert "the reply log in Redis is unreachable" in caplog.text
    server.start()  # it comes back: what was not copied is copied then
    _, remote_got = read_to_end(elsewhere(server).remote(reply.message_id))
    assert remote_got == got


def test_attaching_while_redis_is_down_is_a_json_503(
    user: Any, log: RedisReplyLog, server: Any, api: Any
) -> None:
    ScriptedProvider.enqueue([TextDelta("a"), Pause(5), Finish()])
    reply = ask(user)
    local = replies.batches(reply)
    next(local)
    server.kill()
    # (this process streams the reply: it reads its own transcript, Redis or not)
    assert api.get(f"/api/messages/{reply.message_id}/stream").status_code == 200
    log._transcripts.clear()  # as another process would: only Redis could serve it
    response = api.get(f"/api/messages/{reply.message_id}/stream")
    assert (response.status_code, response.json()["error"]["code"]) == (503, "log_unavailable")
    local.close()
