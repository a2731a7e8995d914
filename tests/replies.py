"""Drive a reply in-process, as the views do, and read its chunks: a batch per read of its transcript."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import orjson

from streaming import upkeep
from streaming.readers import Reader
from streaming.reply import ReplyState
from streaming.streams import begin

Chunk = dict[str, Any]


def batches(reply: ReplyState, heartbeat: float = 5.0) -> Generator[list[Chunk], None, None]:
    """The reply's chunks, a list per read, on this thread; the provider is called (on a thread, as
    under WSGI) once the first batch, ``start``, was taken. Closing it is the client going away."""
    relay, reader = begin(reply)
    try:
        while True:
            found = reader.wait(heartbeat)
            if found is None:
                continue
            yield [orjson.loads(data) for data in found.json_chunks()]
            if found.ended:
                return
            relay.start_thread()
    finally:
        reader.close()


async def abatches(reply: ReplyState, heartbeat: float = 5.0) -> AsyncGenerator[list[Chunk], None]:
    """``batches`` on an event loop: the provider is called in a task, as under ASGI."""
    relay, reader = begin(reply)
    try:
        while True:
            found = await reader.await_(heartbeat)
            if found is None:
                continue
            yield [orjson.loads(data) for data in found.json_chunks()]
            if found.ended:
                return
            relay.start_task()
    finally:
        reader.close()


def chunks(reply: ReplyState) -> list[Chunk]:
    return [chunk for batch in batches(reply) for chunk in batch]


async def achunks(reply: ReplyState) -> list[Chunk]:
    return [chunk async for batch in abatches(reply) for chunk in batch]


def settle(timeout: float = 5.0) -> None:
    """Wait until every reply of this process is saved (a reply saves on a database thread after its
    readers left, or as its last chunks go out)."""
    deadline = time.monotonic() + timeout
    while upkeep.live:
        if time.monotonic() > deadline:
            raise AssertionError(f"replies still streaming after {timeout} s: {list(upkeep.live)}")
        time.sleep(0.01)


def read(reader: Reader, heartbeat: float = 5.0) -> list[Chunk]:
    """Everything a reader gets, to the end of its reply."""
    got: list[Chunk] = []
    try:
        while True:
            found = reader.wait(heartbeat)
            if found is None:
                continue
            got += [orjson.loads(data) for data in found.json_chunks()]
            if found.ended:
                return got
    finally:
        reader.close()


def read_ids(reader: Reader) -> list[int]:
    """The event ids a reader gets, to the end of its reply."""
    ids: list[int] = []
    try:
        while True:
            found = reader.wait(5.0)
            if found is not None:
                ids += range(found.first, found.next)
                if found.ended:
                    return ids
    finally:
        reader.close()
