"""The state of one streaming reply, without I/O: events in, protocol chunks out.

Both transports (SSE over WSGI or ASGI, and WebSocket) drive a ``ReplyState``: it builds the chunks of
the Vercel AI SDK's UI message stream (v1) from the provider's events, folds them into the message's
parts (``streaming.parts``: what ``saving.save_reply`` stores), and keeps the usage of each model call
and the reply's timings. A reply may take several model calls (steps): the model calls tools, the app
runs them and calls the model again; ``streaming.steps`` has that part of the state.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streaming.conf import ModelSpec
from streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    estimate_tokens,
    usage_sum,
)
from streaming.exceptions import ReplyInterrupted, StreamingError
from streaming.parts import Part, Parts, text_of
from streaming.providers.base import ChatMessage
from streaming.steps import Step, StepsMixin

if TYPE_CHECKING:
    from streaming.budgets import BudgetGuard
    from streaming.tools.definition import Tool

logger = logging.getLogger(__name__)

Chunk = dict[str, Any]

#: A token count past this is not believed: the reply keeps an estimate instead (a count this large
#: would be a bug upstream, and would not fit the database's integer columns).
MAX_TOKENS = 10**9
#: The delta chunk of an open part, by the first letter of its id.
DELTAS = {"t": "text-delta", "r": "reasoning-delta"}
#: A reply that waits for its user to approve tool calls (its status until they answer).
AWAITING_APPROVAL = "awaiting_approval"


def chars_to_tokens(chars: int) -> int:
    """``estimate_tokens`` of a text of ``chars`` characters."""
    return 0 if chars <= 0 else max(1, (chars + 3) // 4)


def believable(usage: Usage) -> bool:
    counts = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )
    return all(isinstance(n, int) and 0 <= n <= MAX_TOKENS for n in counts)


@dataclass(slots=True)
class ModelCall:
    """One model call of a reply, ended: the model that answered, its usage (one ``Usage`` row each)."""

    spec: ModelSpec
    usage: Usage
    ttft_ms: int | None = None
    duration_ms: int | None = None


def utf16_length(text: str) -> int:
    """The length of ``text`` in UTF-16 code units: a browser's ``string.length``."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class ReplyState(StepsMixin):
    """Accumulates one assistant reply. ``status`` stays ``streaming`` until an outcome is set.

    ``before`` holds the parts of a reply this one goes on with (``merge_text``: a reply cut short,
    continued with the same words; otherwise one whose tool calls waited for approval).
    """

    message_id: str
    conversation_id: str
    user_message_id: str
    user_id: int
    spec: ModelSpec
    context: list[ChatMessage]
    reasoning_requested: bool = False
    started: float = field(default_factory=time.monotonic)
    answered_by: ModelSpec | None = None
    usage: Usage | None = None  # the current model call's final count
    reported: Usage | None = None  # the current call's latest partial count (``Usage.partial``), if any
    calls: list[ModelCall] = field(default_factory=list)  # the model calls that ended
    finish_reason: str = ""
    status: str = "streaming"
    error: StreamingError | None = None
    cancel_reason: str = ""
    ttft_ms: int | None = None
    duration_ms: int | None = None
    cost: str | None = None  # set by save_reply from the stored cost snapshot
    saved: bool = False  # set by save_reply once the outcome is stored
    budget: BudgetGuard | None = None  # stops the reply when it would pass the user's budget
    before: list[Part] = field(default_factory=list)
    merge_text: bool = False
    user: Any = None  # the requesting user, whom the tools act for
    tools: dict[str, Tool] = field(default_factory=dict)  # the tools offered, by name
    max_steps: int = 1  # model calls at most (``MAX_STEPS`` for a reply that starts)
    resuming: bool = False  # it starts by running the calls its user approved
    step: Step = field(default_factory=Step)
    turns: list[ChatMessage] = field(default_factory=list)  # the steps so far, as the model's context
    _parts: Parts = field(init=False)
    _open_part: str | None = None  # e.g. "r1" or "t2" while a part is open
    _numbers: dict[str, int] = field(default_factory=dict)  # parts opened, per kind
    _output_chars: int = 0
    _pieces: list[str] = field(default_factory=list)  # the open part's pieces (in its Parts)

    def __post_init__(self) -> None:
        self._parts = Parts(self.before, merge_text=self.merge_text)

    # -- building the stream ------------------------------------------------------------------
    def opening_chunks(self) -> list[Chunk]:
        metadata: Chunk = {
            "conversationId": self.conversation_id,
            "userMessageId": self.user_message_id,
            "model": self.spec.id,
        }
        if self.merge_text and self.before:
            # A continued reply's stream has only its new text: a reader that already shows more of
            # the message (a copy saved while it streamed) keeps this much of it, as JavaScript
            # counts characters, and adds the stream to that.
            metadata["continues"] = {
                "textLength": utf16_length(text_of(self.before)),
                "reasoningLength": utf16_length(text_of(self.before, "reasoning")),
            }
        chunks: list[Chunk] = [{"type": "start", "messageId": self.message_id, "messageMetadata": metadata}]
        if not self.resuming:  # (a reply whose calls were approved first reports what they came to)
            chunks += self.emit([{"type": "start-step"}])
            self.step.open = True
        return chunks

    def emit(self, chunks: list[Chunk]) -> list[Chunk]:
        """Chunks that leave: the message's parts take them in."""
        for chunk in chunks:
            self._parts.add(chunk)
        return chunks

    def on_event(self, event: Event) -> list[Chunk]:
        if isinstance(event, TextDelta):
            return self._delta("t", "text", event.text)
        if isinstance(event, ReasoningDelta):
            return self._delta("r", "reasoning", event.text)
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
        elif isinstance(event, (ToolCallStart, ToolCallDelta, ToolCall)):
            return self.emit(self._tool_event(event))
        elif isinstance(event, ReasoningSignature):
            self.step.signature = event.signature
        return []

    def _delta(self, prefix: str, kind: str, text: str) -> list[Chunk]:
        # The path of every token: the open part's pieces take the text without a pass through Parts.
        if not text:
            return []
        step = self.step
        if step.ttft_ms is None:
            self._output(0)
        size = len(text)
        step.chars += size
        self._output_chars += size
        if kind == "text":
            step.text.append(text)
        else:
            step.reasoning.append(text)
            step.reasoning_chars += size
        part_id = self._open_part
        if part_id is not None and part_id[0] == prefix:
            self._pieces.append(text)
            return [{"type": DELTAS[prefix], "id": part_id, "delta": text}]
        chunks = self._close_part()
        number = self._numbers[kind] = self._numbers.get(kind, 0) + 1
        part_id = self._open_part = f"{prefix}{number}"
        chunks.append({"type": f"{kind}-start", "id": part_id})
        self.emit(chunks)
        self._pieces = self._parts.pieces(part_id)
        self._pieces.append(text)
        return [*chunks, {"type": DELTAS[prefix], "id": part_id, "delta": text}]

    def _output(self, chars: int) -> None:
        """Output came (text, reasoning, a tool call): the first is the reply's first token."""
        if self.ttft_ms is None:
            self.ttft_ms = self._elapsed_ms()
        step = self.step
        if step.ttft_ms is None:
            step.ttft_ms = int((time.monotonic() - step.started) * 1000)
        step.chars += chars
        self._output_chars += chars

    def _close_part(self) -> list[Chunk]:
        """The open part's end (emitted by the caller)."""
        part_id = self._open_part
        if part_id is None:
            return []
        chunk: Chunk = {"type": f"{'text' if part_id[0] == 't' else 'reasoning'}-end", "id": part_id}
        if part_id[0] == "r" and self.step.signature:
            chunk["providerMetadata"] = {"anthropic": {"signature": self.step.signature}}
        self._open_part = None
        return [chunk]

    @property
    def answered_id(self) -> str:
        """The model that answers (a fallback, when the first choice failed before its first token)."""
        return (self.answered_by or self.spec).id

    @property
    def output_chars(self) -> int:
        """How much output the reply has had (a checkpoint is due when it grew)."""
        return self._output_chars

    # -- model calls --------------------------------------------------------------------------------
    def step_done(self) -> list[Chunk]:
        """The model's stream of this step ended: its open part closes, its usage is kept."""
        chunks = self.emit(self._close_part())
        self.end_call()
        return chunks

    def end_call(self) -> None:
        """The current model call ended (its stream, or the reply): keep its usage, estimated when the
        vendor did not report it, if it produced anything."""
        usage = self.usage
        if usage is None and (self.step.chars or self.reported is not None):
            usage = self.estimated_usage()
        if usage is not None:
            ttft = self.step.ttft_ms
            duration = int((time.monotonic() - self.step.started) * 1000)
            self.calls.append(ModelCall(self.answered_by or self.spec, usage, ttft, duration))
        self.usage = self.reported = None
        self.step.call_ended = True

    def seen_output(self, text_chars: int, reasoning_chars: int, ttft_ms: int | None) -> None:
        """Output this state did not see came (a reply taken over from its log): its usage estimate."""
        self.step.chars += text_chars + reasoning_chars
        self.step.reasoning_chars += reasoning_chars
        self._output_chars += text_chars + reasoning_chars
        self.ttft_ms = self.step.ttft_ms = ttft_ms

    @property
    def total_usage(self) -> Usage | None:
        """The usage of this reply's model calls together (what ``finish`` reports)."""
        return usage_sum(call.usage for call in self.calls)

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

    def await_approval(self) -> None:
        """The step's tool calls wait for the user's answer: the reply ends here until it comes."""
        self._settle(AWAITING_APPROVAL)
        self.finish_reason = "tool-calls"

    def _settle(self, status: str) -> None:
        self.status = status
        self.duration_ms = self._elapsed_ms()
        if not self.step.call_ended:
            self.end_call()

    def closing_chunks(self) -> list[Chunk]:
        """The chunks that end the stream for the outcome set by complete(), fail() or cancel()."""
        chunks = self.emit(self._close_part())
        metadata = self.metadata()
        if self.status == "cancelled":
            chunks.append({"type": "message-metadata", "messageMetadata": metadata})
            chunks.append({"type": "abort", "reason": "stopped"})
            return chunks
        if self.error is not None:
            chunks.append({"type": "error", "errorText": self.error.message, "code": self.error.code})
        elif self.step.open:
            chunks.append({"type": "finish-step"})
        chunks.append({"type": "finish", "finishReason": self.finish_reason, "messageMetadata": metadata})
        return chunks

    def metadata(self) -> Chunk:
        usage = self.total_usage
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

    # -- what is stored -----------------------------------------------------------------------------
    @property
    def parts(self) -> list[Part]:
        """The message's parts so far (the reply it goes on with included)."""
        return self._parts.result()

    @property
    def text(self) -> str:
        return text_of(self._parts.result())

    @property
    def reasoning(self) -> str:
        return text_of(self._parts.result(), "reasoning")

    def estimated_usage(self) -> Usage:
        """What the current model call probably cost when the provider never reported its final usage
        (stopped early, failed). What the vendor did report is kept: its input side is exact, and its
        output count is a floor for the estimate from the output received (more may have arrived since)."""
        step = self.step
        reasoning_tokens = chars_to_tokens(step.reasoning_chars)
        text_tokens = chars_to_tokens(step.chars - step.reasoning_chars)  # (tool calls' input too)
        reported = self.reported
        if reported is None:
            return Usage(
                input_tokens=sum(estimate_tokens(m.content) for m in self.step_context()),
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
