"""What the vendor provider modules share about their upstream HTTP call.

* ``status_error`` / ``transport_error`` / ``clean``: vendor failures as ``ProviderError`` subclasses with
  a human sentence, the vendor's own words with any key removed, and ``retry_after`` from the headers.
* ``ErrorEvent`` / ``common_error`` / ``redacted``: how every failure leaves a provider's stream, with its key
  removed, whether the SDK raised it or an error event inside the stream did.
* ``hang_up_for`` and ``notify_open``: give a call's ``Hangup`` the means to end a read that is blocked.
* ``SDKClients``: one sync SDK client per provider and one async client per event loop, made lazily.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import orjson

from streaming.exceptions import (
    Overloaded,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    UpstreamError,
)
from streaming.providers.base import ChatRequest, ToolResult
from streaming.providers.clients import shut_down

# -- errors ---------------------------------------------------------------------------------------

_BY_STATUS: dict[int, type[ProviderError]] = {
    400: ProviderBadRequest,
    401: ProviderAuthError,
    403: ProviderAuthError,
    404: ProviderBadRequest,
    408: ProviderTimeout,
    413: ProviderBadRequest,
    422: ProviderBadRequest,
    429: RateLimited,
    503: Overloaded,
    529: Overloaded,
}

# Vendor error types (OpenAI ``type``/``code``, Anthropic ``error.type``, Google ``status``/``reason``)
# that say more than the HTTP status does; mid-stream errors have only these.
_BY_KIND: dict[str, type[ProviderError]] = {
    "overloaded_error": Overloaded,
    "overloaded": Overloaded,
    "unavailable": Overloaded,
    "rate_limit_error": RateLimited,
    "rate_limit_exceeded": RateLimited,
    "resource_exhausted": RateLimited,
    "insufficient_quota": RateLimited,
    "authentication_error": ProviderAuthError,
    "permission_error": ProviderAuthError,
    "invalid_api_key": ProviderAuthError,
    "api_key_invalid": ProviderAuthError,
    "unauthenticated": ProviderAuthError,
    "permission_denied": ProviderAuthError,
    "invalid_request_error": ProviderBadRequest,
    "invalid_argument": ProviderBadRequest,
    "not_found_error": ProviderBadRequest,
    "request_too_large": ProviderBadRequest,
    "timeout_error": ProviderTimeout,
    "deadline_exceeded": ProviderTimeout,
    "api_error": UpstreamError,
    "server_error": UpstreamError,
    "internal": UpstreamError,
}

# Kinds that keep their code but are not worth another call to the same model: a quota used up is a
# billing problem, not a rate limit that passes (the fallback chain is still tried).
_NOT_TRANSIENT: dict[str, str] = {
    "insufficient_quota": "The server's quota with the model provider is used up.",
}

_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',]+"), r"\1 [redacted]"),
    (re.compile(r"(?i)\b(key|api_key|x-api-key|x-goog-api-key)=[^&\s\"',]+"), r"\1=[redacted]"),
)
_MAX_DETAIL = 300


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secrets or anything shaped like a credential."""
    for secret in secrets:
        if secret and secret.strip():
            text = text.replace(secret.strip(), "[redacted]")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def clean(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secrets or anything shaped like a credential, one line, bounded."""
    # Secrets go first: cut at the bound, a key would leave a prefix that no longer matches.
    text = " ".join(scrub(text, secrets).split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def error_detail(body: object) -> tuple[str, str]:
    """``(message, kind)`` from a vendor error body: OpenAI, Anthropic and Google shapes, or plain text."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if isinstance(body, (bytes, str)):
        return _words(body), ""
    if not isinstance(body, Mapping):
        return "", ""
    error = body.get("error", body)
    if not isinstance(error, Mapping):
        return _words(str(error)), ""
    # (google-genai wraps a body that is not JSON, an HTML page too, as {"message": text, "status": reason})
    message = _words(str(error.get("message") or ""))
    # Most specific first: Google's reason, then code, status, type.
    kinds = [*_google_reasons(error), error.get("code"), error.get("status"), error.get("type")]
    kind = next((k.lower() for k in kinds if isinstance(k, str) and k.lower() in _BY_KIND), "")
    return message, kind


def _words(text: str | bytes) -> str:
    text = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).strip()
    return "" if text.startswith("<") else text  # an HTML error page says nothing useful


