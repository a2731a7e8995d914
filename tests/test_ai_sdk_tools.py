"""The Vercel AI SDK's own client (``ai`` 7.x from the npm registry) and the app's tools, against a live
server: the tool part it builds from the stream ends ``output-available`` with the tool's output, and
its approval flow (``addToolApprovalResponse``, then the request it sends by itself) runs or denies the
call and goes on with the same message. (``tests/js/ai_sdk_tools.mjs`` is the client.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import require
from tests.node_client import run_node
from tests.servers import LiveServer, available, running_server

pytestmark = pytest.mark.servers

SERVER_ENV = {"DJANGO_SETTINGS_MODULE": "tests.settings_browser", "STREAMING_DEMO_TOKENS_PER_SECOND": "400"}


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require(available(request.param), f"{request.param} is not installed")
    with running_server(request.param, tmp_path_factory.mktemp("ai-sdk-tools"), SERVER_ENV) as live:
        yield live


def tool_parts(chat: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [p for p in chat["messages"][-1]["parts"] if p["type"] == f"tool-{name}"]


def test_the_ai_sdk_builds_tool_parts_and_answers_approvals(server: LiveServer) -> None:
    with server.log_on_failure():
        result = run_node(server, "ai_sdk_tools.mjs", "/chat", timeout=90)

    timed = result["timed"]
    assert (timed["status"], timed["error"]) == ("ready", None)
    [part] = tool_parts(timed, "current_time")
    assert part["state"] == "output-available"
    assert part["input"] == {}
    assert str(part["output"])[:2] == "20"  # the server's date and time, from the tool
    reply = timed["messages"][-1]
    assert [p["type"] for p in reply["parts"]].count("step-start") == 2  # the model was called twice
    assert "current_time" in "".join(p.get("text", "") for p in reply["parts"] if p["type"] == "text")
    assert reply["metadata"]["status"] == "complete"

    [asked] = tool_parts(result["asked"], "remember")
    assert asked["state"] == "approval-requested"
    assert result["asked"]["messages"][-1]["metadata"]["status"] == "awaiting_approval"

    approved = result["approved"]
    assert approved["error"] is None
    assert [m["role"] for m in approved["messages"]] == ["user", "assistant"]  # the same message went on
    [done] = tool_parts(approved, "remember")
    assert (done["state"], done["output"]) == ("output-available", "noted 'Buy milk'")
    texts = [p["text"] for p in approved["messages"][-1]["parts"] if p["type"] == "text"]
    assert texts[-1] == "Done: noted 'Buy milk'"

    [refused] = tool_parts(result["denied"], "remember")
    assert refused["state"] == "output-denied"
    texts = [p["text"] for p in result["denied"]["messages"][-1]["parts"] if p["type"] == "text"]
    assert texts[-1] == "The user denied this tool call. No."
    with server.client() as client:
        conversations = client.get("/chat/api/conversations").json()["conversations"]
    assert len(conversations) == 3
