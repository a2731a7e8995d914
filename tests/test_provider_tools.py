"""Each vendor's tool calls through its real SDK against the fake upstream: the recorded streams (OpenAI's
parallel calls, Anthropic's ``tool_use`` with ``input_json_delta``, Gemini's ``functionCall`` with its
thought signature) give the same events, and the next step's request carries the tools, the model's
calls and their results in the vendor's own format."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from streaming.events import Finish, TextDelta, ToolCall, ToolCallDelta, ToolCallStart, Usage
from streaming.providers.anthropic import AnthropicProvider
from streaming.providers.base import ChatMessage, ChatRequest, ToolResult, ToolSpec
from streaming.providers.gemini import GeminiProvider
from streaming.providers.openai import OpenAIProvider
from tests.fake_upstream import FakeUpstream, Reply, collect, fixture, split_every
from tests.real_providers import use_key

MODES = ["sync", "async"]
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a place.",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)
#: Gemini's thought signature of its recorded call (Gemini 3 wants it back with the call).
SIGNATURE = json.loads(fixture("gemini_tool_call.sse")[0][6:])["candidates"][0]["content"]["parts"][0][
    "thoughtSignature"
]


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    use_key(monkeypatch, "sk-test-1234567890")
    with FakeUpstream() as server:
        yield server


def ask(*messages: ChatMessage, tool_choice: str | None = None) -> ChatRequest:
    context = [ChatMessage("user", "What's the weather like in Paris?"), *messages]
    return ChatRequest("model-x", context, tools=[WEATHER], tool_choice=tool_choice)


def calls(events: list[object]) -> list[object]:
    return [e for e in events if isinstance(e, (ToolCallStart, ToolCall))]


@pytest.mark.parametrize("mode", MODES)
def test_openai_parallel_calls(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(split_every(fixture("openai_parallel_tools.sse"), 13)))
    provider = OpenAIProvider("openai", {"base_url": upstream.url + "/v1"})
    events, error = collect(provider, ask(), mode)
    assert error is None
    weather = '{"city": "Edinburgh", "country": "UK", "units": "c"}'
    stock = '{"ticker": "AAPL", "exchange": "NASDAQ"}'
    assert calls(events) == [
        ToolCallStart("call_lQnnsesjFMWMQ5IeWPHzR4th", "GetWeatherArgs"),
        ToolCallStart("call_2xjOUgaCdiwAcl9ZBL9LyMUU", "get_stock_price"),
        ToolCall("call_lQnnsesjFMWMQ5IeWPHzR4th", "GetWeatherArgs", json.loads(weather), weather),
        ToolCall("call_2xjOUgaCdiwAcl9ZBL9LyMUU", "get_stock_price", json.loads(stock), stock),
    ]
    pieces = [
        e.text for e in events if isinstance(e, ToolCallDelta) and e.id == "call_lQnnsesjFMWMQ5IeWPHzR4th"
    ]
    assert len(pieces) == 11 and "".join(pieces) == weather  # streamed as the model wrote it
    assert events[-2:] == [Usage(input_tokens=149, output_tokens=60), Finish("tool-calls")]


@pytest.mark.parametrize("mode", MODES)
def test_anthropic_tool_use(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(fixture("anthropic_tool_use.sse")))
    events, error = collect(AnthropicProvider("anthropic", {"base_url": upstream.url}), ask(), mode)
    assert error is None
    call_id = "toolu_01NRLabsLyVHZPKxbKvkfSMn"
    assert events == [
        Usage(input_tokens=377, output_tokens=1, partial=True),
        TextDelta("I"),
        TextDelta("'ll check the current weather in Paris for you."),
        ToolCallStart(call_id, "get_weather"),
        ToolCallDelta(call_id, '{"locati'),
        ToolCallDelta(call_id, 'on": "P'),
        ToolCallDelta(call_id, "ar"),
        ToolCallDelta(call_id, 'is"}'),
        ToolCall(call_id, "get_weather", {"location": "Paris"}, '{"location": "Paris"}'),
        Usage(input_tokens=377, output_tokens=65),
        Finish("tool-calls"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_gemini_function_call(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(fixture("gemini_tool_call.sse", crlf=True)))
    events, error = collect(GeminiProvider("gemini", {"base_url": upstream.url}), ask(), mode)
    assert error is None
    [start, call] = calls(events)
    [delta] = [e for e in events if isinstance(e, ToolCallDelta)]
    assert isinstance(start, ToolCallStart) and isinstance(call, ToolCall)
    assert (start.name, delta.text) == ("weather", '{"location":"San Francisco"}')
    assert (call.id, call.name, call.input) == (start.id, "weather", {"location": "San Francisco"})
    assert call.signature == SIGNATURE
    assert events[-2:] == [Usage(input_tokens=29, output_tokens=60, reasoning_tokens=45), Finish("stop")]


def next_step(call: ToolCall, **result: object) -> list[ChatMessage]:
    """The model's step with ``call``, then the call's result."""
    return [
        ChatMessage("assistant", "Let me look.", tool_calls=[call]),
        ChatMessage("tool", "", tool_results=[ToolResult(call.id, call.name, **result)]),  # type: ignore[arg-type]
    ]


def test_openai_next_step_request(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.stream(fixture("openai_chat.sse")))
    call = ToolCall("call_1", "get_weather", {"location": "Paris"}, '{"location":"Paris"}')
    collect(
        OpenAIProvider("openai", {"base_url": upstream.url + "/v1"}),
        ask(*next_step(call, output={"c": 21})),
        "sync",
    )
    body = upstream.last.json()
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a place.",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"c":21}'},
    ]
    assert "tool_choice" not in body


def test_anthropic_next_step_request(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.stream(fixture("anthropic_basic.sse")))
    call = ToolCall("toolu_1", "get_weather", {"location": "Paris"}, '{"location":"Paris"}')
    request = ask(*next_step(call, error="get_weather failed: timeout"), tool_choice="none")
    collect(AnthropicProvider("anthropic", {"base_url": upstream.url}), request, "sync")
    body = upstream.last.json()
    assert body["tools"] == [
        {"name": "get_weather", "description": "The weather in a place.", "input_schema": WEATHER.parameters}
    ]
    assert body["tool_choice"] == {"type": "none"}  # the reply's last call: answer with what you have
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "Error: get_weather failed: timeout",
                    "is_error": True,
                }
            ],
        },
    ]


def test_anthropic_gets_its_signed_thinking_back_with_the_calls(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply.stream(fixture("anthropic_basic.sse")))
    call = ToolCall("toolu_1", "get_weather", {"location": "Paris"}, '{"location":"Paris"}')
    step = next_step(call, output="sunny")
    step[0].reasoning, step[0].reasoning_signature = "I should look it up.", "c2lnbmF0dXJl"
    collect(AnthropicProvider("anthropic", {"base_url": upstream.url}), ask(*step), "sync")
    blocks = upstream.last.json()["messages"][1]["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "I should look it up.", "signature": "c2lnbmF0dXJl"}


@pytest.mark.parametrize("mode", MODES)
def test_gemini_next_step_request(upstream: FakeUpstream, mode: str) -> None:
    upstream.enqueue(Reply.stream(fixture("gemini_real.sse", crlf=True)))
    call = ToolCall("call_1", "weather", {"location": "San Francisco"}, "{}", signature=SIGNATURE)
    request = ask(*next_step(call, output={"temperature": 21}), tool_choice="none")
    collect(GeminiProvider("gemini", {"base_url": upstream.url}), request, mode)
    body = upstream.last.json()
    [declaration] = body["tools"][0]["functionDeclarations"]
    assert (declaration["name"], declaration["description"]) == ("get_weather", "The weather in a place.")
    # (google-genai writes this field as the proto's own name, which the API reads like the camelCase one.)
    assert (
        declaration.get("parametersJsonSchema", declaration.get("parameters_json_schema"))
        == WEATHER.parameters
    )
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    model, results = body["contents"][1:]
    signature = model["parts"][1].pop("thoughtSignature")
    assert model == {
        "role": "model",
        "parts": [
            {"text": "Let me look."},
            {"functionCall": {"name": "weather", "args": {"location": "San Francisco"}}},
        ],
    }
    assert base64.urlsafe_b64decode(signature) == base64.b64decode(SIGNATURE)  # the same bytes back
    assert results == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "weather", "response": {"output": {"temperature": 21}}}}],
    }
