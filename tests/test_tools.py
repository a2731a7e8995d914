"""The tool loop as the user sees it: the model calls tools, the app runs them and calls the model again,
every step streamed (the AI SDK's tool parts) and kept (the message's parts, a usage row per model
call). Tools run at once, within their timeout; what goes wrong goes back to the model as an error,
never a traceback; ``MAX_STEPS`` bounds the model calls; a stop ends a tool that runs; the stored reply
replays with its tool calls. Through the scripted provider, on a thread (WSGI) and in a task (ASGI)."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from streaming import streams
from streaming.events import Finish, TextDelta, ToolCall, ToolCallDelta, ToolCallStart, Usage
from streaming.models import Message, PriceOverride
from streaming.models import Usage as UsageRow
from streaming.providers.scripted import Pause, ScriptedProvider
from streaming.readers import StoredReader
from streaming.services import ChatInput, start_reply
from streaming.stopping import request_stop
from tests import example_tools, replies

pytestmark = pytest.mark.django_db(transaction=True)

MODES = ["sync", "async"]


def offer(settings: Any, *names: str, **extra: Any) -> None:
    settings.STREAMING = {
        **settings.STREAMING,
        "TOOLS": [f"tests.example_tools.{name}" for name in names],
        **extra,
    }


def calls(*made: tuple[str, str, Any], text: str = "") -> list[Any]:
    """A model call that says ``text`` and makes these tool calls (id, tool, input)."""
    items: list[Any] = [TextDelta(text)] if text else []
    for call_id, name, arguments in made:
        encoded = json.dumps(arguments) if isinstance(arguments, dict) else str(arguments)
        parsed = arguments if isinstance(arguments, dict) else None
        items += [
            ToolCallStart(call_id, name),
            ToolCallDelta(call_id, encoded),
            ToolCall(call_id, name, parsed, encoded),
        ]
    return [*items, Usage(input_tokens=10, output_tokens=5), Finish("tool-calls")]


def answer(text: str) -> list[Any]:
    return [TextDelta(text), Usage(input_tokens=20, output_tokens=3), Finish("stop")]


def run(user: Any, mode: str, text: str = "Go", **kwargs: Any) -> list[dict[str, Any]]:
    reply = start_reply(user, ChatInput(None, text, "scripted:model-a", **kwargs))
    return replies.chunks(reply) if mode == "sync" else asyncio.run(replies.achunks(reply))


def of_type(chunks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for c in chunks if c["type"] == kind]


def sent_results(call: int) -> list[Any]:
    """The tool results the model got in its ``call``-th request (0-based)."""
    messages = ScriptedProvider.calls[call].request.messages
    return [(r.name, r.output, r.error) for m in messages for r in m.tool_results]


@pytest.mark.parametrize("mode", MODES)
def test_a_reply_of_three_model_calls(user: Any, settings: Any, mode: str) -> None:
    offer(settings, "add", "shout")
    PriceOverride.objects.create(
        provider="scripted", model="model-a", input_per_mtok=Decimal(1), output_per_mtok=Decimal(2)
    )
    ScriptedProvider.enqueue(calls(("c1", "add", {"a": 2, "b": 3}), text="Let me add."))
    ScriptedProvider.enqueue(calls(("c2", "shout", {"text": "five"})))
    ScriptedProvider.enqueue(answer("It is FIVE."))

    chunks = run(user, mode)

    assert [c["type"] for c in chunks] == [
        "start", "start-step",
        "text-start", "text-delta", "text-end",
        "tool-input-start", "tool-input-delta", "tool-input-available",
        "tool-output-available", "finish-step", "start-step",
        "tool-input-start", "tool-input-delta", "tool-input-available",
        "tool-output-available", "finish-step", "start-step",
        "text-start", "text-delta", "text-end", "finish-step", "finish",
    ]  # fmt: skip
    assert of_type(chunks, "tool-input-available")[0] == {
        "type": "tool-input-available", "toolCallId": "c1", "toolName": "add", "input": {"a": 2, "b": 3},
    }  # fmt: skip
    assert [(c["toolCallId"], c["output"]) for c in of_type(chunks, "tool-output-available")] == [
        ("c1", 5),
        ("c2", "FIVE"),
    ]
    assert sent_results(1) == [("add", 5, None)]
    assert sent_results(2) == [("add", 5, None), ("shout", "FIVE", None)]
    message = Message.objects.get(role="assistant")
    assert message.content == "Let me add.\n\nIt is FIVE."
    assert [p["type"] for p in message.parts] == [
        "step-start", "text", "tool-add", "step-start", "tool-shout", "step-start", "text",
    ]  # fmt: skip
    rows = UsageRow.objects.filter(message=message)
    assert sorted(r.output_tokens for r in rows) == [3, 5, 5]  # a row per model call
    finish = chunks[-1]["messageMetadata"]
    assert finish["usage"]["inputTokens"] == 40 and finish["usage"]["outputTokens"] == 13
    assert Decimal(finish["cost"]) == sum((r.total_cost for r in rows if r.total_cost), Decimal(0)) > 0


@pytest.mark.parametrize("mode", MODES)
def test_parallel_calls_run_at_once(user: Any, settings: Any, mode: str) -> None:
    offer(settings, "slow")
    example_tools.runs.clear()
    ScriptedProvider.enqueue(
        calls(
            ("c1", "slow", {"name": "one", "seconds": 0.4}), ("c2", "slow", {"name": "two", "seconds": 0.4})
        )
    )
    ScriptedProvider.enqueue(answer("Both done."))

    chunks = run(user, mode)

    assert [c["output"] for c in of_type(chunks, "tool-output-available")] == ["one", "two"]
    (_, began_one, ended_one), (_, began_two, ended_two) = sorted(example_tools.runs)
    assert began_two < ended_one and began_one < ended_two  # they overlapped
    assert all(c["toolMetadata"]["durationMs"] >= 400 for c in of_type(chunks, "tool-output-available"))


@pytest.mark.parametrize("mode", MODES)
def test_what_goes_wrong_in_a_tool_goes_back_to_the_model(user: Any, settings: Any, mode: str) -> None:
    offer(settings, "broken", "refuses", "huge", "add")
    ScriptedProvider.enqueue(
        calls(
            ("c1", "broken", {"path": "/etc/secret.txt"}),
            ("c2", "refuses", {}),
            ("c3", "huge", {}),
            ("c4", "add", {"a": "two", "b": 3}),
            ("c5", "delete_all", {}),
        )
    )
    ScriptedProvider.enqueue(answer("Sorry."))

    chunks = run(user, mode)

    errors = [(c["toolCallId"], c["errorText"]) for c in of_type(chunks, "tool-output-error")]
    assert errors == [
        ("c1", "broken failed: FileNotFoundError: no such file: /etc/secret.txt"),
        ("c2", "The order 42 does not exist."),  # a ToolError's own words
        ("c3", "The output of huge has 100,002 characters; the limit is 20,000."),
        (
            "c4",
            "Invalid input for add: a: Input should be a valid integer, "
            "unable to parse string as an integer.",
        ),
        ("c5", "There is no tool named 'delete_all'."),
    ]
    assert "Traceback" not in json.dumps(chunks)
    assert [error for _, _, error in sent_results(1)] == [text for _, text in errors]
    assert chunks[-1]["messageMetadata"]["status"] == "complete"


def test_input_that_is_not_json_is_an_input_error(user: Any, settings: Any) -> None:
    offer(settings, "add")
    ScriptedProvider.enqueue(calls(("c1", "add", '{"a": 1, "b": ')))
    ScriptedProvider.enqueue(answer("Oops."))
    chunks = run(user, "sync")
    assert of_type(chunks, "tool-input-error") == [
        {
            "type": "tool-input-error",
            "toolCallId": "c1",
            "toolName": "add",
            "input": '{"a": 1, "b": ',
            "errorText": "The input of add is not a JSON object.",
        }
    ]
    assert sent_results(1) == [("add", None, "The input of add is not a JSON object.")]


@pytest.mark.parametrize("mode", MODES)
def test_a_tool_that_times_out(user: Any, settings: Any, mode: str) -> None:
    offer(settings, "wait_forever")
    example_tools.cancelled.clear()
    ScriptedProvider.enqueue(calls(("c1", "wait_forever", {})))
    ScriptedProvider.enqueue(answer("It took too long."))
    started = time.monotonic()

    chunks = run(user, mode)

    assert time.monotonic() - started < 5
    assert [c["errorText"] for c in of_type(chunks, "tool-output-error")] == [
        "wait_forever did not finish within 0.3 seconds."
    ]
    assert example_tools.cancelled.wait(2)  # an async tool is cancelled at its timeout
    assert chunks[-1]["messageMetadata"]["status"] == "complete"


@pytest.mark.parametrize("mode", MODES)
def test_max_steps_bounds_the_model_calls(user: Any, settings: Any, mode: str) -> None:
    offer(settings, "add", MAX_STEPS=2)
    ScriptedProvider.enqueue(calls(("c1", "add", {"a": 1, "b": 1})))
    ScriptedProvider.enqueue(calls(("c2", "add", {"a": 2, "b": 2})))  # the model calls again anyway
    ScriptedProvider.enqueue(answer("never asked"))

    chunks = run(user, mode)

    assert len(ScriptedProvider.calls) == 2
    first, last = (call.request for call in ScriptedProvider.calls)
    assert (first.tool_choice, last.tool_choice) == (None, "none")  # the last call may not call tools
    assert [t.name for t in last.tools] == ["add"]
    assert [c["errorText"] for c in of_type(chunks, "tool-output-error")] == [
        "Not run: the reply reached its limit of 2 model calls."
    ]
    assert chunks[-1]["finishReason"] == "tool-calls"
    assert chunks[-1]["messageMetadata"]["status"] == "complete"


@pytest.mark.parametrize("mode", MODES)
def test_a_stop_while_a_tool_runs_ends_it(user: Any, settings: Any, mode: str) -> None:
    offer(settings, "wait_long")
    example_tools.started.clear()
    example_tools.cancelled.clear()
    ScriptedProvider.enqueue(calls(("c1", "wait_long", {}), text="Waiting."))
    reply = start_reply(user, ChatInput(None, "Go", "scripted:model-a"))

    async def read() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async for batch in replies.abatches(reply):
            got += batch
            if any(c["type"] == "tool-input-available" for c in batch):
                await asyncio.to_thread(example_tools.started.wait, 5)
                request_stop(reply.message_id)
        return got

    started = time.monotonic()
    if mode == "sync":
        chunks = []
        for batch in replies.batches(reply):
            chunks += batch
            if any(c["type"] == "tool-input-available" for c in batch):
                assert example_tools.started.wait(5)
                request_stop(reply.message_id)
    else:
        chunks = asyncio.run(read())

    assert time.monotonic() - started < 10  # not the tool's minute
    assert [c["type"] for c in chunks[-2:]] == ["message-metadata", "abort"]
    assert example_tools.cancelled.wait(2)
    message = Message.objects.get(pk=reply.message_id)
    assert message.status == "cancelled"
    assert message.parts[-1] == {
        "type": "tool-wait_long",
        "toolCallId": "c1",
        "state": "input-available",
        "input": {},
    }

    # Continued, the model is told the call did not run.
    ScriptedProvider.enqueue(answer("Done waiting."))
    run_continue = start_reply(user, ChatInput(None, "", None, continued=message.pk))
    replies.chunks(run_continue)
    assert sent_results(1) == [
        ("wait_long", None, "Not run: the reply was stopped before this call finished.")
    ]
    # (after the tool call, its text is a part of its own)
    assert Message.objects.get(pk=reply.message_id).content == "Waiting.\n\nDone waiting."


def test_a_stored_tool_reply_replays_with_its_calls(api: Client, user: Any, settings: Any) -> None:
    offer(settings, "add")
    ScriptedProvider.enqueue(calls(("c1", "add", {"a": 2, "b": 2})))
    ScriptedProvider.enqueue(answer("Four."))
    live = run(user, "sync")

    replayed = replies.read(StoredReader(live[0]["messageId"]))

    def steady(chunks: list[dict[str, Any]]) -> list[Any]:
        return [
            {k: v for k, v in c.items() if k not in ("delta", "inputTextDelta")}
            for c in chunks
            if c["type"] != "tool-input-delta"
        ]

    assert steady(replayed[1:-1]) == steady(live[1:-1])
    assert replayed[-1]["messageMetadata"]["usage"] == live[-1]["messageMetadata"]["usage"]


def test_a_reader_attaching_mid_loop_gets_the_tool_chunks(user: Any, settings: Any) -> None:
    offer(settings, "slow")
    ScriptedProvider.enqueue(calls(("c1", "slow", {"name": "late", "seconds": 0.5})))
    ScriptedProvider.enqueue([Pause(0.2), *answer("Late.")])
    reply = start_reply(user, ChatInput(None, "Go", "scripted:model-a"))
    first = replies.batches(reply)
    seen: list[dict[str, Any]] = []
    for batch in first:
        seen += batch
        if any(c["type"] == "tool-input-available" for c in batch):
            break
    # A second tab attaches after the first chunk: it gets the rest, the tool's output included.
    message = Message.objects.get(pk=reply.message_id)
    second = replies.read(streams.attach(message, after=0))
    first.close()
    assert second[0]["type"] == "start-step"
    assert [c["output"] for c in of_type(second, "tool-output-available")] == ["late"]
    assert second[-1]["messageMetadata"]["status"] == "complete"
