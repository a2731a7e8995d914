"""The provider contract.

A provider turns a list of chat messages plus options into a stream of normalized events
(``streaming.events``). It has a sync way (``stream``, for WSGI requests) and an async way
(``astream``, for ASGI requests) to do so; the mapping from the vendor's chunks to events is
written once per provider and shared by both.

Rules every provider follows:

* Yield ``TextDelta`` / ``ReasoningDelta`` as they arrive, one ``Usage`` when the vendor reports its
  final count, and one ``Finish`` at the end. A count the vendor reports while it streams may be
  yielded as ``Usage(..., partial=True)``, just before the delta it comes with (so that whoever sees
  the text has it), but never before the reply has a first delta: the service layer takes the first
  event for the first token, and retries nothing after it.
* Raise a ``streaming.exceptions.ProviderError`` subclass for every failure, never a vendor exception.
* Close the upstream HTTP connection when the generator is closed early (``close()`` / ``aclose()``
  or task cancellation): that is how a stopped reply stops costing money. And hand each response
  that opens to ``request.hangup.opened(...)``, so that another thread can end a read that is
  blocked on a quiet upstream (a WSGI reply's producer thread cannot be interrupted otherwise).
* Never retry after the first event; retries and fallbacks before it belong to the service layer,
  so SDK retries are turned off (``max_retries=0`` or its equivalent).
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from streaming.events import Event, ToolCall


@dataclass(slots=True)
class ToolResult:
    """What a tool call came to, as the model is told it: ``output`` (any JSON value), or ``error`` (a
    sentence: the tool failed, timed out, was denied or never ran)."""

    call_id: str
    name: str
    output: Any = None
    error: str | None = None
    denied: bool = False  # the user said no (``error`` says so to the model)
    duration_ms: int | None = None  # how long the tool ran (None: it did not run)


@dataclass(slots=True)
class ChatMessage:
    """One message of the context. An assistant message may carry the tool calls it made
    (``tool_calls``); a ``"tool"`` message carries their results (``tool_results``), in the same order.
    ``reasoning`` and ``reasoning_signature`` are an assistant step's thinking, which Anthropic wants
    back, signed, with the tool calls it led to."""

    role: str  # "system", "user", "assistant" or "tool"
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    reasoning: str = ""
    reasoning_signature: str = ""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model is offered it: its name, what it does, and its input's JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class Hangup:
    """A provider call's cancellation hook: lets any thread hang up its upstream connection, even while
    the call's own thread is blocked reading it.

    The provider calls ``opened(close)`` with a thread-safe function that shuts the call's connection
    down: as soon as the request is written on it (the sync clients' transport does so:
    ``streaming.providers.clients.calling``), and again when the response opens, with a function that
    leaves the connection alone once the response is over (it may serve another call by then).
    Whoever drives the call calls ``hang_up()`` to end it: the blocked read fails at once and the
    upstream sees the hang-up, so a stopped reply stops costing money, even while the model has not
    answered yet. A hang-up that comes before anything opened takes effect as soon as something does.
    """

    __slots__ = ("_close", "_lock", "hung_up")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._close: Callable[[], None] | None = None
        self.hung_up = False

    def opened(self, close: Callable[[], None]) -> None:
        with self._lock:
            self._close = close
            hung_up = self.hung_up
        if hung_up:
            close()

    def hang_up(self) -> None:
        with self._lock:
            self.hung_up = True
            close = self._close
        if close is not None:
            close()


@dataclass(slots=True)
class ChatRequest:
    """What the service layer asks of a provider: the vendor's model name, not ``provider:model``.

    ``tools`` are offered to the model; with ``tool_choice="none"`` it may not call them (the reply's
    last step: the model answers with what it has).
    """

    model: str
    messages: list[ChatMessage]
    reasoning: bool = False
    max_output_tokens: int | None = None
    hangup: Hangup = field(default_factory=Hangup)
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str | None = None


class Provider:
    """Base class of provider backends, configured by ``STREAMING["PROVIDERS"][name]``.

    ``OPTIONS`` of the setting arrive as ``options``. ``key_env`` names the environment variables
    that may hold the API key, in order of preference (checked by ``streaming.W004``).
    """

    key_env: ClassVar[tuple[str, ...]] = ()
    #: True when calls cost nothing (the offline demo): usage is priced at zero, not "unpriced".
    free: ClassVar[bool] = False

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.options = dict(options or {})

    def api_key(self) -> str | None:
        """The key from ``OPTIONS["api_key_env"]`` (a variable name) or the first of ``key_env`` set."""
        names = [self.options["api_key_env"]] if "api_key_env" in self.options else list(self.key_env)
        for env_name in names:
            value = os.environ.get(env_name)
            if value:
                return value
        return None

    def key_variables(self) -> list[str]:
        if "api_key_env" in self.options:
            return [self.options["api_key_env"]]
        return list(self.key_env)

    def needs_api_key(self) -> bool:
        """Whether calls fail without a key (``streaming.W004`` warns when none is set)."""
        return bool(self.key_variables())

    def output_token_limit(self, reasoning: bool) -> int | None:
        """The most output tokens a reply can bring, as this provider asks for them (``OPTIONS``
        ``max_output_tokens`` or ``max_tokens``); None when the request sets no limit. A budget holds a
        reply's worst case from it."""
        limit = self.options.get("max_output_tokens") or self.options.get("max_tokens")
        return int(limit) if limit else None

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        """The events of one call, on the calling thread (WSGI): a generator, closed early to hang up."""
        raise NotImplementedError

    def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """The events of one call, on the event loop (ASGI): an async generator, closed early to hang up."""
        raise NotImplementedError
