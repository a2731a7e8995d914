"""Normalized events that every provider produces, whatever the vendor's wire format."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True)
class Usage:
    """Token counts with one meaning for every provider (SPEC §2).

    ``input_tokens`` includes cache reads and writes; ``output_tokens`` includes reasoning.
    ``estimated`` is true when the stream ended before the provider reported usage.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "estimated": self.estimated,
        }


@dataclass(slots=True)
class Finish:
    """How the reply ended: ``stop``, ``length``, ``content-filter``, ``tool-calls`` or ``other``."""

    reason: str = "stop"


Event = TextDelta | ReasoningDelta | Usage | Finish


def estimate_tokens(text: str) -> int:
    """A provider-neutral estimate: about four characters per token, never zero for non-empty text."""
    if not text:
        return 0
    return max(1, (len(text) + 3) // 4)


def coalesce(items: list[Any]) -> list[Any]:
    """Merge each run of text (or reasoning) deltas into one delta: tokens that arrived together leave
    together, as one chunk, one JSON encoding and one SSE event instead of one per token."""
    if len(items) < 2:
        return items
    merged: list[Any] = []
    for kind, run in groupby(items, type):
        if kind is TextDelta or kind is ReasoningDelta:
            merged.append(kind("".join([delta.text for delta in run])))
        else:
            merged.extend(run)
    return merged
