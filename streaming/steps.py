"""The steps of a reply: each model call, the tool calls it makes, what they come to, and the next call.

A step is one model call. When its stream ends with tool calls, ``plan_tools`` says which run now,
which wait for the user's approval (``tool-approval-request``; the reply then ends, awaiting their
answer) and which cannot run (input that is not JSON, the reply's last step). ``tool_results`` turns
what the calls came to into ``tool-output-available`` / ``tool-output-error`` / ``tool-output-denied``
chunks, and ``next_step`` gives the model's next call its context: what it said and called in this
step, and the results (``finish-step`` and ``start-step`` between them). No I/O here: the producer
runs the calls (``streaming.tools.running``) and the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streaming.events import ToolCall, ToolCallDelta, ToolCallStart
from streaming.parts import DENIED
from streaming.providers.base import ChatMessage, ToolResult, ToolSpec

if TYPE_CHECKING:
    from streaming.tools.definition import Tool

Chunk = dict[str, Any]

#: What the model and the user are told of a call the reply's last model call made.
STEP_LIMIT = "Not run: the reply reached its limit of {steps} model calls."


@dataclass
class Step:
    """The state of the current model call and of the tool calls it made."""

    started: float = field(default_factory=time.monotonic)
    open: bool = False  # its ``start-step`` was sent in this stream
    call_ended: bool = False  # the model call ended (its usage is kept)
    ttft_ms: int | None = None
    chars: int = 0  # output characters (text, reasoning, tool input)
    reasoning_chars: int = 0
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    signature: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    started_calls: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # call id -> why its input is unusable
    results: dict[str, ToolResult] = field(default_factory=dict)
    answers: dict[str, tuple[bool, str]] = field(default_factory=dict)  # approvals: call id -> (yes?, reason)


@dataclass
class ToolPlan:
    """What becomes of a step's tool calls: ``run`` now, ``pending`` approval; ``results`` known already."""

    run: list[ToolCall] = field(default_factory=list)
    pending: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    last: bool = False  # the reply's last model call: no other follows


def approval_id(call_id: str) -> str:
    return f"approval_{call_id}"


class StepsMixin:
    """The step and tool part of ``ReplyState``."""

    step: Step
    context: list[ChatMessage]
    calls: list[Any]
    turns: list[ChatMessage]
    tools: dict[str, Tool]
    max_steps: int
    resuming: bool

    def emit(self, chunks: list[Chunk]) -> list[Chunk]:
        raise NotImplementedError

    def _output(self, chars: int) -> None:
        raise NotImplementedError

    def _close_part(self) -> list[Chunk]:
        raise NotImplementedError

    # -- the model's call --------------------------------------------------------------------------
    def step_context(self) -> list[ChatMessage]:
        """The messages of the current model call: the context, then the reply's steps so far."""
        return [*self.context, *self.turns] if self.turns else self.context

    def tool_specs(self) -> list[ToolSpec]:
        from streaming.tools.registry import specs

        return specs(list(self.tools.values()))

    @property
    def last_call(self) -> bool:
        """Whether the next model call is the reply's last: it is made without tools to call."""
        return len(self.calls) + 1 >= self.max_steps

    def _tool_event(self, event: ToolCallStart | ToolCallDelta | ToolCall) -> list[Chunk]:
        step = self.step
        if isinstance(event, ToolCallDelta):
            self._output(len(event.text))
            return [{"type": "tool-input-delta", "toolCallId": event.id, "inputTextDelta": event.text}]
        chunks: list[Chunk] = []
        if event.id not in step.started_calls:
            step.started_calls.add(event.id)
            self._output(len(event.name))
            chunks += self._close_part()
            chunks.append({"type": "tool-input-start", "toolCallId": event.id, "toolName": event.name})
        if isinstance(event, ToolCallStart):
            return chunks
        step.calls.append(event)
        if event.input is None:
            error = f"The input of {event.name} is not a JSON object."
            step.failed[event.id] = error
            chunks.append(
                {
                    "type": "tool-input-error",
                    "toolCallId": event.id,
                    "toolName": event.name,
                    "input": event.arguments,
                    "errorText": error,
                }
            )
            return chunks
        available: Chunk = {
            "type": "tool-input-available",
            "toolCallId": event.id,
            "toolName": event.name,
            "input": event.input,
        }
        if event.signature:
            available["providerMetadata"] = {"google": {"thoughtSignature": event.signature}}
        chunks.append(available)
        return chunks

    # -- after the model's call ----------------------------------------------------------------------
    def plan_tools(self) -> tuple[ToolPlan, list[Chunk]]:
        """The step's model call ended with tool calls: what becomes of each, and the chunks that say
        so now (approval requests; the calls a last step made, not run)."""
        step = self.step
        plan = ToolPlan(last=len(self.calls) >= self.max_steps)
        chunks: list[Chunk] = []
        for call in step.calls:
            tool = self.tools.get(call.name)
            if call.id in step.failed:
                plan.results.append(ToolResult(call.id, call.name, error=step.failed[call.id]))
            elif plan.last:
                plan.results.append(
                    ToolResult(call.id, call.name, error=STEP_LIMIT.format(steps=self.max_steps))
                )
            elif tool is not None and tool.needs_approval:
                plan.pending.append(call)
                chunks.append(
                    {
                        "type": "tool-approval-request",
                        "approvalId": approval_id(call.id),
                        "toolCallId": call.id,
                    }
                )
            else:
                plan.run.append(call)
        return plan, self.emit(chunks)

    def plan_approved(self) -> ToolPlan:
        """A reply whose calls waited for approval goes on: the approved ones run, the others are denied."""
        plan = ToolPlan()
        for call in self.step.calls:
            if call.id in self.step.results:
                continue  # (it ran, or failed, before the step waited)
            approved, reason = self.step.answers.get(call.id, (False, ""))
            if approved:
                plan.run.append(call)
            else:
                error = f"{DENIED} {reason}" if reason else DENIED
                plan.results.append(ToolResult(call.id, call.name, error=error, denied=True))
        return plan

    def tool_results(self, results: list[ToolResult]) -> list[Chunk]:
        """What the calls came to, as chunks (a call whose input was unusable has said so already)."""
        chunks: list[Chunk] = []
        for result in results:
            self.step.results[result.call_id] = result
            if result.call_id in self.step.failed:
                continue
            metadata = (
                {} if result.duration_ms is None else {"toolMetadata": {"durationMs": result.duration_ms}}
            )
            if result.denied:
                chunks.append({"type": "tool-output-denied", "toolCallId": result.call_id})
            elif result.error is not None:
                chunks.append(
                    {
                        "type": "tool-output-error",
                        "toolCallId": result.call_id,
                        "errorText": result.error,
                        **metadata,
                    }
                )
            else:
                chunks.append(
                    {
                        "type": "tool-output-available",
                        "toolCallId": result.call_id,
                        "output": result.output,
                        **metadata,
                    }
                )
        return self.emit(chunks)

    def next_step(self) -> list[Chunk]:
        """The model is called again: it gets this step's calls and their results."""
        step = self.step
        reasoning = "".join(step.reasoning) if step.signature else ""
        self.turns += [
            ChatMessage(
                "assistant",
                "".join(step.text),
                tool_calls=list(step.calls),
                reasoning=reasoning,
                reasoning_signature=step.signature,
            ),
            ChatMessage("tool", "", tool_results=[step.results[call.id] for call in step.calls]),
        ]
        chunks = self._close_part()
        if step.open:
            chunks.append({"type": "finish-step"})
        chunks.append({"type": "start-step"})
        self.step = Step(open=True)
        return self.emit(chunks)
