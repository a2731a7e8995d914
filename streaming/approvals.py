"""The user's answers to a reply's approval requests, and the reply that goes on once all are in.

A step whose tool calls include one marked ``needs_approval`` ends the reply (status
``awaiting_approval``, finish reason ``tool-calls``): nothing holds a connection, a thread or a lease
while a person decides, and the answer may come from any tab or process, later. The answers come in
``POST /api/messages/<id>/approvals`` or in the AI SDK's next request (``addToolApprovalResponse``
puts them in the assistant message's parts). Each is stored in the message's parts as it comes; once
none is pending, the reply goes on in the same message: the approved calls run, the denied ones go
back to the model as denied, and the model is called again.
"""

from __future__ import annotations

import uuid
from typing import Any

from streaming import limits
from streaming.database import write_transaction
from streaming.exceptions import InvalidRequest, NotAwaitingApproval
from streaming.models import Message
from streaming.parts import Part, call_of, context_messages, is_tool, result_of, steps, text_of
from streaming.reply import ReplyState
from streaming.services import (
    _with_system_prompt,
    going_on,
    history_before,
    lock_reply,
    offered_tools,
    resolve_model,
)
from streaming.steps import Step, approval_id

Answers = dict[str, tuple[bool, str]]


class ApprovalsPending(Exception):
    """Some approval requests of the reply have no answer yet: it waits on (``pending``: their ids)."""

    def __init__(self, message_id: str, pending: list[str]) -> None:
        super().__init__(f"{len(pending)} approval requests wait for an answer.")
        self.message_id = message_id
        self.pending = pending


def answer_approvals(
    user: Any, message_id: uuid.UUID, answers: Answers, model_id: str | None = None, reasoning: bool = False
) -> ReplyState:
    """Store ``answers`` (approval id: approved, reason) in the reply awaiting them; the reply that goes
    on once none is pending, else ``ApprovalsPending``."""
    with limits.starting(user.pk):  # (ApprovalsPending gives the reply's place back)
        with write_transaction():
            message = _awaiting(user, message_id)
            parts = list(message.parts)
            pending = _record(parts, answers)
            if not pending:
                return _go_on(user, message, parts, model_id, reasoning)
            Message.objects.filter(pk=message.pk).update(parts=parts)
        raise ApprovalsPending(str(message.pk), pending)


def _awaiting(user: Any, message_id: uuid.UUID) -> Message:
    """The user's reply awaiting approval, its conversation locked; 404 or 409 otherwise."""
    found = lock_reply(user, message_id, field="approvals")
    if found.status != Message.Status.AWAITING_APPROVAL:
        raise NotAwaitingApproval(f"This reply awaits no approval; it is {found.status}.")
    return found


def _record(parts: list[Part], answers: Answers) -> list[str]:
    """Store the answers in the parts (state ``approval-responded``); the approval ids still pending."""
    asked = {
        part["approval"]["id"]: part
        for part in parts
        if is_tool(part) and part.get("state") in ("approval-requested", "approval-responded")
    }
    unknown = sorted(set(answers) - set(asked))
    if unknown:
        raise InvalidRequest(f"This reply asked for no approval {unknown[0]!r}.", field="approvals")
    for approval, (approved, reason) in answers.items():
        part = asked[approval]
        part["state"] = "approval-responded"
        part["approval"] = {"id": approval, "approved": approved, **({"reason": reason} if reason else {})}
    return [a for a, part in asked.items() if part["state"] == "approval-requested"]


def _go_on(
    user: Any, message: Message, parts: list[Part], model_id: str | None, reasoning: bool
) -> ReplyState:
    """The reply streams again: its last step's answered calls first, then the model."""
    spec = resolve_model(model_id or message.model)
    tools = offered_tools(spec)
    done = list(steps(parts))
    earlier = [p for step in done[:-1] for p in [{"type": "step-start"}, *step]]
    history = history_before(message.conversation_id, message.pk, tools=True)
    context = _with_system_prompt([*history, *context_messages(earlier)])
    waiting = _waiting_step(done[-1] if done else [])
    reasoning = reasoning and spec.reasoning
    return going_on(user, message, spec, context, reasoning, tools, before=parts, resuming=True, step=waiting)


def _waiting_step(parts: list[Part]) -> Step:
    """The step that waited: what the model said and called, the results it has, the answers."""
    step = Step(text=[text_of(parts)])
    for part in parts:
        if part.get("type") == "reasoning":  # (Anthropic wants signed thinking back with its calls)
            step.reasoning.append(part.get("text", ""))
            step.signature = ((part.get("providerMetadata") or {}).get("anthropic") or {}).get(
                "signature", ""
            )
        if not is_tool(part):
            continue
        call = call_of(part)
        step.calls.append(call)
        approval = part.get("approval") or {}
        if part.get("state") == "approval-responded":
            step.answers[call.id] = (bool(approval.get("approved")), str(approval.get("reason") or ""))
        else:
            step.results[call.id] = result_of(part)
    return step


def answers_of(value: Any, field: str) -> Answers:
    """``[{"id": approval id, "approved": bool, "reason"?: str}, ...]`` as answers."""
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"'{field}' must be a list of answers.", field=field)
    answers: Answers = {}
    for item in value:
        if not isinstance(item, dict):
            raise InvalidRequest(f"Each of '{field}' must be an object.", field=field)
        approval, approved, reason = item.get("id"), item.get("approved"), item.get("reason") or ""
        if not isinstance(approval, str) or not isinstance(approved, bool) or not isinstance(reason, str):
            raise InvalidRequest(
                f"Each of '{field}' needs 'id' (a string), 'approved' (true or false), 'reason'?.",
                field=field,
            )
        if "\x00" in approval + reason:
            raise InvalidRequest(f"'{field}' contains a NUL character.", field=field)
        answers[approval] = (approved, reason)
    return answers


__all__ = ["ApprovalsPending", "answer_approvals", "answers_of", "approval_id"]
