"""The WebSocket transport: the replies and chunks of the SSE stream, over one socket per client.

The client sends ``{"type": "chat", ...}`` with the body of ``POST /api/chat`` to start a reply, and
``{"type": "stop"}`` to stop it. The server sends each chunk of the UI message stream (SPEC §6) as
one text frame: ``start`` ... ``finish`` (or ``message-metadata`` + ``abort`` after a stop). There is
no ``[DONE]`` frame and no heartbeat: the last chunk ends the reply, and WebSocket has its own pings.

A request that fails before its reply starts gets one ``{"type": "error", "errorText", "code"}``
frame (the codes of the JSON API) and the socket stays open. A socket without a logged-in user is
closed with code 4401. One reply streams per socket at a time; a client that goes away mid-reply
stops it, and the partial reply is saved as ``cancelled``.

Needs ``channels``; the demo project's ``asgi.py`` shows the routing (``streaming.routing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from streaming import database, services
from streaming.exceptions import InvalidRequest, NotStreaming, ReplyInProgress, StreamingError
from streaming.payloads import parse_chat, parse_json_object
from streaming.relay import HEARTBEAT, run_async
from streaming.reply import ReplyState
from streaming.services import ChatInput
from streaming.stopping import request_stop

logger = logging.getLogger(__name__)

#: The close code for a socket without a logged-in user (4000-4999 are the application's; 401 + 4000).
CLOSE_UNAUTHENTICATED = 4401
#: The close code when the server fails unexpectedly (RFC 6455 "internal error").
CLOSE_SERVER_ERROR = 1011


def error_frame(error: StreamingError) -> dict[str, Any]:
    """The frame of a request that failed before its reply started: the API error, in stream terms."""
    frame: dict[str, Any] = {"type": "error", "errorText": error.message, "code": error.code}
    if error.field:
        frame["field"] = error.field
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        frame["retryAfter"] = max(1, round(retry_after))
    return frame


class ChatConsumer(AsyncWebsocketConsumer):
    """``/ws/chat/``: start replies and stop them; receive their chunks, one per frame."""

    user: Any = None
    task: asyncio.Task[None] | None = None  # the reply, until its cleanup is done
    replying = False  # until the reply's last chunk: a new chat before then is refused
    message_id: str | None = None  # the reply streaming on this socket, once it started
    stop_wanted = False  # a stop arrived before the reply had its id

    async def connect(self) -> None:
        # Accept first, then close: a refused handshake loses the close code (browsers see 1006).
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user

    async def disconnect(self, code: int) -> None:
        task = self.task
        if task is not None:
            task.cancel()  # the relay saves the partial reply as cancelled
            await asyncio.wait([task])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None:
            return  # closing: the client was told with 4401
        raw = text_data.encode() if text_data is not None else bytes_data or b""
        try:
            data = parse_json_object(raw)
            kind = data.get("type")
            if kind == "chat":
                await self._start(parse_chat(raw))
            elif kind == "stop":
                await self._stop()
            else:
                raise InvalidRequest("'type' must be 'chat' or 'stop'.", field="type")
        except StreamingError as error:
            await self.send_chunk(error_frame(error))

    async def send_chunk(self, chunk: dict[str, Any]) -> None:
        await self.send(text_data=orjson.dumps(chunk).decode())

    # -- one reply at a time ----------------------------------------------------------------------

    async def _start(self, chat: ChatInput) -> None:
        if self.replying:
            raise ReplyInProgress("A reply is already streaming on this connection: stop it or wait.")
        if self.task is not None:
            await asyncio.wait([self.task])  # the last reply sent its last chunk and is cleaning up
        self.replying = True
        self.stop_wanted = False
        self.task = asyncio.create_task(self._reply(chat))

    async def _stop(self) -> None:
        if not self.replying:
            raise NotStreaming("No reply is streaming on this connection.")
        if self.message_id is None:
            self.stop_wanted = True  # still starting: stop as soon as it has an id
            return
        await sync_to_async(request_stop, thread_sensitive=False)(self.message_id)

    async def _reply(self, chat: ChatInput) -> None:
        # The database calls of every socket's replies run, briefly, on the app's database threads
        # (streaming.database), with their kept connections: an open reply holds no thread and no
        # connection.
        try:
            reply = await self._begin(chat)
            if reply is not None:
                await self._stream(reply)
        except OSError:
            pass  # the client went away as a frame was sent (uvicorn raises): the reply is saved cancelled
        except Exception:
            logger.exception("streaming: a WebSocket reply failed")
            with contextlib.suppress(Exception):  # the socket may be gone already
                await self.close(code=CLOSE_SERVER_ERROR)
        finally:
            self.task = None
            self.replying = False
            self.message_id = None

    async def _begin(self, chat: ChatInput) -> ReplyState | None:
        """Store the messages; an error frame and None when the request is refused."""
        starting = asyncio.ensure_future(database.arun(lambda: services.start_reply(self.user, chat)))
        try:
            reply = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The client left while the reply was being stored: save it as cancelled, not streaming.
            with contextlib.suppress(StreamingError):
                left = await starting
                left.cancel("disconnected")
                await database.arun(lambda: services.save_reply(left))
            raise
        except StreamingError as error:
            self.replying = False
            await self.send_chunk(error_frame(error))
            return None
        self.message_id = reply.message_id
        if self.stop_wanted:
            await sync_to_async(request_stop)(reply.message_id)
        return reply

    async def _stream(self, reply: ReplyState) -> None:
        batches = run_async(reply)
        try:
            async for batch in batches:
                if reply.saved:
                    self.replying = False  # the closing batch: the reply is stored; the next may start
                if batch is HEARTBEAT:
                    continue
                for chunk in batch:
                    await self.send_chunk(chunk)
        finally:
            await batches.aclose()
