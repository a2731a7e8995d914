"""Percentiles, the printed tables, and the targets of the issue (reported as PASS/MISS, never asserted)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Row = dict[str, Any]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """``columns`` are (key, heading) pairs; missing keys print as ``-``."""
    cells = [[heading for _, heading in columns]]
    cells += [[fmt(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [title]
    for number, line in enumerate(cells):
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def target(name: str, measured: float | str, goal: str, passed: bool | None) -> Row:
    verdict = "n/a" if passed is None else "PASS" if passed else "MISS"
    return {"target": name, "measured": measured, "goal": goal, "verdict": verdict}


def targets(results: Mapping[str, Any]) -> list[Row]:
    """The issue's targets against whatever scenarios ran."""
    rows: list[Row] = []
    for row in results.get("latency", []):
        if row.get("overhead_first_ms") is not None and row["name"].startswith("app"):
            overhead = row["overhead_first_ms"]
            rows.append(target(f"first-token overhead, {row['name']}", overhead, "<= 2 ms", overhead <= 2))
    throughput = {row["name"]: row for row in results.get("throughput", [])}
    fastapi = throughput.get("fastapi proxy", {}).get("tokens_per_s")
    for name, row in throughput.items():
        if not name.startswith("app"):
            continue
        cpu = row.get("server_cpu_us_per_token")
        if cpu is not None:
            rows.append(target(f"server CPU per token, {name}", cpu, "<= 50 µs", cpu <= 50))
        if fastapi:
            ratio = row["tokens_per_s"] / fastapi
            rows.append(target(f"throughput vs FastAPI, {name}", ratio, ">= 3x", ratio >= 3))
    plain, logged = throughput.get("app uvicorn"), throughput.get("app uvicorn + Redis log")
    if plain and logged and plain.get("server_cpu_us_per_token") and logged.get("server_cpu_us_per_token"):
        ratio = logged["server_cpu_us_per_token"] / plain["server_cpu_us_per_token"]
        rows.append(
            target("server CPU per token with the Redis log, vs without", ratio, "<= 1.5x", ratio <= 1.5)
        )
    for row in results.get("resume", []):
        if "after its last id" in row["name"]:
            p50 = row["first_byte_p50_ms"]
            rows.append(target(f"resume first byte p50, {row['name']}", p50, "<= 20 ms", p50 <= 20))
    app_rows = [r for r in results.get("concurrency", []) if r["name"].startswith("app")]
    for name in sorted({r["name"] for r in app_rows}):
        biggest = max((r for r in app_rows if r["name"] == name), key=lambda r: r["streams"])
        allowed = biggest["upstream_gap_ms"] + 100
        ok = biggest["errors"] == 0 and biggest["gap_p99_ms"] <= allowed
        measured = (
            f"N={biggest['streams']}: {biggest['errors']} errors, gap p99 {biggest['gap_p99_ms']:.0f} ms"
        )
        goal = f"N=1000, 0 errors, gap p99 <= {allowed:.0f} ms"
        rows.append(
            target(f"concurrency, {name}", measured, goal, ok if biggest["streams"] >= 1000 else None)
        )
    queries = results.get("queries", [])
    if len(queries) >= 2:
        counts = [q["queries"] for q in queries]
        rows.append(
            target(
                "queries per reply constant",
                " / ".join(f"{q['tokens']}: {q['queries']}" for q in queries),
                "equal",
                len(set(counts)) == 1,
            )
        )
    return rows


def print_all(sections: Iterable[str]) -> None:
    for section in sections:
        print(section, end="\n\n", flush=True)
