"""A local fake of the vendors' streaming HTTP APIs, for provider tests through the real SDKs.

It listens on 127.0.0.1 (an OS-assigned port), records every request, and answers each with the next
queued ``Reply``: a status, headers, and a body played piece by piece (bytes are sent as one HTTP/1.1
chunk each, a number sleeps, ``Hold`` keeps the connection open and silent, ``CUT`` drops it). It
notices when the client hangs up mid-reply, which is how tests prove that a stopped reply stops the
upstream call.

Bodies are what the vendors send, byte for byte: the recorded streams of
``tests/fixtures/provider-streams/`` (``fixture``; its README names their sources) and streams built
from dicts (``openai_sse``, ``anthropic_sse``, ``gemini_sse``), tool calls included
(``Vendor.tool_call``: a model call that ends calling a tool, in the shape of the recorded ones).
"""

from __future__ import annotations

import asyncio
import collections
import json
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from streaming.events import TextDelta, Usage

FIXTURES = Path(__file__).resolve().parent / "fixtures/provider-streams"


@dataclass
class Hold:
    """Send nothing for up to ``seconds``, keeping the connection open, unless the client hangs up."""

    seconds: float = 30.0


CUT = "cut"  # drop the connection without ending the body
Piece = bytes | float | Hold | str


@dataclass
class Reply:
    status: int = 200
    body: Sequence[Piece] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds before the status line (a model that takes long to start).
    delay: float = 0.0
    #: Close the connection as the request arrives, without a word (a kept connection the server drops).
    unanswered: bool = False

    @classmethod
    def stream(cls, pieces: Sequence[Piece], **headers: str) -> Reply:
        return cls(200, pieces, {"content-type": "text/event-stream", **headers})

    @classmethod
    def json(cls, status: int, body: Any, **headers: str) -> Reply:
        return cls(status, [json.dumps(body).encode()], {"content-type": "application/json", **headers})


@dataclass
class Recorded:
    """One request the fake received, and what became of its reply."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address: the same for requests on one connection
    received_at: float = field(default_factory=time.monotonic)
    hung_up: threading.Event = field(default_factory=threading.Event)
    hung_up_at: float | None = None
    finished: bool = False
    #: Set once the reply is over, whichever way: ``finished`` and ``hung_up`` are final from then on.
    ended: threading.Event = field(default_factory=threading.Event)

    def json(self) -> Any:
        return json.loads(self.body)

    def hang_up(self) -> None:
        if not self.hung_up.is_set():
            self.hung_up_at = time.monotonic()
            self.hung_up.set()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = Recorded(self.command, self.path, headers, body, peer=self.client_address)
        self.server.fake.requests.append(record)
        try:
            self._reply(record)
        finally:
            record.ended.set()

    def _reply(self, record: Recorded) -> None:
        reply = self.server.fake.next_reply()
        if reply.unanswered:
            self.close_connection = True
            return
        if reply.delay and self._client_left(reply.delay):
            record.hang_up()
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            outcome = self._play(reply.body)
        except OSError:  # the client went away while we wrote
            outcome = "hung up"
        record.finished = outcome == "finished"
        if outcome == "hung up":
            record.hang_up()
        self.close_connection = self.close_connection or not record.finished

    def _play(self, pieces: Sequence[Piece]) -> str:
        """Send the body: "finished", "hung up" (the client left first) or "cut" (``CUT``)."""
        for piece in pieces:
            if isinstance(piece, bytes):
                if self._client_left(0):
                    return "hung up"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            elif piece == CUT:
                return "cut"
            elif isinstance(piece, (int, float, Hold)):
                seconds = piece.seconds if isinstance(piece, Hold) else float(piece)
                if self._client_left(seconds):
                    return "hung up"
        self.wfile.write(b"0\r\n\r\n")
        return "finished"

    def _client_left(self, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as the client closes its end (or the fake shuts down)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([self.connection], [], [], max(0.0, min(left, 0.05)))
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return True
                except OSError:
                    return True
                time.sleep(0.01)  # the client sent something (a next request?): not a hang-up
            if left <= 0 or self.server.fake.stopping.is_set():
                return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeUpstream

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client resetting its connection is no news
            super().handle_error(request, client_address)


class FakeUpstream:
    """The fake server; a context manager that starts it on an OS-assigned port and stops it.

    ::

        with FakeUpstream() as upstream:
            upstream.enqueue(Reply.stream(fixture("openai_chat.sse")))
            provider = OpenAIProvider("openai", {"base_url": upstream.url + "/v1"})
            ...
            assert upstream.requests[0].path == "/v1/chat/completions"
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Recorded] = []
        self.replies: collections.deque[Reply] = collections.deque()
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.scheme = "http"
        if tls is not None:  # (HTTPS: every connection's TLS handshake happens as it is accepted)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def enqueue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def next_reply(self) -> Reply:
        if self.replies:
            return self.replies.popleft()
        return Reply.json(
            500, {"error": {"message": "fake upstream: no reply queued", "type": "server_error"}}
        )

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def wait_for_request(self, timeout: float = 5.0) -> Recorded:
        deadline = time.monotonic() + timeout
        while not self.requests:
            if time.monotonic() > deadline:
                raise TimeoutError("the fake upstream received no request")
            time.sleep(0.01)
        return self.requests[-1]

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the vendors' wire formats ------------------------------------------------------------------------


