"""Normalized events that every provider produces, whatever the vendor's wire format."""

from __future__ import annotations

from dataclasses import dataclass


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


Event = TextDelta | ReasoningDelta | Usage | Finish


def estimate_tokens(text: str) -> int:
    """A provider-neutral estimate: about four characters per token, never zero for non-empty text."""
    if not text:
        return 0
    return max(1, (len(text) + 3) // 4)
