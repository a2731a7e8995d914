"""Providers that misbehave on purpose, for the browser tests. They run inside the server process
(``tests.settings_browser`` configures them), so they take no instructions from the test but the
user's message.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Generator
from typing import ClassVar

from streaming.events import Event, Finish, TextDelta, ToolCall, ToolCallDelta, ToolCallStart, Usage
from streaming.exceptions import Overloaded, ProviderBadRequest
from streaming.providers.base import ChatRequest, Provider
from streaming.providers.demo import REPLY

# Split so that a tag or a link arrives over several deltas: the page renders partial markdown.
HOSTILE_REPLY = [
    "Here is some **HTML**: <scr",
    "ipt>window.__pwned = 'script';</script> and an image ",
    "<img src=x onerror=\"window.__pwned = 'img'\"> and ",
    "[a link](javascript:window.__pwned='link') and ",
    "<a href=\"javascript:window.__pwned='anchor'\">another</a>",
    " <svg onload=\"window.__pwned='svg'\"></svg>",
    " <iframe src=\"javascript:window.__pwned='iframe'\"></iframe>",
    "\n\n<details open ontoggle=\"window.__pwned='details'\">x</details>\n\n",
    "![pic](x\" onerror=\"window.__pwned='md-img')\n\n",
    "<style>body { display: none }</style>\n\n",
    "[data](data:text/html,<script>parent.__pwned='data'</script>) <javascript:window.__pwned='auto'>\n\n",
    "The end.",
]

FLAKY_PARTIAL = ["I started ", "to answer, ", "but then "]
CHUNKY_BURSTS = 4
CHUNKY_GAP_SECONDS = 0.5


class FixedReplyProvider(Provider):
    """The same reply to every request, its ``DELTAS`` 20 ms apart, then ``USAGE``."""

    free = True
    DELTAS: ClassVar[list[str]] = []
    USAGE = Usage(input_tokens=10, output_tokens=60)

    def _events(self) -> list[Event]:
        deltas: list[Event] = [TextDelta(text) for text in self.DELTAS]
        return [*deltas, self.USAGE, Finish("stop")]

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        for event in self._events():
            time.sleep(0.02)
            yield event

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        for event in self._events():
            await asyncio.sleep(0.02)
            yield event


class HostileProvider(FixedReplyProvider):
    """Model output that runs script if the page renders it without sanitizing."""

    DELTAS = HOSTILE_REPLY


class FlakyProvider(Provider):
    """Streams a few words, then fails as an overloaded provider does (after the first token, so the
    service does not retry). A message containing "once" fails only the first time it is sent, so that
    a retry succeeds."""

    free = True
    _attempts: ClassVar[dict[str, int]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def _fails(self, request: ChatRequest) -> bool:
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        with self._lock:
            self._attempts[last] = attempt = self._attempts.get(last, 0) + 1
        return "once" not in last or attempt == 1

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        fails = self._fails(request)
        for text in FLAKY_PARTIAL if fails else ["Recovered: ", "this time ", "it worked."]:
            time.sleep(0.05)
            yield TextDelta(text)
        if fails:
            raise Overloaded()
        yield Usage(input_tokens=5, output_tokens=6)
        yield Finish("stop")

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        fails = self._fails(request)
        for text in FLAKY_PARTIAL if fails else ["Recovered: ", "this time ", "it worked."]:
            await asyncio.sleep(0.05)
            yield TextDelta(text)
        if fails:
            raise Overloaded()
        yield Usage(input_tokens=5, output_tokens=6)
        yield Finish("stop")


def chunky_bursts(request: ChatRequest) -> list[str]:
    last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    text = REPLY.format(words=" ".join(last.split()))
    size = -(-len(text) // CHUNKY_BURSTS)
    return [text[i : i + size] for i in range(0, len(text), size)]


class ChunkyProvider(Provider):
    """The demo reply in a few large bursts, half a second apart, as some providers batch their output."""

    free = True

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        for burst in chunky_bursts(request):
            yield TextDelta(burst)
            time.sleep(CHUNKY_GAP_SECONDS)
        yield Usage(input_tokens=5, output_tokens=60)
        yield Finish("stop")

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        for burst in chunky_bursts(request):
            yield TextDelta(burst)
            await asyncio.sleep(CHUNKY_GAP_SECONDS)
        yield Usage(input_tokens=5, output_tokens=60)
        yield Finish("stop")


class ApprovalProvider(Provider):
    """A model that asks to run ``remember`` (a tool that needs the user's approval) with the user's
    words, then tells what came of it: a tool result, an error or a denial."""

    free = True

    def _events(self, request: ChatRequest) -> list[Event]:
        last = request.messages[-1]
        if last.role == "tool":
            [result] = last.tool_results[-1:]
            said = result.error if result.error is not None else f"Done: {result.output}"
            return [TextDelta(said), Usage(input_tokens=20, output_tokens=5), Finish("stop")]
        arguments = json.dumps({"note": last.content})
        call = ToolCall(f"remember_{uuid.uuid4().hex[:12]}", "remember", {"note": last.content}, arguments)
        return [
            TextDelta("I will remember that, if you agree."),
            ToolCallStart(call.id, call.name),
            ToolCallDelta(call.id, arguments),
            call,
            Usage(input_tokens=10, output_tokens=12),
            Finish("tool-calls"),
        ]

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        for event in self._events(request):
            time.sleep(0.02)
            yield event

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        for event in self._events(request):
            await asyncio.sleep(0.02)
            yield event


#: What a model writes when asked for a plan: a heading, a task list, a table wider than a phone, code in
#: two languages and a link, in a few deltas, as the page would meet them.
MARKDOWN_REPLY = [
    "## Rollback plan\n\nSteps, and where each stands:\n\n",
    "- [x] Snapshot the database\n- [ ] Rollback the deploy\n- [ ] Tell the team\n\n",
    "| Step | Owner | Rollback command | Expected duration | Verification |\n",
    "|---|---|---|---|---|\n",
    "| Rollback | Operations | `kubectl rollout undo deployment/api` | Fifteen minutes | All green |\n",
    "| Announcement | Communications | none | Five minutes | Status page updated |\n\n",
    '```python\ndef rollback(release: str) -> None:\n    """Undo a release."""\n',
    '    run(f"kubectl rollout undo {release}")  # at once\n```\n\n',
    '```js\nconst done = await rollback("api");\n```\n\n',
    "See [the runbook](https://example.com/runbook) for more.",
]


class MarkdownProvider(FixedReplyProvider):
    """A reply with the markdown the page must render well: task lists, a wide table, code."""

    DELTAS = MARKDOWN_REPLY
    USAGE = Usage(input_tokens=12, output_tokens=120)


class BrokenProvider(Provider):
    """Refuses every request before it writes a word (a request the vendor finds malformed): a reply
    with an error and no text at all."""

    free = True

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        raise ProviderBadRequest("The model provider rejected the request.")
        yield  # (a generator)

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        raise ProviderBadRequest("The model provider rejected the request.")
        yield  # (a generator)
