"""The fake upstream measured alone, so that the other scenarios can trust it is not their bottleneck.

* ``emit``: one reply of ``selftest_tokens`` without delay to the lean client, three times: tokens/s
  (median) and the upstream's CPU per token (from ``/proc``).
* ``pace``: ``selftest_streams`` replies at ``rate`` tokens/s at once for ``selftest_seconds``: errors,
  first-token and inter-token gap percentiles as the lean client sees them, the upstream's CPU, and its
  latest tick (``GET /stats``: how late its shared ticker ran).

``python -m bench.upstream --selftest [--tiny]`` runs it alone; ``python -m bench`` runs it first.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from bench import proc
from bench.client import StreamResult, Target, stream_many, stream_once
from bench.launch import upstream
from bench.report import Row, median, percentile, print_all, table
from bench.scenarios import TINY, Sizes


async def stats(port: int) -> dict[str, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stats HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    data = await reader.readexactly(length)
    writer.close()
    result: dict[str, float] = orjson.loads(data)
    return result


async def measure(port: int, pid: int, sizes: Sizes) -> list[Row]:
    target = Target(port, "/v1/chat/completions")
    model = f"bench-{sizes.selftest_tokens}-0"
    await stream_once(target, {"model": model, "stream": True})
    cpu = proc.cpu_seconds(pid)
    runs = [await stream_once(target, {"model": model, "stream": True}) for _ in range(3)]
    cpu = proc.cpu_seconds(pid) - cpu
    rates = [r.tokens / (r.last_token - r.sent) for r in runs if r.ok(sizes.selftest_tokens) and r.last_token]
    rows: list[Row] = [
        {
            "name": "emit (no delay)",
            "streams": 1,
            "errors": 3 - len(rates),
            "tokens_per_s": median(rates),
            "upstream_cpu_us_per_token": cpu / sum(r.tokens for r in runs) * 1e6,
        }
    ]
    tokens = round(sizes.rate * sizes.selftest_seconds)
    model = f"bench-{tokens}-{sizes.delay:.6g}"
    results = [StreamResult() for _ in range(sizes.selftest_streams)]
    bodies = [{"model": model, "stream": True}] * len(results)
    cpu = proc.cpu_seconds(pid)
    started = time.perf_counter()
    await stream_many(target, bodies, results, sizes.selftest_seconds + 60)
    wall = time.perf_counter() - started
    cpu = proc.cpu_seconds(pid) - cpu
    gaps = [gap * 1000 for r in results for gap in r.gaps()]
    first = [(r.first_token - r.sent) * 1000 for r in results if r.first_token is not None]
    rows.append(
        {
            "name": f"pace ({sizes.rate:g} tok/s)",
            "streams": len(results),
            "errors": sum(not r.ok(tokens) for r in results),
            "tokens_per_s": sum(r.tokens for r in results) / wall,
            "upstream_cpu_us_per_token": cpu / max(1, sum(r.tokens for r in results)) * 1e6,
            "upstream_cpu_pct": cpu / wall * 100,
            "first_token_p99_ms": percentile(first, 99),
            "gap_p50_ms": median(gaps),
            "gap_p99_ms": percentile(gaps, 99),
            "max_tick_lag_ms": (await stats(port))["max_tick_lag_ms"],
        }
    )
    return rows


def run(sizes: Sizes) -> list[Row]:
    with upstream() as up:
        return asyncio.run(measure(up.port, up.pid, sizes))


COLUMNS = [
    ("name", "upstream alone"),
    ("streams", "streams"),
    ("errors", "errors"),
    ("tokens_per_s", "tokens/s"),
    ("upstream_cpu_us_per_token", "CPU µs/tok"),
    ("upstream_cpu_pct", "CPU %"),
    ("first_token_p99_ms", "first tok p99 ms"),
    ("gap_p50_ms", "gap p50 ms"),
    ("gap_p99_ms", "gap p99 ms"),
    ("max_tick_lag_ms", "max tick lag ms"),
]


def main(tiny: bool = False) -> None:
    rows = run(TINY if tiny else Sizes())
    print_all([table("Upstream self-test", rows, COLUMNS)])
