"""A scripted provider for tests, in the spirit of ``llm``'s ``MockModel.enqueue``.

    ScriptedProvider.enqueue([TextDelta("Hel"), Pause(0.1), TextDelta("lo"), Usage(3, 2), Finish()])
    ScriptedProvider.enqueue([RateLimited(retry_after=0)])      # fail before the first token
    ScriptedProvider.enqueue(text_reply(2000))                    # a long reply

Each provider call takes the next script (a default short reply when none is queued) and plays it:
events are yielded, exceptions raised, ``Pause`` sleeps. ``ScriptedProvider.calls`` records every
call with whether it ran to its end or was closed early (the client went away, or it was stopped). A
sync call's ``Pause`` ends early when the call is hung up from another thread, as a real read would.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, Generator, Iterable
from dataclasses import dataclass
from typing import ClassVar

from streaming.events import Event, Finish, TextDelta, Usage
from streaming.exceptions import ProviderConnectionError
from streaming.providers.base import ChatRequest, Provider


@dataclass(slots=True)
class Pause:
    seconds: float


ScriptItem = Event | BaseException | Pause


@dataclass(slots=True)
class Call:
    provider: str
    request: ChatRequest
    finished: bool = False
    closed_early: bool = False


def text_reply(tokens: int, *, usage: bool = True) -> list[ScriptItem]:
    """A reply of ``tokens`` text deltas, then usage and finish."""
    items: list[ScriptItem] = [TextDelta(f"w{i} ") for i in range(tokens)]
    if usage:
        items.append(Usage(input_tokens=5, output_tokens=tokens))
    items.append(Finish("stop"))
    return items


class ScriptedProvider(Provider):
    scripts: ClassVar[deque[list[ScriptItem]]] = deque()
    calls: ClassVar[list[Call]] = []
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def enqueue(cls, items: Iterable[ScriptItem]) -> None:
        cls.scripts.append(list(items))

    @classmethod
    def reset(cls) -> None:
        cls.scripts.clear()
        cls.calls.clear()

    def _begin(self, request: ChatRequest) -> tuple[Call, list[ScriptItem]]:
        with self._lock:
            script = self.scripts.popleft() if self.scripts else text_reply(3)
            call = Call(provider=self.name, request=request)
            self.calls.append(call)
        return call, script

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        call, script = self._begin(request)
        # As a real provider's response would: a hang-up from another thread ends a blocked read.
        hung_up = threading.Event()
        request.hangup.opened(hung_up.set)
        try:
            for item in script:
                if isinstance(item, Pause):
                    if hung_up.wait(item.seconds):
                        call.closed_early = True
                        raise ProviderConnectionError("The connection to the model provider was lost.")
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
            call.finished = True
        except (GeneratorExit, asyncio.CancelledError):
            call.closed_early = True
            raise

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        call, script = self._begin(request)
        try:
            for item in script:
                if isinstance(item, Pause):
                    await asyncio.sleep(item.seconds)
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
            call.finished = True
        except (GeneratorExit, asyncio.CancelledError):
            call.closed_early = True
            raise
