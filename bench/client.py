"""The lean load client: raw asyncio sockets, a minimal HTTP/1.1 + chunked + SSE reader, no framework.

Each request is one connection (``Connection: close``). The client times the request's send, the first
body byte, the first and last token, and the end, and counts tokens by their text (``"tok "`` in the
reply, whatever the event format, so events that carry several tokens count as several): it splits
the body at SSE event boundaries (a blank line) and counts only complete events, so a token split
across two reads is counted once. Per read it keeps ``(time, tokens)`` for the inter-token gaps.

It costs a few µs per read, so one process drives thousands of streams; ``raise_fd_limit`` (called
by the CLI before any server starts, so the servers inherit it) lifts the open-file limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson

TOKEN = b"tok "


@dataclass(frozen=True)
class Target:
    """Where to POST, with which headers (cookies, CSRF)."""

    port: int
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    def request(self, body: Mapping[str, object]) -> bytes:
        payload = orjson.dumps(body)
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Content-Length: {len(payload)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


@dataclass
class StreamResult:
    """One reply as the client saw it; times are ``time.perf_counter()`` values."""

    sent: float = 0.0
    status: int = 0
    first_byte: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    ended: float | None = None
    tokens: int = 0
    saw_done: bool = False
    error: str = ""
    reads: list[tuple[float, int]] = field(default_factory=list)  # (time, tokens completed in it)

    def ok(self, expected_tokens: int | None = None) -> bool:
        if self.error or self.status != 200 or not self.saw_done:
            return False
        return expected_tokens is None or self.tokens == expected_tokens

    def problem(self, expected_tokens: int | None = None) -> str:
        if self.error:
            return self.error
        if self.status != 200:
            return f"HTTP {self.status}"
        if not self.saw_done:
            return "no [DONE]"
        if expected_tokens is not None and self.tokens != expected_tokens:
            return f"{self.tokens} tokens, expected {expected_tokens}"
        return ""

    def gaps(self) -> list[float]:
        """Seconds between consecutive tokens (tokens of one read share its arrival time)."""
        out: list[float] = []
        previous: float | None = None
        for at, count in self.reads:
            if previous is not None:
                out.append(at - previous)
            out.extend([0.0] * (count - 1))
            previous = at
        return out


class StreamProtocol(asyncio.Protocol):
    """Reads one streamed response and fills a ``StreamResult``."""

    def __init__(self, request: bytes, result: StreamResult, done: asyncio.Future[None]) -> None:
        self.request = request
        self.result = result
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.in_body = False
        self.chunked = False
        self.raw = bytearray()  # chunked framing not yet decoded
        self.chunk_left = 0
        self.need_crlf = False
        self.events = b""  # decoded body after the last complete SSE event

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.result.sent = time.perf_counter()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.in_body = True
            status_line, *lines = head.decode("latin-1").split("\r\n")
            self.result.status = int(status_line.split(" ", 2)[1])
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
                    self.chunked = True
            if not data:
                return
        payload = self.dechunk(data) if self.chunked else data
        if payload:
            self.body(now, payload)
        if self.chunked and self.chunk_left < 0:
            self.finish()

    def dechunk(self, data: bytes) -> bytes:
        raw = self.raw
        raw += data
        out: list[bytes] = []
        pos = 0
        while True:
            if self.chunk_left > 0:
                piece = bytes(raw[pos : pos + self.chunk_left])
                out.append(piece)
                pos += len(piece)
                self.chunk_left -= len(piece)
                if self.chunk_left:
                    break
                self.need_crlf = True
            if self.need_crlf:
                if len(raw) - pos < 2:
                    break
                pos += 2
                self.need_crlf = False
            line_end = raw.find(b"\r\n", pos)
            if line_end < 0:
                break
            size = int(bytes(raw[pos:line_end]).split(b";")[0], 16)
            pos = line_end + 2
            if size == 0:
                self.chunk_left = -1  # the last chunk: the body is complete
                break
            self.chunk_left = size
        del raw[:pos]
        return b"".join(out)

    def body(self, now: float, payload: bytes) -> None:
        result = self.result
        if result.first_byte is None:
            result.first_byte = now
        events = self.events + payload
        cut = events.rfind(b"\n\n")
        if cut < 0:
            self.events = events
            return
        complete, self.events = events[: cut + 2], events[cut + 2 :]
        count = complete.count(TOKEN)
        if count:
            if result.first_token is None:
                result.first_token = now
            result.last_token = now
            result.tokens += count
            result.reads.append((now, count))
        if b"[DONE]" in complete:
            result.saw_done = True
        if b'"type":"error"' in complete and not result.error:
            result.error = "error event: " + complete[complete.find(b'"type":"error"') :][:200].decode()

    def finish(self) -> None:
        if self.result.ended is None:
            self.result.ended = time.perf_counter()
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.chunked and self.chunk_left >= 0 and not self.result.error:
            self.result.error = "connection closed mid-body"
        self.finish()


async def stream_once(
    target: Target,
    body: Mapping[str, object],
    timeout: float = 120.0,
    result: StreamResult | None = None,
) -> StreamResult:
    """POST ``body`` to ``target`` and read the streamed reply to its end (into ``result`` if given, so
    that a caller can watch it while it streams)."""
    loop = asyncio.get_running_loop()
    result = result if result is not None else StreamResult()
    done: asyncio.Future[None] = loop.create_future()
    transport: asyncio.BaseTransport | None = None
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(
                lambda: StreamProtocol(target.request(body), result, done), target.host, target.port
            )
            await done
    except TimeoutError:
        result.error = result.error or f"timed out after {timeout:g}s"
    except OSError as exc:
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    finally:
        if transport is not None:
            transport.close()
        if result.ended is None:
            result.ended = time.perf_counter()
    return result


async def stream_many(
    target: Target, bodies: Sequence[Mapping[str, object]], results: Sequence[StreamResult], timeout: float
) -> list[StreamResult]:
    """Open every reply at once and read them all, each into its entry of ``results``."""
    tasks = [stream_once(target, body, timeout, result) for body, result in zip(bodies, results, strict=True)]
    return list(await asyncio.gather(*tasks))


def streaming_now(results: Sequence[StreamResult]) -> int:
    """How many replies have their first token and have not ended."""
    return sum(1 for r in results if r.first_token is not None and r.ended is None)
