"""A message's parts: what it said and did, in order, as the AI SDK's UI message parts.

A reply is stored as the parts a client builds from its stream (``Parts.add`` folds the UI message
stream's chunks into them, as the AI SDK's ``processUIMessageStream`` does): ``step-start`` at each
model call, ``text`` and ``reasoning``, and one ``tool-<name>`` part per tool call with its
``input``, its ``state`` (``input-available``, ``approval-requested``, ``output-available``,
``output-error``, ``output-denied``) and its ``output`` or ``errorText``. So a stored reply replays as
the stream it was (``replay_chunks``), a client can show it as it showed the live one, and the next
turn's context has its tool calls and results as they were (``context_messages``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from streaming.events import ToolCall
from streaming.providers.base import ChatMessage, ToolResult

Part = dict[str, Any]
Chunk = dict[str, Any]

#: What the model is told of a call that did not run.
NOT_RUN = {
    "approval-requested": "Not run: the user did not answer its approval request.",
    "input-available": "Not run: the reply was stopped before this call finished.",
    "input-streaming": "Not run: the reply was stopped while the call was being written.",
}
DENIED = "The user denied this tool call."


def is_tool(part: Part) -> bool:
    return str(part.get("type", "")).startswith("tool-")


def tool_name(part: Part) -> str:
    return str(part["type"])[5:]


class Parts:
    """Folds a reply's chunks into its parts. ``merge_text``: the first text joins the last text part
    (a reply that continues one cut short goes on with the same words)."""

    def __init__(self, parts: Iterable[Part] = (), *, merge_text: bool = False) -> None:
        self.parts: list[Part] = [dict(p) for p in parts]
        self._pieces: dict[int, list[str]] = {}  # an open text/reasoning part's index -> its pieces
        self._open: dict[str, int] = {}  # a text/reasoning id -> its part's index
        self._tools: dict[str, int] = {
            part["toolCallId"]: i for i, part in enumerate(self.parts) if is_tool(part)
        }
        self._merge_text = merge_text
        self._skip_step = merge_text

    def add(self, chunk: Chunk) -> None:
        kind = chunk["type"]
        if kind == "text-delta" or kind == "reasoning-delta":
            self._pieces[self._open[chunk["id"]]].append(chunk["delta"])
        elif kind == "text-start" or kind == "reasoning-start":
            self._start(kind[:-6], chunk["id"])
        elif kind == "text-end" or kind == "reasoning-end":
            index = self._end(chunk["id"])
            if index is not None and "providerMetadata" in chunk:  # (Anthropic's thinking signature)
                self.parts[index]["providerMetadata"] = chunk["providerMetadata"]
        elif kind == "start-step":
            if self._skip_step:  # (going on with a reply cut short: the same step, the same text)
                self._skip_step = False
            else:
                self.parts.append({"type": "step-start"})
        elif kind.startswith("tool-"):
            self._tool(kind, chunk)

    def _start(self, kind: str, part_id: str) -> None:
        last = self.parts[-1] if self.parts else None
        if kind == "text" and self._merge_text and last is not None and last["type"] == "text":
            index = len(self.parts) - 1
        else:
            self.parts.append({"type": kind, "text": ""})
            index = len(self.parts) - 1
        self._merge_text = False
        self._open[part_id] = index
        self._pieces[index] = [self.parts[index]["text"]]

    def pieces(self, part_id: str) -> list[str]:
        """The open part's text so far, in pieces, which its deltas may be appended to directly."""
        return self._pieces[self._open[part_id]]

    def _end(self, part_id: str) -> int | None:
        index = self._open.pop(part_id, None)
        if index is not None:
            self.parts[index]["text"] = "".join(self._pieces.pop(index))
        return index

    def _tool(self, kind: str, chunk: Chunk) -> None:
        call_id = chunk["toolCallId"]
        if kind == "tool-input-start":
            self._merge_text = False
            self._tools[call_id] = len(self.parts)
            self.parts.append(
                {"type": f"tool-{chunk['toolName']}", "toolCallId": call_id, "state": "input-streaming"}
            )
            return
        index = self._tools.get(call_id)
        if index is None:
            return
        part = self.parts[index]
        if kind == "tool-input-available":
            part.update(state="input-available", input=chunk["input"])
            if "providerMetadata" in chunk:  # (Gemini's thought signature)
                part["callProviderMetadata"] = chunk["providerMetadata"]
        elif kind == "tool-input-error":
            part.update(state="output-error", input=chunk.get("input"), errorText=chunk["errorText"])
        elif kind == "tool-approval-request":
            part.update(state="approval-requested", approval={"id": chunk["approvalId"]})
        elif kind == "tool-output-available":
            part.update(state="output-available", output=chunk["output"])
        elif kind == "tool-output-error":
            part.update(state="output-error", errorText=chunk["errorText"])
        elif kind == "tool-output-denied":
            part.update(state="output-denied")
        if "toolMetadata" in chunk:
            part["toolMetadata"] = chunk["toolMetadata"]

    def result(self) -> list[Part]:
        """The parts so far, open ones with their text so far."""
        parts = [dict(p) for p in self.parts]
        for index, pieces in self._pieces.items():
            parts[index]["text"] = "".join(pieces)
        return parts

    def tool(self, call_id: str) -> Part | None:
        index = self._tools.get(call_id)
        return None if index is None else self.parts[index]


