"""Views parse the request and return a response; ``services`` does the work."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

from streaming import budgets, database, services
from streaming.api import api_view
from streaming.conf import app_settings
from streaming.exceptions import NotFound, NotStreaming
from streaming.models import Conversation, Message, mark_stale_interrupted
from streaming.payloads import parse_chat, parse_json_object
from streaming.serializers import conversation_detail as detail_dict
from streaming.serializers import conversation_dict
from streaming.sse import EventStreamResponse, stream_async, stream_sync
from streaming.stopping import request_stop


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    return render(request, "streaming/chat.html")


@api_view(["GET"])
def models(request: HttpRequest) -> HttpResponse:
    configured = app_settings.providers
    listed = [spec.as_dict() for spec in app_settings.models if spec.provider in configured]
    return JsonResponse({"models": listed, "default": app_settings.default_model})


@api_view(["GET"])
def conversations(request: HttpRequest) -> HttpResponse:
    mine = Conversation.objects.with_cost().filter(owner_id=request.user.pk)
    rows = mine.order_by("-updated_at")[:500]
    return JsonResponse({"conversations": [conversation_dict(c) for c in rows]})


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("Not found.") from None


def _own_conversation(request: HttpRequest, conversation_id: str) -> Conversation:
    conversation = (
        Conversation.objects.with_cost()
        .filter(pk=_uuid_or_404(conversation_id), owner_id=request.user.pk)
        .first()
    )
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


@api_view(["GET", "PATCH", "DELETE"])
def conversation(request: HttpRequest, conversation_id: str) -> HttpResponse:
    found = _own_conversation(request, conversation_id)
    if request.method == "DELETE":
        found.delete()
        return HttpResponse(status=204)
    if request.method == "PATCH":
        found.title = services.parse_title(parse_json_object(request.body))
        found.save(update_fields=["title"])
    mark_stale_interrupted(found.messages.all(), stale_after=app_settings.stale_after_seconds)
    return JsonResponse(detail_dict(found))


@api_view(["GET"])
def budget(request: HttpRequest) -> HttpResponse:
    """The user's spend this calendar month and what is left of their budget (null: unlimited)."""
    return JsonResponse(budgets.budget_status(request.user.pk).as_dict())


@api_view(["POST"])
def chat(request: HttpRequest) -> HttpResponseBase:
    reply = services.start_reply(request.user, parse_chat(request.body))
    if isinstance(request, ASGIRequest):
        # Inside a transaction (a TestCase), the reply's later database work must stay in it too.
        return EventStreamResponse(stream_async(reply, database_here=database.in_transaction()))
    return EventStreamResponse(stream_sync(reply))


@api_view(["POST"])
def stop(request: HttpRequest, message_id: str) -> HttpResponse:
    mine = Message.objects.filter(pk=_uuid_or_404(message_id), conversation__owner_id=request.user.pk)
    mark_stale_interrupted(mine, stale_after=app_settings.stale_after_seconds)  # nobody would hear a stop
    message = mine.first()
    if message is None:
        raise NotFound("No such message.")
    if message.status != Message.Status.STREAMING:
        raise NotStreaming(f"This reply is already {message.status}.")
    request_stop(str(message.id))
    return JsonResponse({"id": str(message.id), "status": "stopping"}, status=202)
