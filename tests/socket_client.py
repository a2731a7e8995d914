"""A real WebSocket client (the ``websockets`` package) for ``/ws/chat/`` on a live server."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from websockets.sync.client import ClientConnection, connect

ENDINGS = ("finish", "abort")


def cookie_header(cookies: Mapping[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def open_socket(
    base_url: str, cookies: Mapping[str, str] | None = None, origin: str | None = "same"
) -> ClientConnection:
    """Connect to ``/ws/chat/`` of the server at ``base_url`` (``http://host:port``) as a browser would:
    with the session cookie and the page's ``Origin`` (``"same"``: the server's own)."""
    headers = {"Cookie": cookie_header(cookies)} if cookies else {}
    if origin == "same":
        origin = base_url
    return connect(
        base_url.replace("http://", "ws://", 1) + "/ws/chat/",
        origin=origin,  # type: ignore[arg-type]
        additional_headers=headers,
        proxy=None,
        open_timeout=10,
        compression=None,
    )


def receive(socket: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    frame = orjson.loads(socket.recv(timeout=timeout))
    assert isinstance(frame, dict)
    return frame


Timed = tuple[float, dict[str, Any]]


def frames_until(socket: ClientConnection, *kinds: str, timeout: float = 10) -> list[Timed]:
    """Frames, each with its arrival time (monotonic), up to and including the first of ``kinds``."""
    frames: list[Timed] = []
    while not frames or frames[-1][1]["type"] not in kinds:
        frame = receive(socket, timeout)
        frames.append((time.monotonic(), frame))
    return frames


def send(socket: ClientConnection, message: dict[str, Any]) -> None:
    socket.send(orjson.dumps(message).decode())