def text_of(parts: Iterable[Part], kind: str = "text") -> str:
    """The message's text (or reasoning): its parts of that kind, a blank line between them."""
    return "\n\n".join(p["text"] for p in parts if p.get("type") == kind and p.get("text"))


def from_text(content: str, reasoning: str = "") -> list[Part]:
    """The parts of a message stored before messages had parts."""
    parts: list[Part] = [{"type": "step-start"}]
    if reasoning:
        parts.append({"type": "reasoning", "text": reasoning})
    if content:
        parts.append({"type": "text", "text": content})
    return parts


# -- the model's context --------------------------------------------------------------------------------


def steps(parts: list[Part]) -> Iterator[list[Part]]:
    """The parts of each model call (a message without ``step-start`` parts is one step)."""
    current: list[Part] = []
    for part in parts:
        if part.get("type") == "step-start":
            if current:
                yield current
            current = []
        else:
            current.append(part)
    if current:
        yield current


def call_of(part: Part) -> ToolCall:
    """A stored tool part as the call the model made."""
    value = part.get("input")
    data = value if isinstance(value, dict) else {}
    arguments = orjson.dumps(data).decode()
    signature = _metadata(part, "callProviderMetadata", "google", "thoughtSignature")
    return ToolCall(part["toolCallId"], tool_name(part), data, arguments, signature)


def _metadata(part: Part, field: str, vendor: str, key: str) -> str | None:
    value = ((part.get(field) or {}).get(vendor) or {}).get(key)
    return value if isinstance(value, str) else None


def result_of(part: Part) -> ToolResult:
    """A stored tool part as what its call came to, for the model: its output, its error, a denial, or
    why it never ran (every call the model made gets an answer: vendors refuse a call without one)."""
    state = part.get("state")
    name, call_id = tool_name(part), part["toolCallId"]
    if state == "output-available":
        return ToolResult(call_id, name, output=part.get("output"))
    if state == "output-error":
        return ToolResult(call_id, name, error=str(part.get("errorText") or "The tool failed."))
    if state == "output-denied":
        reason = (part.get("approval") or {}).get("reason")
        return ToolResult(call_id, name, error=f"{DENIED} {reason}" if reason else DENIED)
    return ToolResult(call_id, name, error=NOT_RUN.get(str(state), NOT_RUN["input-available"]))


def context_messages(parts: list[Part]) -> list[ChatMessage]:
    """A stored assistant message as the model's context: per step, what it said and the tool calls it
    made (an assistant message), then their results (a ``tool`` message)."""
    messages: list[ChatMessage] = []
    for step in steps(parts):
        text = text_of(step)
        tools = [p for p in step if is_tool(p)]
        if not tools:
            if text:
                messages.append(ChatMessage("assistant", text))
            continue
        reasoning = [p for p in step if p.get("type") == "reasoning"]
        signature = (
            (_metadata(reasoning[-1], "providerMetadata", "anthropic", "signature") or "")
            if reasoning
            else ""
        )
        messages.append(
            ChatMessage(
                "assistant",
                text,
                tool_calls=[call_of(p) for p in tools],
                reasoning=text_of(step, "reasoning") if signature else "",
                reasoning_signature=signature,
            )
        )
        messages.append(ChatMessage("tool", "", tool_results=[result_of(p) for p in tools]))
    return messages


