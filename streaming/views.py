"""Views parse the request and return a response; ``services`` and ``streams`` do the work."""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render, resolve_url

from streaming import approvals as approval_service
from streaming import budgets, exports, listing, services, streams
from streaming.api import api_view
from streaming.conf import app_settings
from streaming.exceptions import InvalidRequest, NotFound, NotStreaming
from streaming.models import Conversation, Message
from streaming.payloads import message_ref, parse_approvals, parse_chat, parse_json_object, request_body
from streaming.readers import Reader
from streaming.reply import ReplyState
from streaming.serializers import conversation_detail as detail_dict
from streaming.sse import EventStreamResponse
from streaming.stopping import request_stop
from streaming.upkeep import take_over_stale

#: How long deleting a conversation waits for its streaming reply to stop and be saved.
DELETE_WAIT_SECONDS = 5.0
#: How long a stop waits for a reply in another process to hear it (a live one does within a poll
#: of the stop flags, ``STOP_POLL_SECONDS``); one that does not is taken for dead.
STOP_CONFIRM_SECONDS = 2.0


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    # Where a reader whose session ended logs in again (the page links there, back to itself).
    return render(request, "streaming/chat.html", {"login_url": resolve_url(settings.LOGIN_URL)})


@api_view(["GET"])
def models(request: HttpRequest) -> HttpResponse:
    configured = app_settings.providers
    listed = [spec.as_dict() for spec in app_settings.models if spec.provider in configured]
    return JsonResponse(
        {
            "models": listed,
            "default": app_settings.default_model,
            "history_messages": app_settings.history_messages,
        }
    )


@api_view(["GET"])
def conversations(request: HttpRequest) -> HttpResponse:
    """The user's conversations, newest first, a page at a time (``?cursor=``, ``?limit=``); with
    ``?q=``, those whose title or text has it."""
    return JsonResponse(listing.conversation_page(request.user.pk, listing.PageRequest.parse(request.GET)))


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("Not found.") from None


def _own_conversation(request: HttpRequest, ref: str) -> Conversation:
    """The user's conversation by its id or its client's chat id; 404 for anyone else's."""
    found = services.find_conversation(request.user.pk, ref)
    if found is None:
        raise NotFound("No such conversation.")
    return Conversation.objects.with_cost().get(pk=found.pk)


@api_view(["GET", "PATCH", "DELETE"])
def conversation(request: HttpRequest, conversation_id: str) -> HttpResponse:
    found = _own_conversation(request, conversation_id)
    if request.method == "DELETE":
        _stop_replies(found)
        found.delete()
        return HttpResponse(status=204)
    if request.method == "PATCH":
        found.title = services.parse_title(parse_json_object(request_body(request)))
        found.save(update_fields=["title"])
    take_over_stale(found.messages.all())
    branch = request.GET.get("branch")
    return JsonResponse(detail_dict(found, message_ref(branch, "branch") if branch else None))


