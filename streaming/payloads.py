"""Parse request bodies into validated inputs: the simple chat body and the AI SDK ``useChat`` body."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from streaming.approvals import answers_of
from streaming.exceptions import InvalidRequest, RequestTooLarge, UnsupportedMediaType
from streaming.models import CLIENT_ID_MAX_LENGTH
from streaming.services import ChatInput

TRIGGERS = ("submit-message", "regenerate-message")


#: The content types of a JSON body (a request without one is read as JSON too, as ``curl -d`` sends).
JSON_TYPES = ("application/json", "text/json")


def check_content_type(request: HttpRequest) -> None:
    """A body that is not JSON is refused before anything reads it (a form or multipart body would be
    parsed by the CSRF check, and a malformed one fail there)."""
    environ = getattr(request, "environ", request.META)
    has_body = environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ
    content_type = request.content_type or ""
    if has_body and content_type and content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"Send JSON (Content-Type: application/json), not {content_type}.")


def request_body(request: HttpRequest) -> bytes:
    """The body of an API request: JSON, within Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``, also when it
    came chunked (a WSGI server passes such a body on, but Django reads only a Content-Length's worth)."""
    check_content_type(request)
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    environ = getattr(request, "environ", {})
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
        body = environ["wsgi.input"].read(-1 if limit is None else limit + 1)
    else:
        try:
            body = request.body
        except RequestDataTooBig:
            body = None
    if body is None or (limit is not None and len(body) > limit):
        raise RequestTooLarge(f"The request body is larger than {limit:,} bytes.")
    return bytes(body)


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


def conversation_ref(value: Any, field: str) -> uuid.UUID | str | None:
    """A conversation id as a client gives it: a UUID, or a chat id of the client's own (the AI SDK's
    ``generateId()`` makes 16-character ones), which names the conversation for its owner."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{field}' must be a conversation id string or null.", field=field)
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    if len(value) > CLIENT_ID_MAX_LENGTH or not value.isprintable():
        raise InvalidRequest(
            f"'{field}' must be a UUID or a chat id of at most {CLIENT_ID_MAX_LENGTH} printable characters.",
            field=field,
        )
    return value


def message_ref(value: Any, field: str) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidRequest(f"'{field}' must be the id (a UUID) of a message.", field=field)


def no_nul(text: str, field: str) -> str:
    """Text for the database: PostgreSQL cannot store a NUL character, so a request with one is refused."""
    if "\x00" in text:
        raise InvalidRequest(f"'{field}' contains a NUL character.", field=field)
    return text


def _optional(data: dict[str, Any], field: str, kind: type, name: str) -> Any:
    value = data.get(field)
    if value is not None and not isinstance(value, kind):
        raise InvalidRequest(f"'{field}' must be {name}.", field=field)
    return value


def parse_chat(body: bytes) -> ChatInput:
    """Either ``{"conversation", "message", "model", "reasoning", "parent"?, "edit"?, "regenerate"?}``,
    ``{"continue": id}``, or a ``useChat`` body."""
    data = parse_json_object(body)
    model = _optional(data, "model", str, "a model id string like 'openai:gpt-4.1-mini'")
    reasoning = bool(_optional(data, "reasoning", bool, "true or false"))
    if "messages" in data:
        return _parse_use_chat(data, model, reasoning)
    if "continue" in data:
        return ChatInput(
            None, "", model, reasoning=reasoning, continued=message_ref(data["continue"], "continue")
        )
    regenerate, regenerated = _regenerate(data.get("regenerate"))
    message = data.get("message")
    if message is None and not regenerate:
        raise InvalidRequest("'message' is required.", field="message")
    if message is not None and not isinstance(message, str):
        raise InvalidRequest("'message' must be a string.", field="message")
    places = {name: message_ref(data[name], name) for name in ("parent", "edit") if data.get(name)}
    if len(places) + regenerate > 1:
        raise InvalidRequest("Give at most one of 'parent', 'edit' and 'regenerate'.", field="edit")
    return ChatInput(
        conversation_id=conversation_ref(data.get("conversation"), "conversation"),
        text=no_nul(message or "", "message"),
        model_id=model,
        reasoning=reasoning,
        regenerate=regenerate,
        regenerated=regenerated,
        parent=places.get("parent"),
        edit=places.get("edit"),
    )


def parse_approvals(body: bytes) -> tuple[dict[str, tuple[bool, str]], str | None, bool]:
    """``{"approvals": [{"id", "approved", "reason"?}], "model"?, "reasoning"?}``: the answers, and the
    model and reasoning of the reply that goes on."""
    data = parse_json_object(body)
    model = _optional(data, "model", str, "a model id string like 'openai:gpt-4.1-mini'")
    reasoning = bool(_optional(data, "reasoning", bool, "true or false"))
    return answers_of(data.get("approvals"), "approvals"), model, reasoning


def _answered(message: Any) -> tuple[uuid.UUID, dict[str, tuple[bool, str]]] | None:
    """The approval answers in the last UI message, when it is an assistant's with some (the tool parts
    in state ``approval-responded``): its id and the answers."""
    if (
        not isinstance(message, dict)
        or message.get("role") != "assistant"
        or not isinstance(message.get("parts"), list)
    ):
        return None
    answers = [
        dict(part["approval"]) if isinstance(part.get("approval"), dict) else {}
        for part in message["parts"]
        if isinstance(part, dict) and part.get("state") == "approval-responded"
    ]
    if not answers:
        return None
    return message_ref(message.get("id"), "messages"), answers_of(answers, "messages")


def _regenerate(value: Any) -> tuple[bool, uuid.UUID | None]:
    """``"regenerate"``: true (the newest message's reply), or the id of the reply to answer again."""
    if value is None or isinstance(value, bool):
        return bool(value), None
    if isinstance(value, str):
        return True, message_ref(value, "regenerate")
    raise InvalidRequest("'regenerate' must be true, false or the id of a reply.", field="regenerate")


def _parse_use_chat(data: dict[str, Any], model: str | None, reasoning: bool) -> ChatInput:
    messages = data["messages"]
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be a list of UI messages.", field="messages")
    answered = _answered(messages[-1] if messages else None)
    if answered is not None:  # the AI SDK's addToolApprovalResponse: the reply goes on
        message_id, answers = answered
        return ChatInput(
            conversation_ref(data.get("id"), "id"),
            "",
            model,
            reasoning=reasoning,
            approved=message_id,
            answers=answers,
        )
    trigger = data.get("trigger", "submit-message")
    if trigger not in TRIGGERS:
        raise InvalidRequest(f"'trigger' must be one of {', '.join(TRIGGERS)}.", field="trigger")
    regenerate = trigger == "regenerate-message"
    text = ""
    if not regenerate:
        last_user = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None
        )
        if last_user is None:
            raise InvalidRequest("'messages' has no user message.", field="messages")
        parts = last_user.get("parts")
        if not isinstance(parts, list):
            raise InvalidRequest("The user message has no 'parts' list.", field="messages")
        text = "".join(
            p["text"]
            for p in parts
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ChatInput(
        conversation_id=conversation_ref(data.get("id"), "id"),
        text=no_nul(text, "messages"),
        model_id=model,
        reasoning=reasoning,
        regenerate=regenerate,
        regenerated=_stored_id(data.get("messageId")) if regenerate else None,
    )


def _stored_id(value: Any) -> uuid.UUID | None:
    """``regenerate({messageId})``'s message, when it is one the app sent (its ids are UUIDs: the reply
    to answer again, or the user message whose reply it is); ``None`` for the client's own ids (the
    newest reply, as with no ``messageId``)."""
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None