# -- a stored reply as a stream ----------------------------------------------------------------------------


def replay_chunks(parts: list[Part]) -> list[Chunk]:
    """The chunks that make ``parts``, from the first ``start-step`` on; ``finish-step`` between steps
    (the last one is the ending's)."""
    chunks: list[Chunk] = []
    numbers = {"text": 0, "reasoning": 0}
    for part in parts:
        kind = part.get("type")
        if kind == "step-start":
            if chunks:
                chunks.append({"type": "finish-step"})
            chunks.append({"type": "start-step"})
        elif kind in ("text", "reasoning"):
            numbers[kind] += 1
            part_id = f"{kind[0]}{numbers[kind]}"
            end: Chunk = {"type": f"{kind}-end", "id": part_id}
            if "providerMetadata" in part:
                end["providerMetadata"] = part["providerMetadata"]
            chunks += [
                {"type": f"{kind}-start", "id": part_id},
                {"type": f"{kind}-delta", "id": part_id, "delta": part.get("text", "")},
                end,
            ]
        elif is_tool(part):
            chunks += tool_chunks(part)
    if not chunks or chunks[0]["type"] != "start-step":
        chunks.insert(0, {"type": "start-step"})
    return chunks


def tool_chunks(part: Part) -> list[Chunk]:
    """The chunks of one stored tool call, to the state it reached."""
    call_id, name, state = part["toolCallId"], tool_name(part), part.get("state")
    chunks: list[Chunk] = [{"type": "tool-input-start", "toolCallId": call_id, "toolName": name}]
    if state == "input-streaming":
        return chunks
    available: Chunk = {
        "type": "tool-input-available",
        "toolCallId": call_id,
        "toolName": name,
        "input": part.get("input"),
    }
    if "callProviderMetadata" in part:
        available["providerMetadata"] = part["callProviderMetadata"]
    chunks.append(available)
    metadata = {"toolMetadata": part["toolMetadata"]} if "toolMetadata" in part else {}
    if state == "approval-requested":
        chunks.append(
            {"type": "tool-approval-request", "approvalId": part["approval"]["id"], "toolCallId": call_id}
        )
    elif state == "output-available":
        chunks.append(
            {"type": "tool-output-available", "toolCallId": call_id, "output": part.get("output"), **metadata}
        )
    elif state == "output-error":
        chunks.append(
            {
                "type": "tool-output-error",
                "toolCallId": call_id,
                "errorText": part.get("errorText", ""),
                **metadata,
            }
        )
    elif state == "output-denied":
        chunks.append({"type": "tool-output-denied", "toolCallId": call_id})
    return chunks


def in_words(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Steps with tool calls told in words, as one assistant message: for a model that is offered no
    tools, which its vendor may not accept tool calls and results from."""
    lines: list[str] = []
    for message in messages:
        if message.content:
            lines.append(message.content)
        for call in message.tool_calls:
            lines.append(f"[I called the tool {call.name} with {orjson.dumps(call.input or {}).decode()}.]")
        for result in message.tool_results:
            said = result.error if result.error is not None else orjson.dumps(result.output).decode()
            lines.append(f"[{result.name} answered: {said}]")
    return [ChatMessage("assistant", "\n\n".join(lines))] if lines else []


def message_context(role: str, content: str, parts: list[Part], *, tools: bool) -> list[ChatMessage]:
    """A stored message as the model's context: an assistant's tool calls and their results as they
    were, or, for a model offered no tools (a vendor refuses tool calls without tool definitions),
    told in words."""
    if role != "assistant" or not any(is_tool(p) for p in parts):
        return [ChatMessage(role, content)] if content else []
    said = context_messages(parts)
    return said if tools else in_words(said)