def fixture(name: str, *, crlf: bool = False) -> list[bytes]:
    """A recorded stream, one piece per event, each ending with its blank line (CRLF for Gemini)."""
    text = (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n")
    events = [event for event in text.split(b"\n\n") if event.strip()]
    newline = b"\r\n" if crlf else b"\n"
    return [event.strip(b"\n").replace(b"\n", newline) + newline * 2 for event in events]


def split_every(pieces: Sequence[Piece], size: int) -> list[Piece]:
    """The same bytes in pieces of ``size``: events and lines cut anywhere, as TCP may deliver them."""
    data = b"".join(p for p in pieces if isinstance(p, bytes))
    return [data[i : i + size] for i in range(0, len(data), size)]


def _compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def openai_sse(chunks: list[dict[str, Any]], *, done: bool = True) -> list[bytes]:
    pieces = [b"data: " + _compact(chunk) + b"\n\n" for chunk in chunks]
    return [*pieces, b"data: [DONE]\n\n"] if done else pieces


def openai_chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    **delta: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``usage`` alone makes the final usage chunk (``choices: []``)."""
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt",
    }
    if usage is not None and content is None and finish is None and not delta:
        return {**chunk, "choices": [], "usage": usage}
    if content is not None:
        delta["content"] = content
    chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def anthropic_sse(events: list[dict[str, Any]]) -> list[bytes]:
    return [f"event: {event['type']}\n".encode() + b"data: " + _compact(event) + b"\n\n" for event in events]


def anthropic_message(
    text: list[str],
    *,
    thinking: list[str] | None = None,
    start_usage: dict[str, Any] | None = None,
    delta_usage: dict[str, Any] | None = None,
    stop_reason: str = "end_turn",
) -> list[dict[str, Any]]:
    """The events of one Messages stream: an optional thinking block, a text block, usage and stop."""
    usage = start_usage or {"input_tokens": 10, "output_tokens": 1}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude"}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "stop_reason": None, "usage": usage}},
        {"type": "ping"},
    ]
    blocks = [
        ("thinking", "thinking_delta", "thinking", thinking or []),
        ("text", "text_delta", "text", text),
    ]
    index = 0
    for block_type, delta_type, key, parts in blocks:
        if not parts:
            continue
        events.append({"type": "content_block_start", "index": index, "content_block": {"type": block_type}})
        for part in parts:
            delta = {"type": delta_type, key: part}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        if block_type == "thinking":
            signature = {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}
            events.append({"type": "content_block_delta", "index": index, "delta": signature})
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    delta_usage = delta_usage or {"output_tokens": 5}
    events.append({"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": delta_usage})
    events.append({"type": "message_stop"})
    return events


def anthropic_tool_use(text: str, call_id: str, name: str, pieces: list[str]) -> list[dict[str, Any]]:
    """The events of a Messages stream that says ``text`` and calls a tool, as the recorded
    ``anthropic_tool_use.sse`` has them: a ``tool_use`` block whose input streams as ``input_json_delta``."""
    events = anthropic_message([text] if text else [], stop_reason="tool_use")
    index = 1 if text else 0
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    tool = [{"type": "content_block_start", "index": index, "content_block": block}]
    tool += [
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": piece},
        }
        for piece in ["", *pieces]
    ]
    tool.append({"type": "content_block_stop", "index": index})
    return [*events[:-2], *tool, *events[-2:]]


def gemini_sse(chunks: list[dict[str, Any]]) -> list[bytes]:
    return [b"data: " + _compact(chunk) + b"\r\n\r\n" for chunk in chunks]


def gemini_chunk(
    text: str = "",
    *,
    thought: bool = False,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if thought:
        candidate["content"]["parts"][0]["thought"] = True
    if finish:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-fake"}
    if usage is not None:
        chunk["usageMetadata"] = usage
    return chunk


# -- running a provider against it ----------------------------------------------------------------


def collect(provider: Any, request: Any, mode: str) -> tuple[list[Any], Exception | None]:
    """Run ``provider.stream`` (mode "sync") or ``astream`` ("async") to its end: the events it yielded,
    and the exception that ended it, if any."""
    events: list[Any] = []
    if mode == "sync":
        try:
            for event in provider.stream(request):
                events.append(event)
        except Exception as exc:
            return events, exc
        return events, None

    async def consume() -> Exception | None:
        try:
            async for event in provider.astream(request):
                events.append(event)
        except Exception as exc:
            return exc
        return None

    return events, asyncio.run(consume())


# -- one table of the three wire formats, for tests that treat every provider alike -----------------


@dataclass(frozen=True)
class Vendor:
    """How to talk to one vendor's fake: where its base URL points, its key variable, its error bodies."""

    name: str
    backend: str  # dotted path of the provider class
    key_env: str
    url_suffix: str

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        if self.name == "anthropic":
            kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
            kinds |= {403: "permission_error", 404: "not_found_error", 529: "overloaded_error"}
            return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}
        if self.name == "gemini":
            statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
            statuses |= {404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
            return {"error": {"code": status, "message": message, "status": statuses.get(status, "INTERNAL")}}
        kinds = {401: "invalid_request_error", 429: "requests", 400: "invalid_request_error"}
        return {"error": {"message": message, "type": kinds.get(status, "server_error"), "code": None}}

    def partial(self, text: str = "Hel") -> list[bytes]:
        """The start of a reply whose first text is ``text``, with no end."""
        if self.name == "anthropic":
            return anthropic_sse(anthropic_message([text])[:4])
        if self.name == "gemini":
            return gemini_sse([gemini_chunk(text)])
        return openai_sse([openai_chunk(text)], done=False)

    def partial_events(self, text: str = "Hel") -> list[Any]:
        """The events a provider yields for ``partial(text)``: the text, after Anthropic's partial usage
        (its ``message_start`` count, reported just before the first text)."""
        if self.name == "anthropic":
            return [Usage(input_tokens=10, output_tokens=1, partial=True), TextDelta(text)]
        return [TextDelta(text)]

    def rest(self, text: str = "") -> list[bytes]:
        """The end of a reply that ``partial`` started: more text, then the finish."""
        if self.name == "anthropic":
            return anthropic_sse(anthropic_message([text])[3:])
        if self.name == "gemini":
            return gemini_sse([gemini_chunk(text, finish="STOP")])
        return openai_sse([openai_chunk(text, finish="stop")])

    def complete(self, text: str) -> list[bytes]:
        return [*self.partial(text), *self.rest()]

    def tool_call(
        self, name: str, arguments: dict[str, Any], call_id: str = "call_1", text: str = ""
    ) -> list[bytes]:
        """A model call that says ``text`` (if any), then calls ``name`` with ``arguments``: the JSON in
        pieces as OpenAI and Anthropic stream it, a whole ``functionCall`` part as Gemini sends it."""
        encoded = json.dumps(arguments)
        pieces = [encoded[i : i + 7] for i in range(0, len(encoded), 7)]
        if self.name == "anthropic":
            return anthropic_sse(anthropic_tool_use(text, call_id, name, pieces))
        if self.name == "gemini":
            call = {"functionCall": {"name": name, "args": arguments}}
            parts = [{"text": text}, call] if text else [call]
            chunk: dict[str, Any] = {
                "candidates": [
                    {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
                ]
            }
            chunk["usageMetadata"] = {
                "promptTokenCount": 29,
                "candidatesTokenCount": 15,
                "totalTokenCount": 44,
            }
            return gemini_sse([chunk])
        chunks = [openai_chunk(text)] if text else []
        function = {"name": name, "arguments": ""}
        chunks.append(
            openai_chunk(tool_calls=[{"index": 0, "id": call_id, "type": "function", "function": function}])
        )
        chunks += [
            openai_chunk(tool_calls=[{"index": 0, "function": {"arguments": piece}}]) for piece in pieces
        ]
        chunks.append(openai_chunk(finish="tool_calls"))
        chunks.append(
            openai_chunk(usage={"prompt_tokens": 149, "completion_tokens": 20, "total_tokens": 169})
        )
        return openai_sse(chunks)

    def stream_error(self, message: str, *, overloaded: bool = False) -> list[bytes]:
        """An error event inside the stream, as each vendor sends one: overloaded, or a server error."""
        if self.name == "anthropic":
            kind = "overloaded_error" if overloaded else "api_error"
            return anthropic_sse([{"type": "error", "error": {"type": kind, "message": message}}])
        if self.name == "gemini":
            code, status = (503, "UNAVAILABLE") if overloaded else (500, "INTERNAL")
            return gemini_sse([{"error": {"code": code, "message": message, "status": status}}])
        kind = "overloaded" if overloaded else "server_error"
        return openai_sse([{"error": {"message": message, "type": kind, "code": None}}], done=False)


VENDORS = [
    Vendor("openai", "streaming.providers.openai.OpenAIProvider", "OPENAI_API_KEY", "/v1"),
    Vendor("anthropic", "streaming.providers.anthropic.AnthropicProvider", "ANTHROPIC_API_KEY", ""),
    Vendor("gemini", "streaming.providers.gemini.GeminiProvider", "GEMINI_API_KEY", ""),
]
