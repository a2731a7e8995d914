"""``python -m bench``: run the scenarios, print the tables and the targets, write a JSON file.

Run from the repository's root (``tests.servers`` starts the servers). ``--tiny`` is a run of well
under a minute for CI; ``--only`` picks scenarios; the other options change sizes and repeats. The JSON
file (``bench/results/<time>-<full|tiny>.json``, git-ignored) holds every row, the sizes and the
machine. The targets are reported as PASS/MISS and never fail the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import resume, scenarios, selftest
from bench.launch import redis_server, upstream
from bench.report import print_all, table, targets
from bench.upstream import raise_fd_limit

SCENARIOS = ("upstream", "latency", "throughput", "concurrency", "queries", "resume")
RESULTS = Path(__file__).resolve().parent / "results"

LATENCY = [
    ("name", "(a) latency"),
    ("runs", "runs"),
    ("errors", "errors"),
    ("first_byte_p50_ms", "TTFB p50"),
    ("first_byte_p99_ms", "p99"),
    ("first_token_p50_ms", "first tok p50"),
    ("first_token_p99_ms", "p99"),
    ("last_token_p50_ms", "last tok p50"),
    ("last_token_p99_ms", "p99"),
    ("overhead_first_ms", "+first ms"),
    ("ratio_first", "x first"),
    ("overhead_last_ms", "+last ms"),
    ("ratio_last", "x last"),
    ("django_floor_ms", "GET floor"),
]
THROUGHPUT = [
    ("name", "(b) throughput"),
    ("runs", "runs"),
    ("errors", "errors"),
    ("tokens_per_s", "tokens/s p50"),
    ("tokens_per_s_p1", "tokens/s p1"),
    ("server_cpu_us_per_token", "server CPU µs/tok"),
    ("client_cpu_us_per_token", "in-process CPU µs/tok"),
    ("events_per_reply", "reads/reply"),
]
CONCURRENCY = [
    ("name", "(c) concurrency"),
    ("streams", "N"),
    ("errors", "errors"),
    ("first_token_p50_ms", "first tok p50"),
    ("first_token_p99_ms", "p99"),
    ("gap_p50_ms", "gap p50"),
    ("gap_p99_ms", "gap p99"),
    ("gap_max_ms", "gap max"),
    ("peak_streaming", "peak open"),
    ("server_cpu_pct", "server CPU %"),
    ("idle_rss_mb", "idle RSS MB"),
    ("peak_rss_mb", "peak RSS MB"),
    ("rss_kb_per_stream", "RSS KB/stream"),
    ("wall_s", "wall s"),
]
QUERIES = [
    ("name", "(d) queries per reply"),
    ("relayed", "tokens relayed"),
    ("queries", "queries"),
    ("kinds", "kinds"),
]
RESUME = [
    ("name", "(e) resume"),
    ("runs", "runs"),
    ("errors", "errors"),
    ("first_byte_p50_ms", "first byte p50"),
    ("first_byte_p99_ms", "p99"),
]
TARGETS = [("target", "target"), ("measured", "measured"), ("goal", "goal"), ("verdict", "")]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="a run of well under a minute (CI)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a reply failed or queries grew with length (CI)"
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated, of {SCENARIOS}")
    parser.add_argument(
        "--servers", help="comma-separated app servers for (a) and (b): uvicorn,daphne,gunicorn"
    )
    parser.add_argument("--latency-tokens", type=int)
    parser.add_argument("--latency-repeats", type=int)
    parser.add_argument("--throughput-tokens", type=int)
    parser.add_argument("--throughput-repeats", type=int)
    parser.add_argument("--concurrency", help="comma-separated stream counts for (c), e.g. 100,300,1000")
    parser.add_argument("--rate", type=float, help="tokens/s of each stream in (c)")
    parser.add_argument("--stream-seconds", type=float, help="how long each stream of (c) lasts")
    parser.add_argument("--output", type=Path, help="the JSON file (default: bench/results/<time>.json)")
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> scenarios.Sizes:
    sizes = scenarios.TINY if args.tiny else scenarios.Sizes()
    changes: dict[str, Any] = {
        key: getattr(args, key)
        for key in (
            "latency_tokens",
            "latency_repeats",
            "throughput_tokens",
            "throughput_repeats",
            "rate",
            "stream_seconds",
        )
        if getattr(args, key) is not None
    }
    if args.servers:
        changes["servers"] = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    if args.concurrency:
        changes["concurrency"] = tuple(int(n) for n in args.concurrency.split(","))
    return dataclasses.replace(sizes, **changes)


def head_commit() -> str:
    """The checked-out commit (read only: ``git rev-parse``), so that a result says what it measured."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=RESULTS.parent.parent, capture_output=True, text=True
        )
    except OSError:
        return ""
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    sizes = sizes_from(args)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    limit = raise_fd_limit()  # before any server starts: they inherit it
    commit = head_commit()
    started = time.perf_counter()
    results: dict[str, Any] = {}

    def note(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {name}...", file=sys.stderr, flush=True)

    if "upstream" in only:
        note("upstream self-test")
        results["upstream"] = selftest.run(sizes)
        print_all([table("Upstream self-test", results["upstream"], selftest.COLUMNS)])
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(upstream())
        needs_redis = {"throughput", "concurrency", "resume"} & set(only)
        redis_url = (
            stack.enter_context(redis_server()) if needs_redis and shutil.which("redis-server") else None
        )
        if "latency" in only:
            note("(a) latency")
            results["latency"] = scenarios.latency(sizes, up.base_url, up.port)
            print_all([table(f"(a) {sizes.latency_tokens}-token reply, ms", results["latency"], LATENCY)])
        if "throughput" in only:
            note("(b) throughput")
            results["throughput"] = scenarios.throughput(sizes, up.base_url, up.port, redis_url)
            print_all(
                [
                    table(
                        f"(b) {sizes.throughput_tokens}-token reply, no delay",
                        results["throughput"],
                        THROUGHPUT,
                    )
                ]
            )
        if "concurrency" in only:
            note("(c) concurrency")
            results["concurrency"] = scenarios.concurrency(sizes, up.port, redis_url)
            title = f"(c) one uvicorn worker, {sizes.rate:g} tok/s for {sizes.stream_seconds:g} s each, ms"
            print_all([table(title, results["concurrency"], CONCURRENCY)])
        if "queries" in only:
            note("(d) queries")
            results["queries"] = scenarios.queries(sizes, up.base_url)
            print_all(
                [table("(d) one reply through Django's test Client, SQLite", results["queries"], QUERIES)]
            )
        if "resume" in only:
            note("(e) resume")
            results["resume"] = resume.resume(sizes, up.port, redis_url)
            title = f"(e) attach to a {sizes.resume_tokens}-token reply half-way, ms to the first byte"
            print_all([table(title, results["resume"], RESUME)])
    results["targets"] = targets(results)
    print_all([table("Targets", results["targets"], TARGETS)])
    wall = time.perf_counter() - started
    results["meta"] = {
        "sizes": dataclasses.asdict(sizes),
        "tiny": args.tiny,
        "wall_seconds": round(wall, 1),
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "fd_limit": limit,
        "commit_at_start": commit,
        "commit_at_end": head_commit(),
    }
    output = (
        args.output or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{'tiny' if args.tiny else 'full'}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    if results["meta"]["commit_at_end"] != commit:
        print(f"note: the checked-out commit changed during the run ({commit[:10]} -> {head_commit()[:10]})")
    print(f"wall time {wall:.1f} s; commit {commit[:10]}; results in {output}")
    problems = broken(results)
    if args.strict and problems:
        sys.exit("the benchmarks did not run cleanly:\n  " + "\n  ".join(problems))


def broken(results: dict[str, Any]) -> list[str]:
    """What makes a run unusable, whatever the numbers: failed replies, or queries that grow with length."""
    problems = [
        f"{scenario}: {row['name']}: {row['errors']} errors"
        for scenario, rows in results.items()
        if isinstance(rows, list)
        for row in rows
        if row.get("errors")
    ]
    counts = {row["queries"] for row in results.get("queries", [])}
    if len(counts) > 1:
        problems.append(f"queries per reply differ with the reply's length: {sorted(counts)}")
    if 0 in counts:
        problems.append("no query was counted for a reply: the counter missed them")
    return problems


if __name__ == "__main__":
    main()
