"""A fake OpenAI-compatible streaming upstream for the benchmarks: raw asyncio, cheap enough never to be
the bottleneck.

``POST /v1/chat/completions`` with ``"stream": true`` answers in the Chat Completions chunk format: a
role chunk, one chunk per token (``delta.content`` = ``"tok "``), a finish chunk, a usage chunk
(``"choices": []``), then ``data: [DONE]``, as HTTP/1.1 chunks on a keep-alive connection.

How long and how fast, per request:

* the model name ``bench-<tokens>-<seconds between tokens>``, e.g. ``bench-500-0`` (500 tokens, all at
  once) or ``bench-300-0.0333`` (300 tokens at 30 tokens/s);
* else ``max_completion_tokens`` / ``max_tokens`` for the count, and the defaults for the rest;
* else the command line's ``--tokens`` and ``--delay``.

Every chunk's bytes are built once per (model, count) and cached. A reply without delay is one write.
Delayed replies are driven by one shared ticker per delay value: each tick writes the next token of
every stream on it (the first token leaves at once, with the headers), so 1,000 streams cost one timer,
not 1,000 sleeps per token. ``GET /stats`` reports streams served, tokens sent, how late the ticks ran.

``python -m bench.upstream [--port N] [--tokens N] [--delay S]`` serves until interrupted and prints
``listening on 127.0.0.1:<port>``; ``--selftest`` measures it alone (see ``bench.selftest``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import resource
import signal
import time
from dataclasses import dataclass, field

import orjson

TOKEN = "tok "
MODEL_PATTERN = re.compile(r"bench-(\d+)-([0-9.]+)$")
CREATED = 1_700_000_000
PROMPT_TOKENS = 10
HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\nx-request-id: req-bench\r\n\r\n"
)


def frame(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk holding ``payload``."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def sse(chunk: object) -> bytes:
    return frame(b"data: " + orjson.dumps(chunk) + b"\n\n")


@dataclass(frozen=True)
class Body:
    """The precomputed bytes of one reply shape: the headers with the role chunk, a token, the end."""

    head: bytes
    token: bytes
    tail: bytes

    def whole(self, tokens: int) -> bytes:
        return self.head + self.token * tokens + self.tail


def build_body(model: str, tokens: int) -> Body:
    def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**base, "choices": [choice]}

    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": model}
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": tokens,
        "total_tokens": PROMPT_TOKENS + tokens,
    }
    tail = sse(chunk({}, "stop")) + sse({**base, "choices": [], "usage": usage})
    tail += frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    return Body(HEAD + sse(chunk({"role": "assistant", "content": ""})), sse(chunk({"content": TOKEN})), tail)


@dataclass
class Stats:
    streams: int = 0
    tokens: int = 0
    open: int = 0
    ticks: int = 0
    max_tick_lag_ms: float = 0.0
    cpu_started: float = field(default_factory=time.process_time)

    def as_dict(self) -> dict[str, float]:
        return {
            "streams": self.streams,
            "tokens": self.tokens,
            "open": self.open,
            "ticks": self.ticks,
            "max_tick_lag_ms": round(self.max_tick_lag_ms, 2),
            "cpu_seconds": round(time.process_time() - self.cpu_started, 3),
        }


class Stream:
    """One reply being played on a ticker."""

    __slots__ = ("body", "left", "transport")

    def __init__(self, transport: asyncio.Transport, body: Body, left: int) -> None:
        self.transport = transport
        self.body = body
        self.left = left


class Ticker:
    """Writes the next token of every stream of one delay value on each tick."""

    def __init__(self, upstream: Upstream, delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.streams: set[Stream] = set()
        self.next_at = 0.0
        self.handle: asyncio.TimerHandle | None = None

    def add(self, stream: Stream) -> None:
        self.streams.add(stream)
        if self.handle is None:
            loop = asyncio.get_running_loop()
            self.next_at = loop.time() + self.delay
            self.handle = loop.call_at(self.next_at, self.tick)

    def tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        stats = self.upstream.stats
        stats.ticks += 1
        stats.max_tick_lag_ms = max(stats.max_tick_lag_ms, (now - self.next_at) * 1000)
        finished = []
        sent = 0
        for stream in self.streams:
            transport = stream.transport
            if transport.is_closing():
                finished.append(stream)
                continue
            stream.left -= 1
            sent += 1
            if stream.left:
                transport.write(stream.body.token)
            else:
                transport.write(stream.body.token + stream.body.tail)
                finished.append(stream)
        stats.tokens += sent
        for stream in finished:
            self.streams.discard(stream)
            self.upstream.closed(stream)
        if not self.streams:
            self.handle = None
            return
        self.next_at += self.delay
        if self.next_at < now:  # far behind: skip the missed ticks rather than burst them
            self.next_at = now + self.delay
        self.handle = loop.call_at(self.next_at, self.tick)


class Upstream:
    """The server: request parsing, the body cache, and the tickers."""

    def __init__(self, tokens: int, delay: float) -> None:
        self.tokens = tokens
        self.delay = delay
        self.bodies: dict[tuple[str, int], Body] = {}
        self.tickers: dict[float, Ticker] = {}
        self.stats = Stats()

    def shape(self, request: dict[str, object]) -> tuple[str, int, float]:
        model = str(request.get("model") or "bench")
        match = MODEL_PATTERN.search(model)
        if match:
            return model, int(match[1]), float(match[2])
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        return model, int(limit) if isinstance(limit, int) else self.tokens, self.delay

    def body(self, model: str, tokens: int) -> Body:
        key = (model, tokens)
        if key not in self.bodies:
            self.bodies[key] = build_body(model, tokens)
        return self.bodies[key]

    def start(self, transport: asyncio.Transport, request: dict[str, object]) -> Stream | None:
        """Answer a chat request; the returned stream is still playing (None: already complete)."""
        model, tokens, delay = self.shape(request)
        body = self.body(model, tokens)
        self.stats.streams += 1
        if delay <= 0 or tokens <= 1:
            transport.write(body.whole(tokens))
            self.stats.tokens += tokens
            return None
        transport.write(body.head + body.token)
        self.stats.tokens += 1
        self.stats.open += 1
        stream = Stream(transport, body, tokens - 1)
        ticker = self.tickers.get(delay)
        if ticker is None:
            ticker = self.tickers[delay] = Ticker(self, delay)
        ticker.add(stream)
        return stream

    def closed(self, stream: Stream) -> None:
        self.stats.open -= 1
        protocol = stream.transport.get_protocol()
        if isinstance(protocol, Connection):
            protocol.finished(stream)

    def forget(self, stream: Stream) -> None:
        """The client hung up mid-reply."""
        for ticker in self.tickers.values():
            if stream in ticker.streams:
                ticker.streams.discard(stream)
                self.stats.open -= 1


def simple_response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )


class Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 requests, one at a time, kept alive."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.playing: Stream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.playing is not None:
            self.upstream.forget(self.playing)
            self.playing = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.playing is None:
            self.serve()

    def finished(self, stream: Stream) -> None:
        if self.playing is stream:
            self.playing = None
            if self.buffer:
                self.serve()

    def serve(self) -> None:
        """Answer every complete request in the buffer (the next waits while a stream plays)."""
        assert self.transport is not None
        while self.playing is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            match = re.search(r"(?im)^content-length:\s*(\d+)", head)
            length = int(match[1]) if match else 0
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            method, _, rest = head.partition(" ")
            path = rest.partition(" ")[0]
            if method == "GET" and path == "/stats":
                self.transport.write(simple_response("200 OK", orjson.dumps(self.upstream.stats.as_dict())))
            elif method == "POST" and path.endswith("/chat/completions"):
                try:
                    request = orjson.loads(body)
                except orjson.JSONDecodeError:
                    request = None
                if not isinstance(request, dict) or not request.get("stream"):
                    error = {"error": {"message": "only stream: true is supported", "type": "bench"}}
                    self.transport.write(simple_response("400 Bad Request", orjson.dumps(error)))
                else:
                    self.playing = self.upstream.start(self.transport, request)
            else:
                self.transport.write(simple_response("404 Not Found", b'{"error": {"message": "no"}}'))


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def serve(port: int, tokens: int, delay: float) -> None:
    upstream = Upstream(tokens, delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(upstream), "127.0.0.1", port, backlog=8192)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument(
        "--tokens", type=int, default=500, help="tokens per reply when the model does not say"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between tokens, likewise")
    parser.add_argument("--selftest", action="store_true", help="measure the upstream alone and exit")
    parser.add_argument("--tiny", action="store_true", help="with --selftest: a short check")
    args = parser.parse_args(argv)
    raise_fd_limit()
    if args.selftest:
        from bench.selftest import main as selftest

        selftest(tiny=args.tiny)
        return
    asyncio.run(serve(args.port, args.tokens, args.delay))


if __name__ == "__main__":
    main()
