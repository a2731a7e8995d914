"""The state of one streaming reply, without I/O: events in, protocol chunks out.

Both transports (SSE over WSGI or ASGI, and WebSocket) drive a ``ReplyState``: it accumulates the
text, reasoning, usage and timings that ``saving.save_reply`` persists, and builds the chunks of the
Vercel AI SDK's UI message stream (v1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streaming.conf import ModelSpec
from streaming.events import Event, Finish, ReasoningDelta, TextDelta, Usage, estimate_tokens
from streaming.exceptions import ReplyInterrupted, StreamingError
from streaming.providers.base import ChatMessage

if TYPE_CHECKING:
    from streaming.budgets import BudgetGuard

logger = logging.getLogger(__name__)

Chunk = dict[str, Any]

#: A token count past this is not believed: the reply keeps an estimate instead (a count this large
#: would be a bug upstream, and would not fit the database's integer columns).
MAX_TOKENS = 10**9


class Parts(list[str]):
    """Text that arrives a token at a time. Every ``COMPACT`` pieces become one string: a long reply's
    thousands of small strings would take more memory than their text (about 55 bytes each)."""

    COMPACT = 64

    def __init__(self, pieces: Iterable[str] = ()) -> None:
        super().__init__(pieces)
        self.appended = len(self)  # pieces appended in all: it changes whenever the text does
        self._loose = 0

    def append(self, piece: str) -> None:
        super().append(piece)
        self.appended += 1
        self._loose += 1
        if self._loose == self.COMPACT:
            self[-self.COMPACT :] = ["".join(self[-self.COMPACT :])]
            self._loose = 0


def believable(usage: Usage) -> bool:
    counts = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )
    return all(isinstance(n, int) and 0 <= n <= MAX_TOKENS for n in counts)


@dataclass
class ReplyState:
    """Accumulates one assistant reply. ``status`` stays ``streaming`` until an outcome is set."""

    message_id: str
    conversation_id: str
    user_message_id: str
    user_id: int
    spec: ModelSpec
    context: list[ChatMessage]
    reasoning_requested: bool = False
    started: float = field(default_factory=time.monotonic)
    answered_by: ModelSpec | None = None
    text_parts: Parts = field(default_factory=Parts)
    reasoning_parts: Parts = field(default_factory=Parts)
    usage: Usage | None = None  # the vendor's final count; once settled without one, an estimate
    reported: Usage | None = None  # the vendor's latest partial count (``Usage.partial``), if any
    finish_reason: str = ""
    status: str = "streaming"
    error: StreamingError | None = None
    cancel_reason: str = ""
    ttft_ms: int | None = None
    duration_ms: int | None = None
    cost: str | None = None  # set by save_reply from the stored cost snapshot
    saved: bool = False  # set by save_reply once the outcome is stored
    budget: BudgetGuard | None = None  # stops the reply when it would pass the user's budget
    before_text: str = ""  # a reply that continues one cut short: what it had already
    before_reasoning: str = ""
    _open_part: str | None = None  # "r1" or "t1" while a part is open

    # -- building the stream ------------------------------------------------------------------
    def opening_chunks(self) -> list[Chunk]:
        metadata = {
            "conversationId": self.conversation_id,
            "userMessageId": self.user_message_id,
            "model": self.spec.id,
        }
        return [
            {"type": "start", "messageId": self.message_id, "messageMetadata": metadata},
            {"type": "start-step"},
        ]

    def on_event(self, event: Event) -> list[Chunk]:
        if isinstance(event, TextDelta):
            return self._delta("t1", "text", event.text, self.text_parts)
        if isinstance(event, ReasoningDelta):
            return self._delta("r1", "reasoning", event.text, self.reasoning_parts)
        if isinstance(event, Usage):
            if not believable(event):
                logger.warning(
                    "streaming: ignored the provider's usage for reply %s: %s", self.message_id, event
                )
            elif event.partial:
                self.reported = event
            else:
                self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        return []

    def _delta(self, part_id: str, kind: str, text: str, parts: Parts) -> list[Chunk]:
        if not text:
            return []
        if self.ttft_ms is None:
            self.ttft_ms = self._elapsed_ms()
        parts.append(text)
        chunks: list[Chunk] = []
        if self._open_part != part_id:
            chunks += self._close_part()
            chunks.append({"type": f"{kind}-start", "id": part_id})
            self._open_part = part_id
        chunks.append({"type": f"{kind}-delta", "id": part_id, "delta": text})
        return chunks

    def _close_part(self) -> list[Chunk]:
        if self._open_part is None:
            return []
        kind = "text" if self._open_part == "t1" else "reasoning"
        chunk = {"type": f"{kind}-end", "id": self._open_part}
        self._open_part = None
        return [chunk]

    @property
    def answered_id(self) -> str:
        """The model that answers (a fallback, when the first choice failed before its first token)."""
        return (self.answered_by or self.spec).id

    @property
    def has_output(self) -> bool:
        return bool(self.text_parts or self.reasoning_parts)

    # -- outcomes -------------------------------------------------------------------------------
    def complete(self) -> None:
        self._settle("complete")
        self.finish_reason = self.finish_reason or "stop"

    def fail(self, error: StreamingError) -> None:
        self._settle("error")
        self.error = error
        self.finish_reason = "error"

    def interrupt(self) -> None:
        """Its process died before it ended (the reply is taken over by another)."""
        self._settle("interrupted")
        self.error = ReplyInterrupted()
        self.finish_reason = "error"

    def cancel(self, reason: str) -> None:
        """Stopped by the user (``stopped``) or by a client that went away (``disconnected``)."""
        self._settle("cancelled")
        self.finish_reason = ""
        self.cancel_reason = reason

    def _settle(self, status: str) -> None:
        self.status = status
        self.duration_ms = self._elapsed_ms()
        if self.usage is None and (self.has_output or self.reported is not None):
            self.usage = self.estimated_usage()

    def closing_chunks(self) -> list[Chunk]:
        """The chunks that end the stream for the outcome set by complete(), fail() or cancel()."""
        chunks = self._close_part()
        metadata = self.metadata()
        if self.status == "cancelled":
            chunks.append({"type": "message-metadata", "messageMetadata": metadata})
            chunks.append({"type": "abort", "reason": "stopped"})
            return chunks
        if self.error is not None:
            chunks.append({"type": "error", "errorText": self.error.message, "code": self.error.code})
        else:
            chunks.append({"type": "finish-step"})
        chunks.append({"type": "finish", "finishReason": self.finish_reason, "messageMetadata": metadata})
        return chunks

    def metadata(self) -> Chunk:
        usage = self.usage
        return {
            "status": self.status,
            "usage": None
            if usage is None
            else {
                "inputTokens": usage.input_tokens,
                "outputTokens": usage.output_tokens,
                "cachedInputTokens": usage.cached_input_tokens,
                "cacheWriteTokens": usage.cache_write_tokens,
                "reasoningTokens": usage.reasoning_tokens,
                "estimated": usage.estimated,
            },
            "cost": self.cost,
            "currency": "USD",
            "ttftMs": self.ttft_ms,
            "durationMs": self.duration_ms,
        }

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self.before_text + "".join(self.text_parts)

    @property
    def reasoning(self) -> str:
        return self.before_reasoning + "".join(self.reasoning_parts)

    def estimated_usage(self) -> Usage:
        """What the reply probably cost when the provider never reported its final usage (stopped early,
        failed). What the vendor did report is kept: its input side is exact, and its output count is
        a floor for the estimate from the text received (more may have arrived since)."""
        text_tokens = estimate_tokens("".join(self.text_parts))
        reasoning_tokens = estimate_tokens("".join(self.reasoning_parts))
        reported = self.reported
        if reported is None:
            return Usage(
                input_tokens=sum(estimate_tokens(m.content) for m in self.context),
                output_tokens=text_tokens + reasoning_tokens,
                reasoning_tokens=reasoning_tokens,
                estimated=True,
            )
        # Reasoning the vendor counted but did not send (Gemini's thoughts, unless asked for) counts too.
        reasoning_tokens = max(reported.reasoning_tokens, reasoning_tokens)
        return Usage(
            input_tokens=reported.input_tokens,
            output_tokens=max(reported.output_tokens, text_tokens + reasoning_tokens),
            cached_input_tokens=reported.cached_input_tokens,
            cache_write_tokens=reported.cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            estimated=True,
        )

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)
