"""Reading Server-Sent Events in tests."""

from __future__ import annotations

from typing import Any

import orjson


def parse_events(body: bytes) -> list[Any]:
    """The ``data:`` payloads of an SSE body: dicts for JSON chunks, ``"[DONE]"``, ``"ping"`` for comments."""
    events: list[Any] = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        if block.startswith(":"):
            events.append("ping")
            continue
        data = "\n".join(line[5:].lstrip() for line in block.split("\n") if line.startswith("data:"))
        events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


def event_ids(body: bytes) -> list[int]:
    return [int(line[3:]) for line in body.decode().split("\n") if line.startswith("id: ")]


def types(events: list[Any]) -> list[str]:
    return [e["type"] if isinstance(e, dict) else e for e in events]


def text_of(events: list[Any]) -> str:
    return "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta")
