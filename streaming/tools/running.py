"""Run the tool calls of one step: all at once, each within its timeout, each answer as the model is told it.

A call's input is validated against its tool's signature first; the function then gets it as keyword
arguments, with the requesting user as ``user`` when it takes one. An async tool runs on the event
loop, a sync one on a thread of ``POOL`` (with Django's connection handling around it, as a request
has). Whatever goes wrong becomes the call's ``error``, a sentence for the model (and the user's tool
card), never a traceback: an unknown tool, input that does not fit, an exception (a ``ToolError``'s
message as it is, any other as its type and message; the traceback goes to the log), a timeout, an
output that is not JSON or is longer than ``TOOL_OUTPUT_MAX_CHARS``.

``run_calls`` is for the event loop (ASGI: the reply's task); ``run_calls_blocking`` for a reply's
thread (WSGI), which runs them on a loop thread of this module and gives up on them when the reply
ends (a stop). Cancelling cancels an async tool; a sync one cannot be interrupted (Python has no way
to stop a thread): its result is dropped, and its thread is free again when the function returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
from django.db import close_old_connections
from pydantic_core import to_jsonable_python

from streaming.conf import app_settings
from streaming.events import ToolCall
from streaming.providers.base import ToolResult
from streaming.tools.definition import USER_PARAMETER, InvalidToolInput, Tool, ToolError

logger = logging.getLogger(__name__)

#: Threads for sync tools, shared by the process's replies.
POOL = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="streaming-tool")
#: The longest exception message told to the model.
MAX_ERROR_CHARS = 1000

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


async def run_calls(calls: list[ToolCall], tools: Mapping[str, Tool], user: Any) -> list[ToolResult]:
    """Run ``calls`` at once; their results in the same order."""
    return list(await asyncio.gather(*(run_call(call, tools, user) for call in calls)))


def run_calls_blocking(
    calls: list[ToolCall], tools: Mapping[str, Tool], user: Any, ended: threading.Event
) -> list[ToolResult] | None:
    """``run_calls`` from a thread; None when ``ended`` was set first (the calls are cancelled)."""
    future = asyncio.run_coroutine_threadsafe(run_calls(calls, tools, user), _tools_loop())
    while True:
        try:
            return future.result(timeout=0.05)
        except concurrent.futures.TimeoutError:
            if ended.is_set():
                future.cancel()
                return None


async def run_call(call: ToolCall, tools: Mapping[str, Tool], user: Any) -> ToolResult:
    found = tools.get(call.name)
    if found is None:
        return ToolResult(call.id, call.name, error=f"There is no tool named {call.name!r}.")
    if call.input is None:
        return ToolResult(call.id, call.name, error=f"The input of {call.name} is not a JSON object.")
    try:
        arguments = found.validate(call.input)
    except InvalidToolInput as exc:
        return ToolResult(call.id, call.name, error=str(exc))
    if found.takes_user:
        arguments[USER_PARAMETER] = user
    started = time.monotonic()
    result = await _run(found, call, arguments)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


async def _run(found: Tool, call: ToolCall, arguments: dict[str, Any]) -> ToolResult:
    timeout = found.timeout or app_settings.tool_timeout
    try:
        if found.is_async:
            value = await asyncio.wait_for(found.function(**arguments), timeout)
        else:
            running = asyncio.get_running_loop().run_in_executor(POOL, _call_sync, found, arguments)
            value = await asyncio.wait_for(running, timeout)
    except TimeoutError:
        return ToolResult(call.id, call.name, error=f"{call.name} did not finish within {timeout:g} seconds.")
    except ToolError as exc:
        return ToolResult(call.id, call.name, error=_clip(str(exc) or f"{call.name} failed."))
    except Exception as exc:
        logger.warning("streaming: the tool %s raised", call.name, exc_info=exc)
        return ToolResult(call.id, call.name, error=_clip(f"{call.name} failed: {type(exc).__name__}: {exc}"))
    return _output(call, value)


def _call_sync(found: Tool, arguments: dict[str, Any]) -> Any:
    """A sync tool on a pool thread, with the connection handling Django gives a request."""
    close_old_connections()
    try:
        return found.function(**arguments)
    finally:
        close_old_connections()


def _output(call: ToolCall, value: Any) -> ToolResult:
    """The tool's return value as JSON data, within the size limit."""
    try:
        output = to_jsonable_python(value)
        size = len(orjson.dumps(output).decode())
    except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
        logger.warning("streaming: the tool %s returned a value that is not JSON: %s", call.name, exc)
        return ToolResult(
            call.id, call.name, error=f"{call.name} returned a value that cannot be sent as JSON."
        )
    limit = app_settings.tool_output_max_chars
    if limit is not None and size > limit:
        return ToolResult(
            call.id,
            call.name,
            error=f"The output of {call.name} has {size:,} characters; the limit is {limit:,}.",
        )
    return ToolResult(call.id, call.name, output=output)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _tools_loop() -> asyncio.AbstractEventLoop:
    """The event loop (on a thread of its own) that runs the tool calls of the replies on threads."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="streaming-tools", daemon=True).start()
            _loop = loop
        return _loop