def _google_reasons(error: Mapping[str, Any]) -> list[str]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [str(d["reason"]) for d in details if isinstance(d, Mapping) and isinstance(d.get("reason"), str)]


def status_error(
    status: int | None,
    body: object = None,
    *,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    where: str | None = None,
) -> ProviderError:
    """The ``ProviderError`` for a vendor's error response (or a mid-stream error event, ``status`` None).

    Without a status line, a status in the body (Google's ``code``, vLLM's) classifies the error.
    """
    message, kind = error_detail(body)
    cls = _error_class(status if status is not None else _body_status(body), kind)
    detail = clean(message, secrets)
    where = where or (f"HTTP {status}" if status else "during the stream")
    sentence = _NOT_TRANSIENT.get(kind, cls.default_message)
    text = f"{sentence} ({where}: {detail})" if detail else f"{sentence} ({where})"
    retryable = False if kind in _NOT_TRANSIENT else None
    return cls(text, retry_after=retry_after(headers, body), upstream_status=status, retryable=retryable)


def _body_status(body: object) -> int | None:
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    error = body.get("error", body) if isinstance(body, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    return code if isinstance(code, int) and 400 <= code <= 599 else None


_CLIENT_SIDE = (ProviderBadRequest, ProviderAuthError, RateLimited)


def _error_class(status: int | None, kind: str) -> type[ProviderError]:
    # A specific status wins; the vendor's kind refines a generic 400 or 5xx (staying on its side of
    # the 4xx/5xx line), or stands alone mid-stream.
    if status is not None and status in _BY_STATUS and status != 400:
        return _BY_STATUS[status]
    by_kind = _BY_KIND.get(kind)
    if by_kind is not None and (status is None or (status < 500) == issubclass(by_kind, _CLIENT_SIDE)):
        return by_kind
    if status is not None and status < 500:
        return ProviderBadRequest
    return UpstreamError


def retry_after(headers: Mapping[str, str] | None, body: object = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or a date), or Google's RetryInfo."""
    if headers:
        value = headers.get("retry-after-ms")
        if value:
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                pass
        value = headers.get("retry-after")
        if value:
            return _seconds_or_date(value)
    return _google_retry_delay(body)


def _seconds_or_date(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _google_retry_delay(body: object) -> float | None:
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    error = body.get("error") if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, Mapping) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def transport_classes() -> tuple[type[Exception], ...]:
    """The base classes of httpx/httpx2 transport failures (the SDKs use one or the other)."""
    modules = (sys.modules.get("httpx2"), sys.modules.get("httpx"))
    return tuple(module.TransportError for module in modules if module is not None)


def transport_error(exc: BaseException) -> ProviderError | None:
    """A ``ProviderError`` for an httpx/httpx2 failure (connecting or reading); None for anything else."""
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is None:
            continue
        if isinstance(exc, module.TimeoutException):
            return ProviderTimeout()
        if isinstance(exc, module.ConnectError):
            return ProviderConnectionError()
        if isinstance(exc, module.TransportError):
            return ProviderConnectionError("The connection to the model provider was lost.")
    return None


def malformed() -> UpstreamError:
    return UpstreamError("The model provider sent a stream that could not be read.")


def as_text(value: object) -> str:
    """``value``, which becomes part of the reply: a string, or the stream is malformed (anything else
    would fail later, far from the chunk that carried it)."""
    if not isinstance(value, str):
        raise malformed()
    return value


def truncated() -> ProviderConnectionError:
    return ProviderConnectionError("The model provider closed the stream before the reply was complete.")


def missing_key(provider_name: str, variables: list[str]) -> ProviderAuthError:
    names = " or ".join(variables) or "an API key variable"
    return ProviderAuthError(f"No API key is configured for the provider {provider_name!r}: set {names}.")


class ErrorEvent(Exception):
    """An error the vendor sent inside a stream (an OpenAI error chunk, Anthropic's ``event: error``), or
    instead of one (``where`` says so).

    The chunk mappings raise it without knowing the key; the provider turns it into a ``ProviderError``
    in ``common_error``, where the key is at hand. Its own text never carries the vendor's words.
    """

    def __init__(self, body: object, where: str = "during the stream") -> None:
        super().__init__("the model provider sent an error event")
        self.body = body
        self.where = where


def common_error(exc: BaseException, secrets: Iterable[str | None]) -> ProviderError:
    """The ``ProviderError`` for a failure that is not the SDK's own: an ``ErrorEvent``, a stream that
    could not be parsed, a transport error; a ``ProviderError`` is kept as it is."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ErrorEvent):
        return status_error(None, exc.body, secrets=secrets, where=exc.where)
    if isinstance(exc, ValueError):  # orjson.JSONDecodeError, pydantic's ValidationError
        return malformed()
    return transport_error(exc) or UpstreamError()


def redacted(error: ProviderError, secrets: Iterable[str | None]) -> ProviderError:
    """``error`` with any secret or credential removed from its message: the last step of every failure
    that leaves a provider's ``stream``/``astream``, so that no path can carry a key to a user, the
    database or a log, even one that forgot to pass ``secrets`` to ``status_error``."""
    message = scrub(error.message, secrets)
    if message != error.message:
        error.message = message
        error.args = (message,)
    return error


# -- hanging up from another thread ---------------------------------------------------------------


def hang_up_for(response: Any) -> Callable[[], None]:
    """A thread-safe function that shuts the socket of an httpx/httpx2 ``response`` down.

    Closing a socket does not wake a thread blocked reading it; ``shutdown`` does, and sends the FIN
    the upstream sees as a hang-up. The blocked read then fails and the reading thread closes the
    response itself, so the connection pool is only ever touched by that thread. Once the response is
    closed (httpx marks it before releasing its connection), hanging up does nothing.
    """
    stream = getattr(response, "extensions", {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None

    def hang_up() -> None:
        if not response.is_closed:  # (closed: its connection may be back in the pool, serving another call)
            shut_down(sock)

    return hang_up


def notify_open(request: ChatRequest, response: Any) -> None:
    """Hand ``request.hangup`` the hang-up function of a response that just opened."""
    request.hangup.opened(hang_up_for(response))


# -- SDK clients ----------------------------------------------------------------------------------

S = TypeVar("S")
A = TypeVar("A")


class SDKClients(Generic[S, A]):
    """One sync SDK client, and one async client per event loop (their pooled connections belong to
    the loop that opened them), each made on first use."""

    def __init__(self, make_sync: Callable[[], S], make_async: Callable[[], A]) -> None:
        self._make_sync = make_sync
        self._make_async = make_async
        self._lock = threading.Lock()
        self._sync: S | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, A] = weakref.WeakKeyDictionary()

    def sync(self) -> S:
        with self._lock:
            if self._sync is None:
                self._sync = self._make_sync()
            return self._sync

    def for_loop(self) -> A:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.get(loop)
            if client is None:
                client = self._async[loop] = self._make_async()
            return client


def result_text(result: ToolResult) -> str:
    """A tool's result as the text a vendor takes: a text output as it is, other output as JSON, an
    error as its sentence."""
    if result.error is not None:
        return f"Error: {result.error}"
    if isinstance(result.output, str):
        return result.output
    return orjson.dumps(result.output).decode()
