"""The Vercel AI SDK's own client, the ``ai`` package from the npm registry, against the app under a real
server: its chat ids (``generateId()``, 16 characters) name the conversation, a second chat instance
resumes a reply mid-stream with ``resumeStream()`` and rebuilds it whole, and the resume answers 204
when nothing streams. (``tests/js/ai_sdk_resume.mjs`` is the client.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streaming.providers.demo import REPLY
from tests.conftest import require
from tests.node_client import run_node
from tests.servers import LiveServer, available, running_server

pytestmark = pytest.mark.servers

MESSAGE = "Resume me " + " ".join(f"word{n}" for n in range(60))


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require(available(request.param), f"{request.param} is not installed")
    env = {"STREAMING_DEMO_TOKENS_PER_SECOND": "40"}
    with running_server(request.param, tmp_path_factory.mktemp("ai-sdk"), env) as live:
        yield live


def run_client(server: LiveServer) -> dict[str, Any]:
    return run_node(server, "ai_sdk_resume.mjs", "", MESSAGE)


def test_the_ai_sdk_client_resumes_a_reply_mid_stream(server: LiveServer) -> None:
    result = run_client(server)
    expected = REPLY.format(words=MESSAGE)
    assert len(result["id"]) == 16  # the SDK's own id, not a UUID
    assert result["first"] == {"status": "ready", "text": expected, "roles": ["user", "assistant"]}
    second = result["second"]
    assert second["error"] is None
    assert second["status"] == "ready"
    assert second["text"] == expected  # rebuilt from the reply's first chunk: nothing missing
    assert result["seenByFirst"] < len(expected)  # it did join mid-reply
    assert second["metadata"]["status"] == "complete"
    assert result["idle"] == {"status": "ready", "messages": 0, "error": None}  # 204: nothing to resume
    with server.client() as client:
        detail = client.get(f"/api/conversations/{result['id']}").json()
    assert [m["content"] for m in detail["messages"]] == [MESSAGE, expected]
