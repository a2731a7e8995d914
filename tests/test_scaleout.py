"""Several server processes behind one database and cache, as behind a load balancer: an ASGI one
(uvicorn) and a WSGI one (gunicorn gthread) on loopback (``tests/cluster.py``).

- A reply streamed by one process is stopped through the other, both ways, within a second: with
  the embedded defaults on one machine (one SQLite file, the demo's file cache) and with PostgreSQL
  and Redis (``DATABASE_URL``, ``REDIS_URL``: CI's scale-out leg; skipped when neither is set, and
  required, through ``require()``, when either is).
- With PostgreSQL and Redis: 50 concurrent replies spread over both processes all end ``complete``
  with one usage row each; a server killed mid-reply leaves the reply ``interrupted`` once stale
  (``manage.py mark_interrupted`` or a read marks it), and the conversation goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from streaming.providers.demo import REPLY
from tests.cluster import Cluster, fresh_database, reachable, running_cluster, scaleout_services
from tests.conftest import require
from tests.servers import LiveServer, Received, available, stream_events
from tests.socket_client import ENDINGS, frames_until, open_socket, send

pytestmark = pytest.mark.servers

RATE = 25  # demo tokens per second
STALE_AFTER = 3.0  # seconds before an untouched reply counts as interrupted (its lease: a quarter of it)
#: Each server keeps at most this many database connections (streaming.database), closed after IDLE s.
DATABASE_THREADS = 2
IDLE = 1.0
GRACE = 2.0  # seconds a reply whose client left waits for another reader
ENV = {
    "STREAMING_DEMO_TOKENS_PER_SECOND": str(RATE),
    "STREAMING_DISCONNECT_GRACE_SECONDS": str(GRACE),
    "STREAMING_STALE_AFTER_SECONDS": str(STALE_AFTER),
    "STREAMING_DATABASE_THREADS": str(DATABASE_THREADS),
    "STREAMING_DATABASE_IDLE_SECONDS": str(IDLE),
}
LONG = " ".join(f"word{n}" for n in range(100))  # the demo quotes it: about 7 s at RATE
BACKENDS = ["embedded", pytest.param("scaleout", marks=pytest.mark.scaleout)]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require(available("uvicorn") and available("gunicorn"), "uvicorn and gunicorn are needed")
    with running_cluster(tmp_path_factory.mktemp("embedded"), ENV) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def scaleout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not (os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL")):
        # Not a scale-out run (CI runs these in its PostgreSQL + Redis leg): nothing to require here.
        pytest.skip("set DATABASE_URL (PostgreSQL) and REDIS_URL to run the scale-out tests")
    services = scaleout_services()
    require(
        services is not None and reachable(*services), "PostgreSQL at DATABASE_URL and Redis at REDIS_URL"
    )
    assert services is not None
    database_url, redis_url = services
    env = {**ENV, "REDIS_URL": redis_url}
    with (
        fresh_database(database_url) as url,
        running_cluster(tmp_path_factory.mktemp("scaleout"), {**env, "DATABASE_URL": url}, url) as cluster,
    ):
        yield cluster


def demo_reply(message: str) -> str:
    return REPLY.format(words=" ".join(message.split()))


def chat(message: str, conversation: str | None = None) -> dict[str, Any]:
    return {"message": message, "model": "demo:echo", "conversation": conversation}


def until(events: Iterator[Received], kind: str) -> list[Received]:
    received = [next(events)]
    while received[-1].type != kind:
        received.append(next(events))
    return received


def assistant_messages(client: httpx.Client, conversation: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/conversations/{conversation}")
    assert response.status_code == 200
    return [m for m in response.json()["messages"] if m["role"] == "assistant"]


# -- stop from any process ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("streamer", ["asgi", "wsgi"])
def test_a_reply_streamed_by_one_process_is_stopped_through_the_other(
    request: pytest.FixtureRequest, backend: str, streamer: str
) -> None:
    cluster: Cluster = request.getfixturevalue(backend)
    streaming, stopping = (cluster.asgi, cluster.wsgi) if streamer == "asgi" else (cluster.wsgi, cluster.asgi)
    with (
        streaming.log_on_failure(),
        stopping.log_on_failure(),
        cluster.client(streaming) as client,
        cluster.client(stopping) as other,
    ):
        started = time.monotonic()
        with client.stream("POST", "/api/chat", json=chat(LONG)) as response:
            assert response.status_code == 200
            events = stream_events(response, started)
            opening = until(events, "text-delta")
            asked = time.monotonic()
            stopped = other.post(f"/api/messages/{opening[0].event['messageId']}/stop")
            rest = list(events)

        assert stopped.status_code == 202
        assert [r.type for r in rest][-3:] == ["message-metadata", "abort", "[DONE]"]
        # Long before the reply's 7 s would have ended (a generous bound: a loaded machine took 1.3 s).
        assert started + rest[-2].at - asked < 3.5
        conversation = opening[0].event["messageMetadata"]["conversationId"]
        [message] = assistant_messages(other, conversation)
    assert message["status"] == "cancelled"
    assert message["content"] and demo_reply(LONG).startswith(message["content"])
    assert len(message["content"]) < len(demo_reply(LONG))  # stopped midway


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_websocket_reply_is_stopped_through_the_wsgi_process(
    request: pytest.FixtureRequest, backend: str
) -> None:
    cluster: Cluster = request.getfixturevalue(backend)
    with (
        cluster.asgi.log_on_failure(),
        cluster.wsgi.log_on_failure(),
        open_socket(cluster.asgi.url, cluster.cookies) as socket,
        cluster.client(cluster.wsgi) as other,
    ):
        send(socket, {"type": "chat", **chat(LONG)})
        opening = frames_until(socket, "text-delta")
        asked = time.monotonic()
        stopped = other.post(f"/api/messages/{opening[0][1]['messageId']}/stop")
        ending = frames_until(socket, *ENDINGS)

        assert stopped.status_code == 202
        assert ending[-1][1] == {"type": "abort", "reason": "stopped"}
        assert ending[-1][0] - asked < 3.5  # long before the reply's 7 s would have ended
        [message] = assistant_messages(other, opening[0][1]["messageMetadata"]["conversationId"])
    assert message["status"] == "cancelled"
    assert len(message["content"]) < len(demo_reply(LONG))  # stopped midway


# -- resume through any process -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("streamer", ["asgi", "wsgi"])
def test_a_reply_generated_in_one_process_is_resumed_through_the_other(
    request: pytest.FixtureRequest, backend: str, streamer: str
) -> None:
    """A reload that reaches the other process: with the Redis reply log it goes on from the last id it
    had, live; with the in-memory log (one machine, no Redis) it waits for the reply to be stored and
    replays it whole, from ``start``."""
    cluster: Cluster = request.getfixturevalue(backend)
    generating, resuming = (
        (cluster.asgi, cluster.wsgi) if streamer == "asgi" else (cluster.wsgi, cluster.asgi)
    )
    with (
        generating.log_on_failure(),
        resuming.log_on_failure(),
        cluster.client(generating) as client,
        cluster.client(resuming) as other,
    ):
        with client.stream("POST", "/api/chat", json=chat(LONG)) as response:
            events = stream_events(response, time.monotonic())
            seen = until(events, "text-delta")
            seen += [next(events) for _ in range(5)]
        last = seen[-1].id
        assert last is not None
        path = f"/api/messages/{seen[0].event['messageId']}/stream"
        with other.stream("GET", path, headers={"Last-Event-ID": str(last)}) as response:
            assert response.status_code == 200
            rest = [r for r in stream_events(response, time.monotonic()) if r.type != "ping"]

    seen_text = "".join(r.event["delta"] for r in seen if r.type == "text-delta")
    rest_text = "".join(r.event["delta"] for r in rest if r.type == "text-delta")
    assert rest[-2].event["messageMetadata"]["status"] == "complete"
    if backend == "scaleout":
        assert rest[0].id == last + 1
        assert seen_text + rest_text == demo_reply(LONG)
    else:
        assert rest[0].type == "start"  # a stored replay: the client replaces what it had
        assert rest_text == demo_reply(LONG)


# -- many replies at once -----------------------------------------------------------------------------


def one_reply(cluster: Cluster, server: LiveServer, message: str) -> tuple[int, list[Received]]:
    with (
        cluster.client(server, timeout=60) as client,
        client.stream("POST", "/api/chat", json=chat(message)) as response,
    ):
        return response.status_code, list(stream_events(response, time.monotonic()))


@pytest.mark.scaleout
def test_fifty_concurrent_replies_over_both_processes_all_complete_once(scaleout: Cluster) -> None:
    cluster = scaleout
    servers = [cluster.asgi, cluster.wsgi]
    messages = [f"Concurrent reply number {n} of fifty, spread over two server processes" for n in range(50)]
    began = time.monotonic()
    with cluster.asgi.log_on_failure(), cluster.wsgi.log_on_failure(), ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda n: one_reply(cluster, servers[n % 2], messages[n]), range(50)))
        took = time.monotonic() - began

        first_tokens, finishes, replies = [], [], {}
        for message, (status, received) in zip(messages, results, strict=True):
            assert status == 200
            assert [r.type for r in received][-2:] == ["finish", "[DONE]"]
            finish = received[-2].event
            assert finish["messageMetadata"]["status"] == "complete"
            text = "".join(r.event["delta"] for r in received if r.type == "text-delta")
            assert text == demo_reply(message)
            replies[uuid.UUID(received[0].event["messageId"])] = message
            first_tokens.append(next(r.at for r in received if r.type == "text-delta"))
            finishes.append(received[-2].at)

    assert len(replies) == 50
    rows = cluster.query(
        "SELECT m.id, m.status, m.content, m.conversation_id,"
        " (SELECT count(*) FROM streaming_usage u WHERE u.message_id = m.id)"
        " FROM streaming_message m WHERE m.id = ANY(%s)",
        [list(replies)],
    )
    assert len(rows) == 50
    for message_id, status, content, _, usage_rows in rows:
        assert (status, content, usage_rows) == ("complete", demo_reply(replies[message_id]), 1)
    conversations = [row[3] for row in rows]
    assert len(set(conversations)) == 50
    [(stored, usage)] = cluster.query(
        "SELECT (SELECT count(*) FROM streaming_message WHERE conversation_id = ANY(%s)),"
        " (SELECT count(*) FROM streaming_usage WHERE conversation_id = ANY(%s))",
        [conversations, conversations],
    )
    assert (stored, usage) == (100, 50)  # a user message and a reply each: nothing lost or duplicated
    # They streamed at once: every reply had its first token before the first one finished.
    assert max(first_tokens) < min(finishes), f"50 replies took {took:.1f}s"
    # And the servers keep no database connection once they have been idle a while (ASGI once leaked
    # one per request).
    assert wait_for_no_connections(cluster) == 0


def wait_for_no_connections(cluster: Cluster) -> int:
    """The servers' database connections once they are gone, or after a while: how many are left. (A
    reply whose client left goes on for its grace period; a process keeps up its leases and takeovers
    for a lease period after its last reply or request; then its database threads idle out.)"""
    deadline = time.monotonic() + GRACE + STALE_AFTER + IDLE + 5
    while (held := server_connections(cluster)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return held


def server_connections(cluster: Cluster) -> int:
    [(count,)] = cluster.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return int(count)


@pytest.mark.scaleout
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_open_streams_hold_no_database_connection(scaleout: Cluster, kind: str) -> None:
    """A reply streams for minutes: it must not keep one of PostgreSQL's few connections meanwhile
    (100 by default), or a hundred open chats would lock everyone else out of the database. A server
    holds at most its DATABASE_THREADS connections, however many replies stream."""
    cluster = scaleout
    server = cluster.asgi if kind == "asgi" else cluster.wsgi
    streams = 3 * DATABASE_THREADS
    assert wait_for_no_connections(cluster) == 0  # (the other server's, from an earlier test, closed)
    with server.log_on_failure(), contextlib.ExitStack() as stack:
        readers = []  # (a reader dropped would close its response: the stream must stay open)
        for n in range(streams):
            client = stack.enter_context(cluster.client(server))
            response = stack.enter_context(client.stream("POST", "/api/chat", json=chat(f"{n} {LONG}")))
            assert response.status_code == 200
            readers.append(stream_events(response, time.monotonic()))
            until(readers[-1], "text-delta")
        held = server_connections(cluster)
        assert all(next(reader).type == "text-delta" for reader in readers)  # all still streaming
        assert held <= DATABASE_THREADS, f"{held} database connections held by {streams} open streams"


# -- a server that dies mid-reply ---------------------------------------------------------------------


def killed_mid_reply(cluster: Cluster, kind: str) -> tuple[list[Received], float]:
    """A reply streamed by a server of ``kind`` that is SIGKILLed past a lease renewal: what its client
    read, and when the kill came."""
    victim = cluster.start(kind)
    with (
        victim.log_on_failure(),
        cluster.client(victim) as client,
        client.stream("POST", "/api/chat", json=chat(LONG)) as response,
    ):
        events = stream_events(response, time.monotonic())
        opening = until(events, "text-delta")
        while opening[-1].at - opening[0].at < 1.5 * STALE_AFTER / 4:  # past a lease renewal
            opening.append(next(events))
        os.killpg(victim.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        victim.process.wait(timeout=5)
        with contextlib.suppress(httpx.HTTPError):
            opening += list(events)
    assert not {"finish", "abort", "[DONE]"} & {r.type for r in opening}
    return opening, killed


@pytest.mark.scaleout
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_a_server_killed_mid_reply_has_its_reply_taken_over_by_another(scaleout: Cluster, kind: str) -> None:
    """No request needed: a live process notices the dead one's lease run out within a few seconds, and
    ends its reply ``interrupted`` with everything its client had read (the Redis reply log has it) and an
    estimated usage row; the conversation goes on."""
    cluster = scaleout
    with cluster.wsgi.log_on_failure(), cluster.client(cluster.wsgi) as survivor:
        survivor.get("/api/models")  # (a process serving the API keeps up the takeovers)
        opening, killed = killed_mid_reply(cluster, kind)
        message_id = opening[0].event["messageId"]
        conversation = opening[0].event["messageMetadata"]["conversationId"]
        deadline = killed + STALE_AFTER + 2 * STALE_AFTER / 4 + 2
        while (status := message_status(cluster, message_id)) == "streaming" and time.monotonic() < deadline:
            time.sleep(0.2)
            survivor.get("/api/models")
        assert status == "interrupted"
        taken_in = time.monotonic() - killed
        assert taken_in < STALE_AFTER + 2 * STALE_AFTER / 4 + 2, taken_in

        [interrupted] = assistant_messages(survivor, conversation)
        assert interrupted["error"]["code"] == "interrupted"
        assert_all_it_read(opening, interrupted["content"])
        assert interrupted["usage"]["estimated"] is True and interrupted["usage"]["output_tokens"] > 0

        with survivor.stream("POST", "/api/chat", json=chat("Are you back?", conversation)) as response:
            assert response.status_code == 200
            received = list(stream_events(response, time.monotonic()))
        assert received[-2].event["messageMetadata"]["status"] == "complete"
        statuses = [m["status"] for m in assistant_messages(survivor, conversation)]
    assert statuses == ["interrupted", "complete"]


@pytest.mark.scaleout
def test_a_stop_sent_to_a_dead_reply_ends_it_at_once(scaleout: Cluster) -> None:
    cluster = scaleout
    opening, _ = killed_mid_reply(cluster, "uvicorn")
    message_id = opening[0].event["messageId"]
    with cluster.wsgi.log_on_failure(), cluster.client(cluster.wsgi) as survivor:
        asked = time.monotonic()
        stopped = survivor.post(f"/api/messages/{message_id}/stop")
        took = time.monotonic() - asked
        assert (stopped.status_code, stopped.json()["status"]) == (200, "cancelled")
        assert took < 3.0  # not the lease's run-out: the stop itself ends it
        conversation = opening[0].event["messageMetadata"]["conversationId"]
        [reply] = assistant_messages(survivor, conversation)
    assert (reply["status"], reply["error"]) == ("cancelled", None)
    assert_all_it_read(opening, reply["content"])
    assert reply["usage"]["estimated"] is True


def assert_all_it_read(opening: list[Received], kept: str) -> None:
    """The reply kept what its client read, up to the Redis log's last copy (it is copied every 100 ms:
    three tokens or so at RATE), not a lease period behind, as a checkpoint of the text would be."""
    seen = "".join(r.event["delta"] for r in opening if r.type == "text-delta")
    assert seen.startswith(kept) or kept.startswith(seen), (seen, kept)
    assert len(kept) >= len(seen) - 30, (seen, kept)


def message_status(cluster: Cluster, message_id: str) -> str:
    [(status,)] = cluster.query("SELECT status FROM streaming_message WHERE id = %s", [message_id])
    return str(status)


# -- a conversation deleted while its reply streams --------------------------------------------------------


@pytest.mark.scaleout
@pytest.mark.parametrize("streamer", ["asgi", "wsgi"])
def test_deleting_a_conversation_mid_reply_stops_it_and_keeps_its_usage(
    scaleout: Cluster, streamer: str
) -> None:
    """The reply is stopped first, and saved: its usage row outlives the conversation, so its cost still
    counts in the reports and budgets (deleting is no way around them)."""
    cluster = scaleout
    streaming, deleting = (cluster.asgi, cluster.wsgi) if streamer == "asgi" else (cluster.wsgi, cluster.asgi)
    [(before,)] = cluster.query("SELECT coalesce(max(id), 0) FROM streaming_usage")
    with (
        streaming.log_on_failure(),
        deleting.log_on_failure(),
        cluster.client(streaming) as client,
        cluster.client(deleting) as other,
        client.stream("POST", "/api/chat", json=chat(LONG)) as response,
    ):
        events = stream_events(response, time.monotonic())
        opening = until(events, "text-delta")
        conversation = opening[0].event["messageMetadata"]["conversationId"]
        deleted = other.delete(f"/api/conversations/{conversation}")
        assert deleted.status_code == 204
        rest = [r.type for r in events]
        assert rest[-2:] == ["abort", "[DONE]"]  # the reply was stopped, and its stream ended
        assert other.get(f"/api/conversations/{conversation}").status_code == 404
    # (other replies may end meanwhile: the warm-ups' go on for their grace period)
    rows = cluster.query(
        "SELECT user_id IS NOT NULL, message_id, output_tokens, estimated FROM streaming_usage"
        " WHERE id > %s AND conversation_id IS NULL",
        [before],
    )
    assert len(rows) == 1
    [(has_user, message_id, output_tokens, estimated)] = rows
    assert (has_user, message_id) == (True, None)
    assert output_tokens > 0 and estimated
