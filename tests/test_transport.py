"""The lean HTTP/1.1 transport of the async SDK clients, against small asyncio servers on 127.0.0.1:
framing, keep-alive, connections the server closed, timeouts, hang-ups, TLS, and the proxy fallback.
(The provider tests drive the real SDKs through it against the vendors' wire formats.)"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from streaming.providers.clients import async_http_client, tls_context
from streaming.providers.transport import LeanTransport
from tests.certificates import Authority, make_authority

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\n"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


class Server:
    """A server whose connections are handled by ``handler``; it counts the connections it accepted."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.url = ""

    async def __aenter__(self) -> Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://localhost:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def client(**kwargs: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=LeanTransport(**kwargs), timeout=5)


Runner = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a test's ``main`` on asyncio's loop and on uvloop's (uvicorn's, where it is installed)."""
    if request.param == "asyncio":
        return lambda main: asyncio.run(main())
    uvloop = pytest.importorskip("uvloop")

    def on_uvloop(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # asyncio.run has none on 3.11
            return runner.run(main())

    return on_uvloop


def test_keep_alive_reuses_one_connection_for_each_kind_of_body(run: Runner) -> None:
    bodies = [
        b"content-length: 5\r\n\r\nhello",
        b"transfer-encoding: chunked\r\n\r\n3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
        b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-trailer: yes\r\n\r\n",  # with a trailer
        b"content-length: 0\r\n\r\n",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for body in bodies:
            await read_request(reader)
            writer.write(OK + body)

    async def main() -> tuple[list[str], int]:
        async with Server(handler) as server, client() as http:
            texts = [(await http.post(server.url + "/x", content=b"{}")).text for _ in bodies]
            return texts, server.connections

    assert run(main) == (["hello", "hello", "hello", ""], 1)


def test_a_body_sent_a_byte_at_a_time_arrives_whole(run: Runner) -> None:
    body = b"transfer-encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(w), w) for w in [b"tok "] * 20
    )
    body += b"0\r\n\r\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for byte in OK + body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)

    async def main() -> tuple[bytes, list[bytes]]:
        async with Server(handler) as server, client() as http:
            async with http.stream("GET", server.url) as response:
                parts = [part async for part in response.aiter_raw()]
            return b"".join(parts), parts

    whole, parts = run(main)
    assert whole == b"tok " * 20
    assert len(parts) > 1  # streamed as it came, not buffered to the end


def test_interim_responses_are_skipped_and_a_close_delimited_body_ends_with_the_connection(
    run: Runner,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
        await writer.drain()

    async def main() -> tuple[int, str, int]:
        async with Server(handler) as server, client() as http:
            first = await http.get(server.url)
            second = await http.get(server.url)  # a close-delimited response is never reused
            return first.status_code, first.text + "|" + second.text, server.connections

    assert run(main) == (200, "until the end|until the end", 2)


def test_a_connection_the_server_closed_while_idle_is_not_used_again(run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + b"content-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # a keep-alive timeout on the server's side

    async def main() -> tuple[list[str], int]:
        async with Server(handler) as server, client() as http:
            first = await http.get(server.url)
            await asyncio.sleep(0.1)
            return [first.text, (await http.get(server.url)).text], server.connections

    assert run(main) == (["ok", "ok"], 2)


def test_a_kept_connection_closed_while_the_loop_was_busy_is_not_written_to(run: Runner) -> None:
    """The server's close arrived, but the event loop had no chance to see it: the connection is
    found closed before the request is written, and a new one carries it."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + b"content-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def main() -> tuple[list[str], int]:
        async with Server(handler) as server, client() as http:
            first = await http.get(server.url)
            await asyncio.sleep(0)  # (the response is read; the server closes after it)
            time.sleep(0.2)  # busy: the close waits, unseen, on the socket
            return [first.text, (await http.get(server.url)).text], server.connections

    assert run(main) == (["ok", "ok"], 2)


