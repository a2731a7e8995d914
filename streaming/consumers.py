"""The WebSocket transport: the replies and chunks of the SSE stream, over one socket per client.

The client sends ``{"type": "chat", ...}`` with the body of ``POST /api/chat`` to start a reply,
``{"type": "resume", "message": "<id>", "after": <n>}`` to attach to a reply (live while it streams,
after chunk ``n`` when given; replayed from storage once it ended), and ``{"type": "stop"}`` to stop
the reply it shows. The server sends each chunk of the UI message stream as one text frame: ``start``
... ``finish`` (or ``message-metadata`` + ``abort`` after a stop). There is no ``[DONE]`` frame and no
heartbeat: the last chunk ends the reply, and WebSocket has its own pings.

A request that fails before its reply starts gets one ``{"type": "error", "errorText", "code"}``
frame (the codes of the JSON API) and the socket stays open. A socket opened by a page of another
origin than the site's own (scheme, host and port) or its ``CSRF_TRUSTED_ORIGINS`` is closed with code
4403, and one without a logged-in user with code 4401. One reply streams per socket at a time. A
client that goes away leaves its reply to go on for ``DISCONNECT_GRACE_SECONDS``, for a reader that
attaches again, as over SSE.

Needs ``channels``; the demo project's ``asgi.py`` shows the routing (``streaming.routing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from streaming import database, services, streams
from streaming.conf import app_settings
from streaming.exceptions import InvalidRequest, NotFound, NotStreaming, ReplyInProgress, StreamingError
from streaming.models import Message
from streaming.origins import same_origin
from streaming.payloads import message_ref, parse_chat, parse_json_object
from streaming.readers import Reader
from streaming.reply import ReplyState
from streaming.services import ChatInput
from streaming.stopping import request_stop

logger = logging.getLogger(__name__)

#: The close code for a socket without a logged-in user (4000-4999 are the application's; 401 + 4000).
CLOSE_UNAUTHENTICATED = 4401
#: The close code for a socket opened by a page of another origin (403 + 4000): see ``streaming.origins``.
CLOSE_FORBIDDEN_ORIGIN = 4403
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
    """``/ws/chat/``: start, resume and stop replies; receive their chunks, one per frame."""

    user: Any = None
    task: asyncio.Task[None] | None = None  # sends the reply this socket shows, until its cleanup is done
    busy = False  # until the reply's last chunk: a new chat before then is refused
    message_id: str | None = None  # the reply this socket shows, once it has an id
    stop_wanted = False  # a stop arrived before the reply had its id

    async def connect(self) -> None:
        # Accept first, then close: a refused handshake loses the close code (browsers see 1006).
        await self.accept()
        if not same_origin(self.scope):
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)
            return
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user

    async def disconnect(self, code: int) -> None:
        task = self.task
        if task is not None:
            task.cancel()  # the reader leaves; the reply goes on for its grace period
            await asyncio.wait([task])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None:
            return  # closing: the client was told with 4401 or 4403
        raw = text_data.encode() if text_data is not None else bytes_data or b""
        try:
            data = parse_json_object(raw)
            kind = data.get("type")
            if kind == "chat":
                chat = parse_chat(raw)
                self._begin_task(lambda: self._reply(chat))
            elif kind == "resume":
                message_id = message_ref(data.get("message"), "message")
                after = data.get("after", -1)
                if not isinstance(after, int) or isinstance(after, bool) or after < -1:
                    raise InvalidRequest("'after' must be the id of the last chunk received.", field="after")
                self._begin_task(lambda: self._resume(str(message_id), after))
            elif kind == "stop":
                await self._stop()
            else:
                raise InvalidRequest("'type' must be 'chat', 'resume' or 'stop'.", field="type")
        except StreamingError as error:
            await self.send_chunk(error_frame(error))

    async def send_chunk(self, chunk: dict[str, Any]) -> None:
        await self.send_json_text(orjson.dumps(chunk))

    async def send_json_text(self, data: bytes) -> None:
        await self.send(text_data=data.decode())

    # -- one reply at a time ----------------------------------------------------------------------

    def _begin_task(self, work: Callable[[], Any]) -> None:
        if self.busy:
            raise ReplyInProgress("A reply is already streaming on this connection: stop it or wait.")
        self.busy = True
        self.stop_wanted = False
        previous = self.task

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # the last reply sent its last chunk and is cleaning up
            await self._guarded(work)

        self.task = asyncio.create_task(run())

    async def _guarded(self, work: Callable[[], Any]) -> None:
        try:
            await work()
        except OSError:
            pass  # the client went away as a frame was sent (uvicorn raises); the reply goes on
        except Exception:
            logger.exception("streaming: a WebSocket reply failed")
            with contextlib.suppress(Exception):  # the socket may be gone already
                await self.close(code=CLOSE_SERVER_ERROR)
        finally:
            if self.task is asyncio.current_task():  # (not when the next reply has started already)
                self.busy = False
                self.message_id = None

    async def _stop(self) -> None:
        if not self.busy:
            raise NotStreaming("No reply is streaming on this connection.")
        if self.message_id is None:
            self.stop_wanted = True  # still starting: stop as soon as it has an id
            return
        await sync_to_async(request_stop, thread_sensitive=False)(self.message_id)

    async def _reply(self, chat: ChatInput) -> None:
        reply = await self._start_reply(chat)
        if reply is None:
            return
        relay, reader = streams.begin(reply)
        await self._shown(reply.message_id)
        await self._send_from(reader, then=relay.start_task)

    async def _start_reply(self, chat: ChatInput) -> ReplyState | None:
        """Store the messages; an error frame and None when the request is refused."""
        # The database calls of every socket's replies run, briefly, on the app's database threads
        # (streaming.database), with their kept connections: an open reply holds no thread.
        starting = asyncio.ensure_future(database.arun(lambda: services.start_reply(self.user, chat)))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The client left while the reply was being stored: it ends cancelled, calling nobody.
            with contextlib.suppress(StreamingError):
                _, reader = streams.begin(await starting)
                reader.close()
            raise
        except StreamingError as error:
            self.busy = False
            await self.send_chunk(error_frame(error))
            return None

    async def _resume(self, message_id: str, after: int) -> None:
        user = self.user

        def find() -> Reader:
            message = (
                Message.objects.filter(pk=message_id, conversation__owner_id=user.pk)
                .exclude(role=Message.Role.USER)
                .first()
            )
            if message is None:
                raise NotFound("No such reply.", field="message")
            return streams.attach(message, after)

        try:
            reader = await database.arun(find)
        except StreamingError as error:
            self.busy = False
            await self.send_chunk(error_frame(error))
            return
        await self._shown(message_id)
        await self._send_from(reader)

    async def _shown(self, message_id: str) -> None:
        self.message_id = message_id
        if self.stop_wanted:
            await sync_to_async(request_stop, thread_sensitive=False)(message_id)

    async def _send_from(self, reader: Reader, then: Callable[[], object] | None = None) -> None:
        try:
            while True:
                found = await reader.await_(app_settings.heartbeat_seconds)
                if found is None:
                    continue
                if found.ended:
                    self.busy = False  # the next chat may start as soon as the last chunk is out
                for data in found.json_chunks():
                    await self.send_json_text(data)
                if found.ended:
                    return
                if then is not None:
                    then()
                    then = None
        finally:
            reader.close()
