"""Five hundred replies at once over two server processes (uvicorn and gunicorn, one PostgreSQL database,
one Redis), whose clients misbehave as real ones do: some read to the end, some hang up before the stream
starts or in its middle, some reload (hang up, then attach through the other process), some press Stop
through the other process. Afterwards nothing is left ``streaming``, every reply that produced text has
its usage rows, and the costs the API reports add up to the usage rows' (a priced model: the OpenAI
provider against the benchmarks' fake upstream, with a price override).

Part of the scale-out leg of CI (PostgreSQL at ``DATABASE_URL``, Redis at ``REDIS_URL``); about a minute.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.launch import upstream
from tests.cluster import Cluster, fresh_database, reachable, running_cluster, scaleout_services
from tests.conftest import require

pytestmark = [pytest.mark.servers, pytest.mark.scaleout]

STREAMS = 500
TOKENS = 40
MODEL = f"openai:bench-{TOKENS}-0.05"  # 40 tokens, 20 a second: each reply streams for 2 s
GRACE = 5.0  # long enough for a reload to reach the other process under this load
BEHAVIOURS = [
    *["read"] * 4,
    *["hang up mid-way"] * 2,
    "hang up at once",
    *["reload"] * 2,
    "stop",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    services = scaleout_services()
    if services is None:
        pytest.skip("set DATABASE_URL (PostgreSQL) and REDIS_URL to run the scale-out tests")
    require(reachable(*services), "PostgreSQL at DATABASE_URL and Redis at REDIS_URL")
    database_url, redis_url = services
    with upstream() as fake, fresh_database(database_url) as url:
        env = {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": fake.base_url,
            "STREAMING_MODELS": f"{MODEL},demo:echo",
            "STREAMING_DISCONNECT_GRACE_SECONDS": str(GRACE),
            "STREAMING_STALE_AFTER_SECONDS": "4",
            "STREAMING_MAX_CONCURRENT_REPLIES": "none",
            "STREAMING_REPLIES_PER_MINUTE": "none",
        }
        with running_cluster(Path(tmp_path_factory.mktemp("load")), env, url) as running:
            running.query(
                "INSERT INTO streaming_priceoverride (provider, model, valid_from, input_per_mtok,"
                " output_per_mtok, note, created_at) VALUES ('openai', %s, now() - interval '1 day', 1, 4,"
                " 'load test', now())",
                [MODEL.split(":", 1)[1]],
            )
            yield running


async def events_of(response: httpx.Response) -> Any:
    """The SSE events of a response, as ``(id, data)``, while they arrive."""
    buffer = b""
    async for data in response.aiter_raw():
        buffer += data
        *events, buffer = buffer.split(b"\n\n")
        for event in events:
            lines = event.split(b"\n")
            event_id = next((int(line[4:]) for line in lines if line.startswith(b"id: ")), None)
            payload = next((line[6:] for line in lines if line.startswith(b"data: ")), b"")
            yield event_id, payload


async def one(n: int, behaviour: str, clients: list[httpx.AsyncClient]) -> str:
    mine, other = clients[n % 2], clients[(n + 1) % 2]
    body = {"message": f"Load {n}", "model": MODEL}
    if behaviour == "hang up at once":
        await hang_up_at_once(mine, body)
        return "left at once"
    message_id, last, texts = "", -1, 0
    async with mine.stream("POST", "/api/chat", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for event_id, payload in events_of(response):
            last = event_id if event_id is not None else last
            if not message_id and b'"messageId":"' in payload:
                message_id = payload.split(b'"messageId":"')[1][:36].decode()
            texts += b'"text-delta"' in payload
            if behaviour != "read" and texts >= 5:
                break
        else:
            return "read"
    if behaviour == "stop":
        stopped = await other.post(f"/api/messages/{message_id}/stop")
        return f"stop {stopped.status_code}"
    if behaviour == "reload":
        headers = {"Last-Event-ID": str(last)}
        async with other.stream("GET", f"/api/messages/{message_id}/stream", headers=headers) as response:
            async for _ in events_of(response):
                pass
        return "reloaded"
    return "hung up"


async def hang_up_at_once(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    """Send the request and close the connection at once: the client is gone before the stream starts."""
    payload = json.dumps(body).encode()
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    head = (
        f"POST /api/chat HTTP/1.1\r\nHost: {client.base_url.host}:{client.base_url.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nCookie: {cookies}\r\n"
        f"X-CSRFToken: {client.headers['X-CSRFToken']}\r\n\r\n"
    )
    _, writer = await asyncio.open_connection(client.base_url.host, client.base_url.port)
    writer.write(head.encode() + payload)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def run_all(cluster: Cluster) -> list[str]:
    limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=0)
    clients = [
        httpx.AsyncClient(
            base_url=server.url,
            cookies=cluster.cookies,
            headers={"X-CSRFToken": cluster.cookies["csrftoken"]},
            timeout=120,
            limits=limits,
            trust_env=False,
        )
        for server in (cluster.asgi, cluster.wsgi)
    ]
    try:
        return list(
            await asyncio.gather(*(one(n, BEHAVIOURS[n % len(BEHAVIOURS)], clients) for n in range(STREAMS)))
        )
    finally:
        for client in clients:
            await client.aclose()


def test_five_hundred_misbehaving_clients_leave_every_reply_ended_and_counted(cluster: Cluster) -> None:
    with cluster.asgi.log_on_failure(), cluster.wsgi.log_on_failure():
        began = time.monotonic()
        outcomes = asyncio.run(run_all(cluster))
        took = time.monotonic() - began
        assert len(outcomes) == STREAMS, took
        # (409: the reply had ended by itself before the stop came, under this load)
        assert not [
            o for o in outcomes if o.startswith("stop") and o not in ("stop 202", "stop 200", "stop 409")
        ]

        deadline = time.monotonic() + GRACE + 4 * 1.5 + 10  # the grace, then a lease's run-out at most
        while streaming(cluster) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert streaming(cluster) == 0

        replies = cluster.query(
            "SELECT m.id, m.status, m.content,"
            " (SELECT count(*) FROM streaming_usage u WHERE u.message_id = m.id)"
            " FROM streaming_message m WHERE m.role = 'assistant' AND m.model = %s",  # (not the warm-ups')
            [MODEL],
        )
        at_once = outcomes.count("left at once")  # (a server may drop a request whose client is gone)
        assert STREAMS - at_once <= len(replies) <= STREAMS
        statuses = {status for _, status, _, _ in replies}
        assert statuses <= {"complete", "cancelled", "interrupted"}, statuses
        assert [r for r in replies if r[2] and r[3] == 0] == []  # text without a usage row: none
        complete = [r for r in replies if r[1] == "complete"]
        assert len(complete) >= STREAMS * 0.6  # the readers and the reloads, at least
        assert all(r[2] == "tok " * TOKENS for r in complete)

        reported = sum((Decimal(c["cost"]) for c in listed(cluster) if c["cost"]), Decimal(0))
        [(stored,)] = cluster.query("SELECT sum(total_cost) FROM streaming_usage")
        assert stored is not None and stored > 0
        assert reported == stored


def listed(cluster: Cluster) -> list[dict[str, Any]]:
    """Every conversation of the API's list, page by page."""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "100"}
    with httpx.Client(base_url=cluster.asgi.url, cookies=cluster.cookies, timeout=30) as client:
        while True:
            page = client.get("/api/conversations", params=params).json()
            found += page["conversations"]
            if not page["next"]:
                return found
            params["cursor"] = page["next"]


def streaming(cluster: Cluster) -> int:
    [(count,)] = cluster.query("SELECT count(*) FROM streaming_message WHERE status = 'streaming'")
    return int(count)