def test_a_request_is_never_written_twice(run: Runner) -> None:
    """A kept connection that the server closes as the request arrives: the request may have reached
    the model, so the call fails instead of sending it again (a second generation, a second bill)."""
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        writer.write(OK + b"content-length: 2\r\n\r\nok")
        received.append(await read_request(reader))  # the second request arrives, and the server closes

    async def main() -> tuple[str, int]:
        async with Server(handler) as server, client() as http:
            first = await http.post(server.url + "/chat", content=b"{}")
            with pytest.raises(httpx2.RemoteProtocolError):
                await http.post(server.url + "/chat", content=b"{}")
            return first.text, server.connections

    assert run(main) == ("ok", 1)
    assert len(received) == 2  # one generation per call


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (OK + b"content-length: 10\r\n\r\nshort", httpx2.RemoteProtocolError),
        (OK + b"transfer-encoding: chunked\r\n\r\n5\r\nhel", httpx2.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", httpx2.RemoteProtocolError),
        (b"SMTP ready\r\n\r\n", httpx2.RemoteProtocolError),
        (OK + b"transfer-encoding: chunked\r\n\r\nzz\r\n", httpx2.RemoteProtocolError),
        (b"", httpx2.RemoteProtocolError),  # closed without a word, on a new connection
    ],
)
def test_a_broken_response_is_a_protocol_error(answer: bytes, error: type[Exception], run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server, client() as http:
            with pytest.raises(error):
                await http.get(server.url)

    run(main)


def test_timeouts_and_refused_connections_are_httpx_errors(run: Runner) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + b"transfer-encoding: chunked\r\n\r\n3\r\nhel\r\n")
        await asyncio.sleep(5)

    async def main() -> None:
        async with Server(silent) as server, client() as http:
            with pytest.raises(httpx2.ReadTimeout):
                await http.get(server.url, timeout=httpx2.Timeout(5, read=0.2))
            url = server.url
        async with client() as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get(url)  # the server is gone

    run(main)


def test_a_body_left_unread_hangs_up_and_is_not_reused(run: Runner) -> None:
    hung_up = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + b"transfer-encoding: chunked\r\n\r\n3\r\nhel\r\n")
        await writer.drain()
        if not await reader.read(100):  # EOF: the client hung up
            hung_up.set()

    async def main() -> int:
        async with Server(handler) as server, client() as http:
            async with http.stream("GET", server.url) as response:
                async for part in response.aiter_raw():
                    assert part == b"hel"
                    break
            await asyncio.wait_for(hung_up.wait(), 2)
            return server.connections

    assert run(main) == 1


def test_a_large_body_is_read_with_flow_control(run: Runner) -> None:
    size = 3 * 1024 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + b"content-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()

    async def main() -> int:
        async with Server(handler) as server, client() as http:
            total = 0
            async with http.stream("GET", server.url) as response:
                async for part in response.aiter_raw():
                    total += len(part)
                    await asyncio.sleep(0)  # a slow reader
            return total

    assert run(main) == size


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_burst_comes_out_small_piece_first(framing: str, run: Runner) -> None:
    """A whole reply in one network read: its first token is not held back until all of it is decoded."""
    tokens = [b'data: {"token": %d}\n\n' % n for n in range(3000)]  # about 60 KB
    if framing == "chunked":
        body = b"transfer-encoding: chunked\r\n\r\n" + b"".join(b"%x\r\n%s\r\n" % (len(t), t) for t in tokens)
        body += b"0\r\n\r\n"
    else:
        body = b"content-length: %d\r\n\r\n" % sum(map(len, tokens)) + b"".join(tokens)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + body)  # one write

    async def main() -> list[bytes]:
        async with Server(handler) as server, client() as http, http.stream("GET", server.url) as response:
            buffer = response.extensions["network_stream"].buffer
            whole = len(b"".join(tokens))
            while not (buffer.endswith(b"0\r\n\r\n") if framing == "chunked" else len(buffer) >= whole):
                await asyncio.sleep(0.01)  # until the whole body is in the connection's buffer
            return [part async for part in response.aiter_raw()]

    parts = run(main)
    assert b"".join(parts) == b"".join(tokens)
    sizes = [len(part) for part in parts]
    assert sizes[0] <= 4096
    assert len(parts) <= 4  # and then in few, growing pieces: 2 KB, 16 KB, the rest
    assert sizes[1] > sizes[0]


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return make_authority(tmp_path)


