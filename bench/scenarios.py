"""The scenarios: latency (a), throughput and server CPU (b), concurrency and memory (c), queries (d).

Every scenario talks to the fake upstream (``bench.upstream``) in its own process; the servers run
the demo project (``bench.launch``) or the FastAPI baseline (``bench.fastapi_proxy``).

(a) ``latency``: one reply of ``latency_tokens`` (no upstream delay) at a time, ``latency_repeats``
    times after a warm-up, through: the ``openai`` SDK reading the upstream directly (the floor: its
    time to the response's headers, first and last content chunk), the app under each server, and the
    FastAPI proxy (time to first body byte, first and last token, from the lean client). All of them
    run at once and take turns, a reply each in round robin. Overheads are differences of medians
    against the direct SDK, ratios their quotients.
(b) ``throughput``: one reply of ``throughput_tokens`` (no delay) at a time: tokens/s from the request
    to the last token (median), and the server's CPU per relayed token (``bench.proc``: the server's
    process tree, read before and after all the repeats). The direct SDK, and the SDK's raw response
    parsed with orjson (what the app's provider does), are measured in this process for reference.
(c) ``concurrency``: N replies opened at once on one fresh uvicorn worker (the app, then the FastAPI
    proxy), each ``rate`` tokens/s for ``stream_seconds``: errors, first-token and inter-token gap
    percentiles over every stream, the peak number streaming at once, server CPU, and resident memory
    per stream (RSS when the most streams were open at once, minus RSS at idle after a warm-up, over
    that number; RSS is sampled every 0.25 s, and the peak RSS is reported too).
(d) ``queries``: ``bench.queries`` in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import httpx
import openai
import orjson

from bench import proc
from bench.client import StreamResult, Target, stream_many, stream_once, streaming_now
from bench.launch import APP_KINDS, app_server, fastapi_server
from bench.report import Row, median, percentile
from tests.servers import ROOT, LiveServer


@dataclass
class Sizes:
    """How big and how often; ``TINY`` is the CI run."""

    latency_tokens: int = 500
    latency_repeats: int = 40
    throughput_tokens: int = 5000
    throughput_repeats: int = 8
    concurrency: tuple[int, ...] = (100, 300, 1000)
    rate: float = 30.0
    stream_seconds: float = 30.0
    query_tokens: tuple[int, ...] = (10, 5000)
    resume_tokens: int = 2000
    resume_repeats: int = 20
    servers: tuple[str, ...] = APP_KINDS
    warmup: int = 3
    selftest_streams: int = 1000
    selftest_seconds: float = 6.0
    selftest_tokens: int = 200_000

    @property
    def delay(self) -> float:
        return 1 / self.rate

    def model(self, tokens: int, delay: float = 0.0) -> str:
        return f"openai:bench-{tokens}-{delay:.6g}"

    def models(self) -> list[str]:
        stream_tokens = round(self.rate * self.stream_seconds)
        return [
            self.model(self.latency_tokens),
            self.model(self.throughput_tokens),
            self.model(stream_tokens, self.delay),
            self.model(20),
            self.model(self.resume_tokens, RESUME_DELAY),
        ]


RESUME_DELAY = 0.004  # seconds between the tokens of the reply that (e) resumes: 2,000 of them in 8 s

TINY = Sizes(
    resume_repeats=3,
    latency_repeats=8,
    throughput_tokens=5000,
    throughput_repeats=2,
    concurrency=(50,),
    stream_seconds=2.0,
    warmup=2,
    selftest_streams=200,
    selftest_seconds=2.0,
    selftest_tokens=50_000,
)

Server = Callable[[], AbstractContextManager[tuple[LiveServer, Target]]]


def servers(
    sizes: Sizes, upstream_port: int, kinds: Sequence[str], redis_url: str | None = None
) -> Iterator[tuple[str, Server]]:
    """(name, context manager factory) of each server to measure; with ``redis_url``, uvicorn again with
    Redis for the reply log (and the cache); the FastAPI proxy last."""
    for kind in kinds:
        yield f"app {kind}", lambda kind=kind: app_server(kind, upstream_port, sizes.models())  # type: ignore[misc]
    if redis_url and "uvicorn" in kinds:
        yield (
            "app uvicorn + Redis log",
            lambda: app_server("uvicorn", upstream_port, sizes.models(), redis_url),
        )
    yield "fastapi proxy", lambda: fastapi_server(upstream_port)


def body(model: str) -> dict[str, object]:
    return {"message": "Say something.", "model": model}


def ms(seconds: float) -> float:
    return seconds * 1000


# -- (a) latency ---------------------------------------------------------------------------------------


def sdk_client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)


def sdk_params(model: str) -> dict[str, object]:
    return {
        "model": model.removeprefix("openai:"),
        "messages": [{"role": "user", "content": "Say something."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def sdk_once(client: openai.OpenAI, model: str) -> StreamResult:
    """One reply through the SDK's chunk objects, timed like the lean client times a server."""
    result = StreamResult(sent=time.perf_counter())
    stream = client.chat.completions.create(**sdk_params(model))  # type: ignore[call-overload]
    result.first_byte = time.perf_counter()  # the SDK returns once the response's headers are in
    result.status = 200
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            now = time.perf_counter()
            result.first_token = result.first_token or now
            result.last_token = now
            result.tokens += 1
    result.saw_done = True
    result.ended = time.perf_counter()
    return result


