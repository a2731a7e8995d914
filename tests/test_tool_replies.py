"""A tool loop through each vendor's real SDK against the fake upstream, on the sync (WSGI) and the async
(ASGI) path: the vendor's recorded tool-call stream, the app running the calls (OpenAI's two at once),
the second model call with their results in the vendor's format, and what the user sees and keeps: the
tool parts in the stream and in the stored message, and a usage row per model call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from streaming.models import Message, Usage
from tests.fake_upstream import VENDORS, FakeUpstream, Reply, Vendor, fixture
from tests.real_providers import MODEL, body, configure, post, use_key
from tests.sse import parse_events, text_of, types

pytestmark = pytest.mark.django_db(transaction=True)

MODES = ["sync", "async"]
TOOLS = [
    "tests.example_tools.get_weather",
    "tests.example_tools.weather",
    "tests.example_tools.GetWeatherArgs",
    "tests.example_tools.get_stock_price",
]
RECORDED = {
    "openai": ("openai_parallel_tools.sse", False),
    "anthropic": ("anthropic_tool_use.sse", False),
    "gemini": ("gemini_tool_call.sse", True),
}
#: What the tools answer to each recorded stream's calls.
OUTPUTS = {
    "openai": ["12 degrees c in Edinburgh, UK", {"ticker": "AAPL", "exchange": "NASDAQ", "price": 123.45}],
    "anthropic": [{"location": "Paris", "forecast": "sunny", "celsius": 21}],
    "gemini": [{"location": "San Francisco", "forecast": "foggy", "celsius": 14}],
}


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    use_key(monkeypatch, "sk-test-1234567890")
    with FakeUpstream() as server:
        yield server


def chunks(sse: bytes) -> list[dict[str, Any]]:
    return [event for event in parse_events(sse) if isinstance(event, dict)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_tool_loop_through_each_vendor(
    upstream: FakeUpstream, settings: Any, api: Client, user: Any, vendor: Vendor, mode: str
) -> None:
    configure(settings, {vendor.name: upstream}, TOOLS=TOOLS)
    name, crlf = RECORDED[vendor.name]
    upstream.enqueue(
        Reply.stream(fixture(name, crlf=crlf)), Reply.stream(vendor.complete("Here is the weather."))
    )

    sse = post(mode, api, user, body(vendor, "What's the weather like?"))

    events = chunks(sse)
    outputs = [e["output"] for e in events if e["type"] == "tool-output-available"]
    assert outputs == OUTPUTS[vendor.name]
    assert types(events).count("start-step") == 2  # one per model call
    assert text_of(events).endswith("Here is the weather.")
    assert events[-1]["messageMetadata"]["status"] == "complete"
    # The second call has the first one's calls and their results, in the vendor's own format.
    assert len(upstream.requests) == 2
    assert results_sent(vendor, upstream.requests[1].json()) == outputs
    message = Message.objects.get(role="assistant")
    tools = [p for p in message.parts if p["type"].startswith("tool-")]
    assert [p["state"] for p in tools] == ["output-available"] * len(outputs)
    assert [p["output"] for p in tools] == outputs
    assert message.content.endswith("Here is the weather.")
    rows = Usage.objects.filter(message=message)
    assert rows.count() == 2 and {r.model for r in rows} == {MODEL[vendor.name].split(":")[1]}


def results_sent(vendor: Vendor, request: dict[str, Any]) -> list[Any]:
    """The tool results in a vendor's request: OpenAI's ``tool`` messages, Anthropic's ``tool_result``
    blocks (text: a JSON value as JSON), Gemini's ``functionResponse`` parts."""
    if vendor.name == "gemini":
        parts = [p for c in request["contents"] for p in c["parts"] if "functionResponse" in p]
        return [p["functionResponse"]["response"]["output"] for p in parts]
    if vendor.name == "anthropic":
        blocks = [b for m in request["messages"] if isinstance(m["content"], list) for b in m["content"]]
        texts = [b["content"] for b in blocks if b["type"] == "tool_result"]
    else:
        texts = [m["content"] for m in request["messages"] if m["role"] == "tool"]
    return [_value(text) for text in texts]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
