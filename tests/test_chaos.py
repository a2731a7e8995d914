"""Faults at the wrong moment, with real components of the test's own: a PostgreSQL cluster and a Redis
server on spare ports (``tests/private_services.py``), stopped mid-reply, under real servers.

- PostgreSQL goes away as a reply ends: the stream says so, the reply is kept, and it is saved whole
  (text and usage) once the database is back; meanwhile the API answers a JSON 503, not an HTML 500.
- Redis goes away (the demo's cache, sessions included): chat goes on; a stop still reaches a reply of
  the same process; logging in still works.

Part of the scale-out leg of CI (they need ``initdb`` and ``redis-server``); skipped elsewhere.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from streaming.providers.demo import REPLY
from tests.conftest import require
from tests.private_services import private_postgres, private_redis
from tests.servers import Received, available, running_server, stream_events

pytestmark = [pytest.mark.servers, pytest.mark.scaleout]

LONG = " ".join(f"word{n}" for n in range(60))


@pytest.fixture(autouse=True)
def _scaleout_run() -> None:
    if not (os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL")):
        pytest.skip("a scale-out run (DATABASE_URL, REDIS_URL set: CI's PostgreSQL + Redis leg)")


def demo_reply(message: str) -> str:
    return REPLY.format(words=" ".join(message.split()))


def chat(client: httpx.Client, message: str) -> Any:
    return client.stream("POST", "/api/chat", json={"message": message, "model": "demo:echo"})


def text_of(received: list[Received]) -> str:
    return "".join(r.event["delta"] for r in received if r.type == "text-delta")


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_a_reply_that_ends_while_postgres_is_away_is_saved_when_it_returns(tmp_path: Path, kind: str) -> None:
    require(available(kind), f"{kind} is not installed")
    with private_postgres() as postgres:
        env = {
            "DATABASE_URL": postgres.database("chaos"),
            "STREAMING_DEMO_TOKENS_PER_SECOND": "40",
            "STREAMING_HEARTBEAT_SECONDS": "0.5",
        }
        (tmp_path / "server").mkdir()
        with running_server(kind, tmp_path / "server", env) as server, server.log_on_failure():
            with server.client() as client, server.client() as other, chat(client, LONG) as response:
                events = stream_events(response, time.monotonic())
                received = [next(events) for _ in range(8)]
                postgres.stop("fast")  # the database goes away mid-reply...
                down_since = time.monotonic()
                while received[-1].type != "data-notice":  # ...and the reply ends meanwhile
                    received.append(next(events))
                outage = other.get("/api/conversations")
                assert outage.status_code == 503
                assert outage.json()["error"]["code"] == "database_unavailable"
                time.sleep(max(0.0, 1.0 - (time.monotonic() - down_since)))
                postgres.start()  # ...it comes back: the reply is saved, and its stream ends
                received += list(events)

            notice = next(r for r in received if r.type == "data-notice")
            assert notice.event["data"]["code"] == "database_unavailable"
            assert [r.type for r in received if r.type != "ping"][-3:] == ["finish-step", "finish", "[DONE]"]
            assert received[-2].event["messageMetadata"]["status"] == "complete"
            assert text_of(received) == demo_reply(LONG)
            with server.client() as client:
                conversation = received[0].event["messageMetadata"]["conversationId"]
                [_, reply] = client.get(f"/api/conversations/{conversation}").json()["messages"]
            assert (reply["status"], reply["content"]) == ("complete", demo_reply(LONG))
            assert reply["usage"]["estimated"] is False and reply["usage"]["output_tokens"] > 0


def test_chat_goes_on_while_redis_is_away(tmp_path: Path) -> None:
    require(available("uvicorn"), "uvicorn is not installed")
    (tmp_path / "redis").mkdir()
    with private_redis(tmp_path / "redis") as redis:
        env = {"REDIS_URL": redis.url, "STREAMING_DEMO_TOKENS_PER_SECOND": "40"}
        (tmp_path / "server").mkdir()
        with running_server("uvicorn", tmp_path / "server", env) as server, server.log_on_failure():
            with server.client() as client:  # (logged in while Redis was there: its session is in both)
                redis.kill()
                assert client.get("/api/conversations").status_code == 200
                with chat(client, "Without Redis") as response:
                    received = list(stream_events(response, time.monotonic()))
                assert received[-2].event["messageMetadata"]["status"] == "complete"
                assert text_of(received) == demo_reply("Without Redis")

                with chat(client, LONG) as response:  # a stop reaches a reply of the same process
                    events = stream_events(response, time.monotonic())
                    opening = [next(events) for _ in range(5)]
                    stopped = client.post(f"/api/messages/{opening[0].event['messageId']}/stop")
                    assert stopped.status_code == 202, stopped.text
                    rest = [r.type for r in events]
                assert rest[-2:] == ["abort", "[DONE]"]
            with server.client() as fresh:  # a new login, with no cache to keep its session in
                assert fresh.get("/api/models").status_code == 200
                page = fresh.get("/")
                assert page.status_code == 200 and "text/html" in page.headers["content-type"]