def latency_row(name: str, results: Sequence[StreamResult], expected: int) -> Row:
    good = [r for r in results if r.ok(expected)]
    row: Row = {"name": name, "runs": len(results), "errors": len(results) - len(good)}
    for key in ("first_byte", "first_token", "last_token"):
        values = [ms(getattr(r, key) - r.sent) for r in good]
        row[f"{key}_p50_ms"] = median(values)
        row[f"{key}_p99_ms"] = percentile(values, 99)
    problems = {r.problem(expected) for r in results} - {""}
    if problems:
        row["problems"] = sorted(problems)[:3]
    return row


def latency(sizes: Sizes, upstream_url: str, upstream_port: int) -> list[Row]:
    """Every server runs at once and the repeats take turns, one reply through each in round robin, so
    that a machine whose speed drifts (a shared VM's does, by half within a minute) slows them alike."""
    model = sizes.model(sizes.latency_tokens)
    client = sdk_client(upstream_url)
    with contextlib.ExitStack() as stack:
        started = [
            (name, *stack.enter_context(start()))
            for name, start in servers(sizes, upstream_port, sizes.servers)
        ]
        runs: dict[str, list[StreamResult]] = {"openai SDK direct": []}
        runs.update((name, []) for name, *_ in started)

        async def take_turns() -> None:
            for attempt in range(sizes.warmup + sizes.latency_repeats):
                measured = attempt >= sizes.warmup
                result = sdk_once(client, model)
                if measured:
                    runs["openai SDK direct"].append(result)
                for name, _server, target in started:
                    result = await stream_once(target, body(model))
                    if measured:
                        runs[name].append(result)

        asyncio.run(take_turns())
        floors = {
            name: django_floor(server, target, sizes.latency_repeats)
            for name, server, target in started
            if name != "fastapi proxy"
        }
    client.close()
    rows = [latency_row(name, results, sizes.latency_tokens) for name, results in runs.items()]
    floor = rows[0]
    for row in rows[1:]:
        if row["name"] in floors:
            row["django_floor_ms"] = floors[row["name"]]
        for key in ("first_token", "last_token"):
            row[f"overhead_{key.split('_')[0]}_ms"] = row[f"{key}_p50_ms"] - floor[f"{key}_p50_ms"]
            row[f"ratio_{key.split('_')[0]}"] = row[f"{key}_p50_ms"] / floor[f"{key}_p50_ms"]
    return rows


def django_floor(server: LiveServer, target: Target, repeats: int) -> float:
    """The median time of the cheapest logged-in request, ``GET /api/models`` on a kept-alive connection:
    Django's own cost per request on this server (middleware, session, user), before any reply starts."""
    headers = {name: value for name, value in target.headers.items() if name == "Cookie"}
    times = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        for attempt in range(repeats + 3):
            started = time.perf_counter()
            client.get("/api/models").raise_for_status()
            if attempt >= 3:
                times.append(ms(time.perf_counter() - started))
    return median(times)


# -- (b) throughput --------------------------------------------------------------------------------------


def sdk_raw_once(client: openai.OpenAI, model: str) -> int:
    """The SDK's raw streaming response parsed with orjson, as the app's provider reads it."""
    from streaming.providers.sse_lines import iter_sse  # no Django needed

    tokens = 0
    with client.chat.completions.with_streaming_response.create(**sdk_params(model)) as response:  # type: ignore[call-overload]
        for _name, data in iter_sse(response.http_response.iter_bytes()):
            if data == b"[DONE]":
                break
            chunk = orjson.loads(data)
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    tokens += 1
    return tokens


def in_process_row(name: str, once: Callable[[], int], repeats: int) -> Row:
    """tokens/s and this process's CPU per token for a client running here."""
    rates, total = [], 0
    cpu = time.process_time()
    for _ in range(repeats):
        started = time.perf_counter()
        tokens = once()
        rates.append(tokens / (time.perf_counter() - started))
        total += tokens
    cpu_per_token = (time.process_time() - cpu) / max(total, 1)
    return {
        "name": name,
        "runs": repeats,
        "errors": 0,
        "tokens_per_s": median(rates),
        "tokens_per_s_p1": percentile(rates, 1),
        "client_cpu_us_per_token": cpu_per_token * 1e6,
    }


