"""What a tool step costs in latency: a reply that calls a tool should take one more model round trip
and the tool's own time, and nothing more.

``python -m bench.tools [--round-trip MS] [--tool MS] [--runs N]`` sets Django up in process with the
test suite's settings (``tests.settings``) on a fresh SQLite file, points the app's real OpenAI
provider (the SDK) at the test suite's fake upstream (``tests.fake_upstream``), which waits
``--round-trip`` milliseconds before it answers each model call, and offers a tool that sleeps
``--tool`` milliseconds. It times ``POST /api/chat`` to its last byte, on the WSGI path (Django's test
``Client``: the reply's thread) and the ASGI path (``AsyncClient``: the reply's task), for a plain
reply (one model call) and a tool reply (a call that asks for the tool, the tool, a second call), and
prints the medians: the tool reply's extra time, less the tool's, is what the tool step added; the
target is one round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import streaming


@streaming.tool
def wait(seconds: float) -> str:
    """Wait, then say so (the benchmark's tool)."""
    time.sleep(seconds)
    return "waited"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trip", type=float, default=150, help="ms before each model call answers")
    parser.add_argument("--tool", type=float, default=200, help="ms the tool takes")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as workdir:
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        os.environ["SQLITE_PATH"] = str(Path(workdir) / "db.sqlite3")
        os.environ["OPENAI_API_KEY"] = "sk-bench"
        os.environ.pop("OPENAI_BASE_URL", None)
        import django

        django.setup()
        rows = measure(args.round_trip / 1000, args.tool / 1000, args.runs)
    print(f"model round trip {args.round_trip:g} ms, tool {args.tool:g} ms, median of {args.runs} runs")
    head = f"{'path':<6} {'plain ms':>9} {'tool reply ms':>14} {'added by the step':>18}"
    print(f"{head} {'over one round trip':>20}")
    for path, plain, tooled in rows:
        added = tooled - plain - args.tool
        over = added - args.round_trip
        verdict = "PASS" if over <= 0.1 * args.round_trip else "MISS"
        print(f"{path:<6} {plain:>9.1f} {tooled:>14.1f} {added:>18.1f} {over:>+17.1f} ms {verdict}")


def measure(round_trip: float, tool: float, runs: int) -> list[tuple[str, float, float]]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test.utils import override_settings

    from tests.fake_upstream import VENDORS, FakeUpstream, Reply

    call_command("migrate", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user("alice")
    openai = VENDORS[0]
    rows = []
    with FakeUpstream() as upstream:
        providers = {"openai": {"BACKEND": openai.backend, "OPTIONS": {"base_url": upstream.url + "/v1"}}}
        setting: dict[str, Any] = {"PROVIDERS": providers, "MODELS": ["openai:bench"]}
        setting |= {"TOOLS": ["bench.tools.wait"], "MAX_CONCURRENT_REPLIES": None, "REPLIES_PER_MINUTE": None}
        with override_settings(STREAMING=setting):
            for path in ("wsgi", "asgi"):
                post = _post_sync if path == "wsgi" else _post_async
                plain, tooled = [], []
                for run in range(runs + 1):  # (the first of each is a warm-up)
                    upstream.enqueue(Reply(200, openai.complete("Hello there."), _sse(), delay=round_trip))
                    took = post(user, "Hello")
                    call = openai.tool_call("wait", {"seconds": tool}, call_id=f"call_{run}")
                    upstream.enqueue(Reply(200, call, _sse(), delay=round_trip))
                    upstream.enqueue(Reply(200, openai.complete("Waited."), _sse(), delay=round_trip))
                    took_tools = post(user, "Wait, please")
                    if run:
                        plain.append(took)
                        tooled.append(took_tools)
                rows.append((path, statistics.median(plain) * 1000, statistics.median(tooled) * 1000))
    return rows


def _sse() -> dict[str, str]:
    return {"content-type": "text/event-stream"}


def _post_sync(user: Any, message: str) -> float:
    from django.test import Client

    client = Client()
    client.force_login(user)
    started = time.perf_counter()
    response: Any = client.post("/api/chat", {"message": message}, content_type="application/json")
    body = b"".join(response.streaming_content)
    took = time.perf_counter() - started
    assert b'"status":"complete"' in body, body[-500:]
    return took


def _post_async(user: Any, message: str) -> float:
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    async def run() -> float:
        client = AsyncClient()
        await sync_to_async(client.force_login)(user)
        started = time.perf_counter()
        response: Any = await client.post("/api/chat", {"message": message}, content_type="application/json")
        body = b"".join([part async for part in response.streaming_content])
        took = time.perf_counter() - started
        assert b'"status":"complete"' in body, body[-500:]
        return took

    return asyncio.run(run())


if __name__ == "__main__":
    main()