@api_view(["GET"])
def export(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The conversation as a file to keep: ``?format=md`` (the branch shown, or ``?branch=``'s) or
    ``json`` (every message of every branch)."""
    found = _own_conversation(request, conversation_id)
    branch = request.GET.get("branch")
    through = message_ref(branch, "branch") if branch else None
    return exports.download(found, request.GET.get("format", "md"), through)


def _stop_replies(conversation: Conversation) -> None:
    """Stop a conversation's streaming reply before it goes: the reply is saved, and its usage row
    (which outlives the conversation) still counts toward costs and budgets."""
    streaming = conversation.messages.filter(status=Message.Status.STREAMING)
    ids = [str(pk) for pk in streaming.values_list("pk", flat=True)]
    if not ids:
        return
    for message_id in ids:
        request_stop(message_id)
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while streaming.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    take_over_stale(streaming, older_than=0, stopped=True)  # its process did not answer: it ends here


@api_view(["GET"])
def budget(request: HttpRequest) -> HttpResponse:
    """The user's spend this calendar month and what is left of their budget (null: unlimited)."""
    return JsonResponse(budgets.budget_status(request.user.pk).as_dict())


@api_view(["POST"])
def chat(request: HttpRequest) -> HttpResponseBase:
    return _start(request, services.start_reply(request.user, parse_chat(request_body(request))))


@api_view(["POST"])
def approvals(request: HttpRequest, message_id: str) -> HttpResponseBase:
    """Answer a reply's approval requests: 202 while some still wait for an answer, then the stream of
    the reply going on (as ``POST /api/chat`` answers)."""
    answers = parse_approvals(request_body(request))
    try:
        reply = approval_service.answer_approvals(request.user, _uuid_or_404(message_id), *answers)
    except approval_service.ApprovalsPending as pending:
        return JsonResponse(
            {"id": pending.message_id, "status": "awaiting_approval", "pending": pending.pending}, status=202
        )
    return _start(request, reply)


def _start(request: HttpRequest, reply: ReplyState) -> HttpResponseBase:
    if isinstance(request, ASGIRequest):
        body, reader = streams.start_async(reply)
        return EventStreamResponse(body, on_close=reader.close)
    sync_body, reader = streams.start_sync(reply)
    return EventStreamResponse(sync_body, on_close=reader.close)


@api_view(["POST"])
def stop(request: HttpRequest, message_id: str) -> HttpResponse:
    """Stop a streaming reply, wherever it streams: 202 once it has heard. A reply that does not stop
    within ``STOP_CONFIRM_SECONDS`` belongs to a process that died: it ends here, and now (200)."""
    mine = Message.objects.filter(pk=_uuid_or_404(message_id), conversation__owner_id=request.user.pk)
    take_over_stale(mine)
    message = mine.first()
    if message is None:
        raise NotFound("No such message.")
    if message.status != Message.Status.STREAMING:
        raise NotStreaming(f"This reply is already {message.status}.")
    if not request_stop(str(message.id)):
        streaming = mine.filter(status=Message.Status.STREAMING)
        deadline = time.monotonic() + STOP_CONFIRM_SECONDS
        while streaming.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if take_over_stale(streaming, older_than=0, stopped=True):
            return JsonResponse({"id": str(message.id), "status": "cancelled"})
    return JsonResponse({"id": str(message.id), "status": "stopping"}, status=202)


@api_view(["GET"])
def message_stream(request: HttpRequest, message_id: str) -> HttpResponseBase:
    """Attach to a reply: live while it streams (after ``Last-Event-ID`` or ``?after=``), replayed from
    storage once it ended."""
    message = (
        Message.objects.filter(pk=_uuid_or_404(message_id), conversation__owner_id=request.user.pk)
        .exclude(role=Message.Role.USER)
        .first()
    )
    if message is None:
        raise NotFound("No such reply.")
    return _stream(request, streams.attach(message, _after(request)))


@api_view(["GET"])
def chat_stream(request: HttpRequest, chat_id: str) -> HttpResponseBase:
    """The AI SDK's resume: the conversation's streaming reply from its first chunk; 204 when none."""
    found = services.find_conversation(request.user.pk, chat_id)
    if found is None:
        raise NotFound("No such conversation.")
    take_over_stale(found.messages.all())
    message = found.messages.filter(status=Message.Status.STREAMING).order_by("-created_at").first()
    if message is None:
        return HttpResponse(status=204)
    return _stream(request, streams.attach(message))


def _after(request: HttpRequest) -> int:
    """The id of the last chunk the client has: ``Last-Event-ID`` (what EventSource sends) or ``?after=``."""
    value = request.headers.get("Last-Event-ID") or request.GET.get("after")
    if value is None or value == "":
        return -1
    try:
        after = int(value)
    except ValueError:
        raise InvalidRequest("'after' (or Last-Event-ID) must be an event id.", field="after") from None
    if after < -1:
        raise InvalidRequest("'after' (or Last-Event-ID) must be an event id.", field="after")
    return after


def _stream(request: HttpRequest, reader: Reader) -> EventStreamResponse:
    if isinstance(request, ASGIRequest):
        return EventStreamResponse(streams.sse_async(reader), on_close=reader.close)
    return EventStreamResponse(streams.sse_sync(reader), on_close=reader.close)