def throughput(
    sizes: Sizes, upstream_url: str, upstream_port: int, redis_url: str | None = None
) -> list[Row]:
    model = sizes.model(sizes.throughput_tokens)
    client = sdk_client(upstream_url)
    sdk_once(client, model)
    sdk_raw_once(client, model)
    rows = [
        in_process_row("openai SDK direct", lambda: sdk_once(client, model).tokens, sizes.throughput_repeats),
        in_process_row("SDK raw + orjson", lambda: sdk_raw_once(client, model), sizes.throughput_repeats),
    ]
    client.close()
    for name, start in servers(sizes, upstream_port, sizes.servers, redis_url):
        with start() as (server, target):
            rows.append(asyncio.run(server_throughput(name, server, target, model, sizes)))
    return rows


async def server_throughput(name: str, server: LiveServer, target: Target, model: str, sizes: Sizes) -> Row:
    for _ in range(max(1, sizes.warmup - 1)):
        await stream_once(target, body(model))
    pid = server.process.pid
    cpu = proc.cpu_seconds(pid)
    results = [await stream_once(target, body(model)) for _ in range(sizes.throughput_repeats)]
    cpu = proc.cpu_seconds(pid) - cpu
    good = [r for r in results if r.ok(sizes.throughput_tokens)]
    rates = [r.tokens / (r.last_token - r.sent) for r in good if r.last_token]
    relayed = sum(r.tokens for r in results)
    return {
        "name": name,
        "runs": len(results),
        "errors": len(results) - len(good),
        "tokens_per_s": median(rates),
        "tokens_per_s_p1": percentile(rates, 1),
        "server_cpu_us_per_token": cpu / max(relayed, 1) * 1e6,
        "events_per_reply": median([len(r.reads) for r in good]),
    }


# -- (c) concurrency ---------------------------------------------------------------------------------------


def concurrency(sizes: Sizes, upstream_port: int, redis_url: str | None = None) -> list[Row]:
    rows = []
    for streams in sizes.concurrency:
        for name, start in servers(sizes, upstream_port, ("uvicorn",), redis_url):
            with start() as (server, target):
                rows.append(asyncio.run(concurrent_run(name, server, target, streams, sizes)))
            print(f"  concurrency {name} x{streams}: done", file=sys.stderr, flush=True)
    return rows


async def concurrent_run(name: str, server: LiveServer, target: Target, streams: int, sizes: Sizes) -> Row:
    tokens = round(sizes.rate * sizes.stream_seconds)
    model = sizes.model(tokens, sizes.delay)
    for _ in range(sizes.warmup):
        await stream_once(target, body(sizes.model(20)))
    await asyncio.sleep(0.5)
    pid = server.process.pid
    idle_rss = proc.rss_bytes(pid)
    cpu = proc.cpu_seconds(pid)
    started = time.perf_counter()
    results = [StreamResult() for _ in range(streams)]
    run = asyncio.create_task(
        stream_many(target, [body(model)] * streams, results, sizes.stream_seconds + 90)
    )
    peak_rss, peak_open, rss_at_peak_open = idle_rss, 0, idle_rss
    while not run.done():
        await asyncio.sleep(0.25)
        now_open, rss = streaming_now(results), proc.rss_bytes(pid)
        peak_rss = max(peak_rss, rss)
        if now_open >= peak_open:
            peak_open, rss_at_peak_open = now_open, rss
    await run
    wall = time.perf_counter() - started
    cpu = proc.cpu_seconds(pid) - cpu
    good = [r for r in results if r.ok(tokens)]
    first = [ms(r.first_token - r.sent) for r in results if r.first_token is not None]
    gaps = [ms(gap) for r in results for gap in r.gaps()]
    problems = sorted({r.problem(tokens) for r in results} - {""})
    row: Row = {
        "name": name,
        "streams": streams,
        "errors": streams - len(good),
        "first_token_p50_ms": median(first),
        "first_token_p99_ms": percentile(first, 99),
        "upstream_gap_ms": ms(sizes.delay),
        "gap_p50_ms": median(gaps),
        "gap_p99_ms": percentile(gaps, 99),
        "gap_max_ms": max(gaps, default=float("nan")),
        "peak_streaming": peak_open,
        "server_cpu_pct": cpu / wall * 100,
        "idle_rss_mb": idle_rss / 2**20,
        "peak_rss_mb": peak_rss / 2**20,
        # per stream open at the moment most were: the replies may start slower than they end
        "rss_kb_per_stream": (rss_at_peak_open - idle_rss) / max(peak_open, 1) / 1024,
        "wall_s": wall,
    }
    if problems:
        row["problems"] = problems[:3]
        row["server_errors"] = server_errors(server.log())
    return row


def server_errors(log: str, limit: int = 5) -> list[str]:
    """The distinct exception lines of a server's log: why requests failed. (With DEBUG off Django logs
    a 500 to no console: none may be found.)"""
    errors = {line for line in log.splitlines() if re.match(r"[\w.]+(Error|Exception)\b", line)}
    return sorted(errors)[:limit]


# -- (d) queries ------------------------------------------------------------------------------------------


def queries(sizes: Sizes, upstream_url: str) -> list[Row]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.queries", upstream_url, *map(str, sizes.query_tokens)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.queries failed:\n{done.stdout}\n{done.stderr}")
    rows: list[Row] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return rows
