"""Normalized events that every provider produces, whatever the vendor's wire format."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True)
class Usage:
    """Token counts with one meaning for every provider, stored and sent alike.

    ``input_tokens`` includes cache reads and writes; ``output_tokens`` includes reasoning.
    ``estimated`` is true when the stream ended before the provider reported usage.
    ``partial`` marks a count the vendor reported while it streams (Anthropic's ``message_start``,
    Gemini's running total on each chunk), not its final one: exact for what it covers, but a reply
    that ends without the final count still has its usage estimated from it. It is not stored.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    partial: bool = False

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


@dataclass(slots=True)
class ReasoningSignature:
    """The vendor's signature of the reasoning just streamed (Anthropic's thinking), which it wants back
    with the tool calls that reasoning led to."""

    signature: str


@dataclass(slots=True)
class ToolCallStart:
    """The model began a tool call: its id and the tool's name (its input follows in ``ToolCallDelta``)."""

    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call's input, as the JSON text the model writes."""

    id: str
    text: str


@dataclass(slots=True)
class ToolCall:
    """A tool call the model finished: its input parsed (None when ``arguments`` is not a JSON object).

    ``signature`` is what a vendor wants back with the call in the next request (Gemini's thought
    signature); None for the others.
    """

    id: str
    name: str
    input: dict[str, Any] | None
    arguments: str = ""
    signature: str | None = None


Event = (
    TextDelta
    | ReasoningDelta
    | Usage
    | Finish
    | ToolCallStart
    | ToolCallDelta
    | ToolCall
    | ReasoningSignature
)


def usage_sum(counts: Iterable[Any]) -> Usage | None:
    """Counts added up (``Usage`` events, or stored usage rows, which have the same fields); None for
    none: the usage of a reply of several model calls."""
    total: Usage | None = None
    for count in counts:
        total = total or Usage()
        total.input_tokens += count.input_tokens
        total.output_tokens += count.output_tokens
        total.cached_input_tokens += count.cached_input_tokens
        total.cache_write_tokens += count.cache_write_tokens
        total.reasoning_tokens += count.reasoning_tokens
        total.estimated = total.estimated or count.estimated
    return total


def parse_tool_input(arguments: str) -> dict[str, Any] | None:
    """A tool call's JSON arguments as an object (none at all is ``{}``); None when they are not one."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def estimate_tokens(text: str) -> int:
    """A provider-neutral estimate: about four characters per token, never zero for non-empty text."""
    if not text:
        return 0
    return max(1, (len(text) + 3) // 4)