def test_tls_verifies_the_server_with_the_configured_ca(authority: Authority, run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + b"content-length: 6\r\n\r\nsecret")
        await writer.drain()

    async def main() -> str:
        async with Server(handler, tls=authority.server_context()) as server:
            async with client() as untrusting:  # the public CAs do not know this one
                with pytest.raises(httpx2.ConnectError):
                    await untrusting.get(server.url)
            async with client(ssl_context=tls_context({"verify": str(authority.ca)})) as http:
                return (await http.get(server.url)).text

    assert run(main) == "secret"


def test_tls_sends_the_configured_client_certificate(authority: Authority, run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + b"content-length: 2\r\n\r\nin")
        await writer.drain()

    async def main() -> str:
        async with Server(handler, tls=authority.server_context(require_client_cert=True)) as server:
            without = tls_context({"verify": str(authority.ca)})
            async with client(ssl_context=without) as http:
                with pytest.raises((httpx2.ConnectError, httpx2.ReadError, httpx2.RemoteProtocolError)):
                    await http.get(server.url)  # (TLS 1.3 refuses it after the handshake, at the first read)
            cert = [str(authority.client_cert), str(authority.client_key)]
            async with client(ssl_context=tls_context({"verify": str(authority.ca), "cert": cert})) as http:
                return (await http.get(server.url)).text

    assert run(main) == "in"


def test_ssl_cert_file_is_trusted(authority: Authority, monkeypatch: pytest.MonkeyPatch, run: Runner) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK + b"content-length: 2\r\n\r\nok")
        await writer.drain()

    async def main() -> str:
        async with Server(handler, tls=authority.server_context()) as server, client() as http:
            return (await http.get(server.url)).text

    assert run(main) == "ok"


@pytest.mark.parametrize(
    "headers",
    [{"x-note": "a\r\nx-injected: yes"}, {"x-note": "a\nGET /admin HTTP/1.1"}, {"bad name": "v"}],
    ids=["crlf", "lf", "space in name"],
)
def test_a_header_that_would_inject_another_is_refused(headers: dict[str, str], run: Runner) -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(1000))

    async def main() -> None:
        async with Server(handler) as server, client() as http:
            with pytest.raises(httpx2.LocalProtocolError):
                await http.post(server.url, content=b"{}", headers=headers)

    run(main)
    assert received == []  # nothing was sent


def test_connections_per_origin_are_capped_and_a_request_waits_for_one(run: Runner) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK + b"transfer-encoding: chunked\r\n\r\n2\r\nok\r\n")
            await writer.drain()
            await release.wait()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def main() -> tuple[str, int]:
        async with Server(handler) as server:
            http = httpx2.AsyncClient(transport=LeanTransport(max_connections=2), timeout=5)
            async with http:
                streams = [
                    await http.send(http.build_request("GET", server.url), stream=True) for _ in range(2)
                ]
                with pytest.raises(httpx2.PoolTimeout):
                    await http.get(server.url, timeout=httpx2.Timeout(5, pool=0.2))
                third = asyncio.ensure_future(http.get(server.url))
                await asyncio.sleep(0.05)
                assert not third.done()  # waiting for a connection
                release.set()
                for stream in streams:
                    await stream.aread()
                    await stream.aclose()
                return (await third).text, server.connections

    assert run(main) == ("ok", 2)


def test_a_server_that_takes_no_request_is_a_write_timeout(run: Runner) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # reads nothing: the socket buffers fill up

    async def main() -> None:
        async with Server(handler) as server, client() as http:
            with pytest.raises(httpx2.WriteTimeout):
                await http.post(
                    server.url, content=b"x" * (64 * 1024 * 1024), timeout=httpx2.Timeout(5, write=0.3)
                )

    run(main)


def test_a_proxy_in_the_environment_keeps_the_sdk_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "http_client" in async_http_client(openai.DefaultAsyncHttpxClient, {})
    assert async_http_client(openai.DefaultAsyncHttpxClient, {"sdk_transport": True}) == {}
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert async_http_client(openai.DefaultAsyncHttpxClient, {}) == {}
