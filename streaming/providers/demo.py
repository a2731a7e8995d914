"""The offline demo provider: a deterministic markdown reply, a word at a time, with usage.

It calls tools too, when it is offered them: a message that asks for the time (``what time ...``,
``the date``) calls ``current_time``, one that says ``search for ...`` calls ``search_conversations``
with the words after it, and the reply after the call tells what the tool answered. So the demo project shows
tool calls without a key.

Options: ``tokens_per_second`` (default 50; 0 streams as fast as possible), ``min_reply_tokens``
(pad the reply with numbered paragraphs up to this many tokens, for long-reply tests) and
``first_token_delay`` (seconds of silence before the first token, like a model that thinks before it
answers: heartbeats and the first-token timeout can be watched at work).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncGenerator, Generator

import orjson

from streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    estimate_tokens,
)
from streaming.providers.base import ChatRequest, Provider

_TOKEN = re.compile(r"\s*\S+")

REPLY = """Here is a streamed reply from the **demo** model.

You said: "{words}"

- It arrives one word at a time, like a real model's reply.
- Nothing leaves this machine and no API key is needed.
- Usage counts one token per word.

```python
def greet(name):
    return f"Hello, {{name}}!"
```

That is all for now."""

REASONING = "The user wrote {count} words. I will answer with a short markdown reply that quotes them."


#: Which offered tool the demo calls for a message, and with what input.
ASKS_TIME = re.compile(
    r"\b(what time|the time|current time|what day|what date|the date|today's date)\b", re.I
)
ASKS_SEARCH = re.compile(r"\bsearch (?:my conversations )?for (.+?)[\s?.!]*$", re.IGNORECASE)


def split_tokens(text: str) -> list[str]:
    """Words with the whitespace before them, so that joining the tokens gives the text back."""
    return _TOKEN.findall(text)


def demo_tool_call(request: ChatRequest) -> ToolCall | None:
    """The tool call the demo makes for the request's last user message, if any (never right after a
    tool's answer, and never when it may not call tools)."""
    offered = {tool.name for tool in request.tools}
    last = request.messages[-1] if request.messages else None
    if not offered or request.tool_choice == "none" or last is None or last.role != "user":
        return None
    words = " ".join(last.content.split())
    found = ASKS_SEARCH.search(words)
    if found and "search_conversations" in offered:
        arguments = {"query": found.group(1).strip("\"'")}
        return ToolCall(_call_id(), "search_conversations", arguments, orjson.dumps(arguments).decode())
    if ASKS_TIME.search(words) and "current_time" in offered:
        return ToolCall(_call_id(), "current_time", {}, "{}")
    return None


def _call_id() -> str:
    return f"demo_{uuid.uuid4().hex[:16]}"


def tools_reply(request: ChatRequest) -> str:
    """The demo's reply after its tool calls: what each one answered."""
    results = [r for m in request.messages if m.role == "tool" for r in m.tool_results][-4:]
    lines = ["Here is what the tools answered:", ""]
    for result in results:
        said = result.error if result.error is not None else orjson.dumps(result.output).decode()
        lines.append(f"- **{result.name}**: `{said[:400]}`")
    return "\n".join(lines)


class DemoProvider(Provider):
    free = True

    def _script(self, request: ChatRequest) -> tuple[list[str], list[str], Usage]:
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        words = " ".join(last_user.split())
        after_tools = bool(request.messages) and request.messages[-1].role == "tool"
        text = tools_reply(request) if after_tools else REPLY.format(words=words)
        tokens = split_tokens(text)
        minimum = int(self.options.get("min_reply_tokens", 0))
        paragraph = 1
        while len(tokens) < minimum:
            tokens += split_tokens(f"\n\nParagraph {paragraph} adds more words to make a long reply.")
            paragraph += 1
        reasoning = split_tokens(REASONING.format(count=len(words.split()))) if request.reasoning else []
        usage = Usage(
            input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
            output_tokens=len(tokens) + len(reasoning),
            reasoning_tokens=len(reasoning),
        )
        return tokens, reasoning, usage

    def _delay(self) -> float:
        rate = float(self.options.get("tokens_per_second", 50))
        return 1.0 / rate if rate > 0 else 0.0

    def _first_token_delay(self) -> float:
        return max(0.0, float(self.options.get("first_token_delay", 0)))

    def _call(self, request: ChatRequest) -> list[Event] | None:
        """The events of a tool call, when the demo makes one for this request."""
        call = demo_tool_call(request)
        if call is None:
            return None
        usage = Usage(
            input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
            output_tokens=estimate_tokens(call.name + call.arguments),
        )
        return [
            ToolCallStart(call.id, call.name),
            ToolCallDelta(call.id, call.arguments),
            call,
            usage,
            Finish("tool-calls"),
        ]

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        if pause := self._first_token_delay():
            time.sleep(pause)
        call = self._call(request)
        if call is not None:
            yield from call
            return
        tokens, reasoning, usage = self._script(request)
        delay = self._delay()
        for piece in reasoning:
            if delay:
                time.sleep(delay)
            yield ReasoningDelta(piece)
        for piece in tokens:
            if delay:
                time.sleep(delay)
            yield TextDelta(piece)
        yield usage
        yield Finish("stop")

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        if pause := self._first_token_delay():
            await asyncio.sleep(pause)
        call = self._call(request)
        if call is not None:
            for event in call:
                yield event
            return
        tokens, reasoning, usage = self._script(request)
        delay = self._delay()
        for piece in reasoning:
            if delay:
                await asyncio.sleep(delay)
            yield ReasoningDelta(piece)
        for piece in tokens:
            if delay:
                await asyncio.sleep(delay)
            yield TextDelta(piece)
        yield usage
        yield Finish("stop")
