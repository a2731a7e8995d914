"""Tool calls on the chat page, in a real browser (Chromium through Playwright) against daphne (ASGI) and
gunicorn (WSGI): each call a collapsible card (the tool's name, state and time; its input and its output
or error), the same after a reload, and Approve / Deny on a call that needs the user's answer, after
which the reply goes on in place.

Models (``tests.settings_browser``): ``demo:echo`` calls the demo project's ``current_time``;
``approver:model`` asks to run ``remember``, which needs approval.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import test_browser
from tests.axe import require_axe, serious_violations
from tests.browser_support import ChatPage, chat_page, session_cookies, shot
from tests.conftest import require
from tests.servers import NEEDS, LiveServer, available, running_server

pytestmark = [pytest.mark.browser, pytest.mark.servers]

SERVERS = {"asgi": "runserver", "wsgi": "gunicorn"}
SERVER_ENV = {"DJANGO_SETTINGS_MODULE": "tests.settings_browser", "STREAMING_DEMO_TOKENS_PER_SECOND": "400"}


browser = test_browser.browser  # (Chromium, once per module)


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    kind = SERVERS[request.param]
    require(available(kind), f"{NEEDS[kind]} is not installed: cannot test the page under {kind}")
    with running_server(kind, tmp_path_factory.mktemp(f"browser-tools-{kind}"), SERVER_ENV) as live:
        yield live


@pytest.fixture
def chat(browser: Any, server: LiveServer) -> Iterator[ChatPage]:
    with chat_page(browser, server, session_cookies(server)) as page:
        yield page
    print(f"--- the {server.kind} server's output ---\n{server.log()[-4000:]}")  # shown on failure


def settled(chat: ChatPage, reply: Any, status: str) -> None:
    reply.and_(chat.page.locator(f"[aria-busy=false][data-status={status}]")).wait_for(timeout=30_000)


def test_a_tool_call_is_a_card(chat: ChatPage) -> None:
    reply = chat.send(f"What time is it? {uuid.uuid4().hex[:6]}", model="demo:echo")
    settled(chat, reply, "complete")

    card = reply.locator(".tool-card")
    assert card.count() == 1
    assert card.locator(".tool-name").inner_text() == "current_time"
    assert card.locator(".tool-state").inner_text() == "Done"
    assert card.locator(".tool-time").inner_text().endswith("ms")
    assert card.get_attribute("open") is None  # folded: the answer is what matters
    assert not card.locator(".tool-output").is_visible()
    card.locator("summary").click()
    assert card.locator(".tool-input").inner_text() == "{}"
    output = card.locator(".tool-output").inner_text()
    assert output[:2] == "20"  # the server's date and time
    assert "current_time" in reply.locator(".content").inner_text()  # the model's answer, after the card

    chat.reload()
    stored = chat.replies.last.locator(".tool-card")
    assert stored.locator(".tool-name").inner_text() == "current_time"
    assert stored.locator(".tool-state").inner_text() == "Done"
    stored.locator("summary").click()
    assert stored.locator(".tool-output").inner_text() == output


def test_approve_and_deny(chat: ChatPage) -> None:
    require_axe()
    reply = chat.send("Buy milk", model="approver:model")
    settled(chat, reply, "awaiting_approval")
    card = reply.locator(".tool-card")
    assert reply.locator(".status").inner_text() == "Waiting for your approval"
    assert card.get_attribute("open") is not None  # the question is in view
    assert card.locator(".tool-state").inner_text() == "Needs your approval"
    assert card.locator(".tool-input").inner_text() == '{\n  "note": "Buy milk"\n}'
    assert serious_violations(chat.page) == []
    assert not reply.get_by_role("button", name="Continue the reply").is_visible()  # (answering does)
    assert reply.get_by_role("button", name="Regenerate reply").is_visible()
    shot(chat, "chat-tool-approval")  # (docs/tools.md)

    card.get_by_role("button", name="Approve remember").click()
    settled(chat, reply, "complete")
    assert card.locator(".tool-state").inner_text() == "Done"
    assert card.locator(".tool-output").inner_text() == "noted 'Buy milk'"
    assert card.locator(".tool-question").inner_text() == "You approved this call."
    assert card.get_by_role("button").count() == 0
    content = reply.locator(".content").inner_text()
    assert content.startswith("I will remember that, if you agree.")
    assert content.endswith("Done: noted 'Buy milk'")
    assert chat.replies.count() == 1  # the same reply went on
    shot(chat, "chat-tool-approved")

    second = chat.send("Sell the car")
    settled(chat, second, "awaiting_approval")
    second.get_by_role("button", name="Deny remember").click()
    settled(chat, second, "complete")
    assert second.locator(".tool-card .tool-state").inner_text() == "Denied"
    assert second.locator(".content").inner_text().endswith("The user denied this tool call.")

    chat.reload()
    cards = chat.page.locator(".tool-card .tool-state")
    assert cards.all_inner_texts() == ["Done", "Denied"]
    assert chat.page.locator(".tool-card button").count() == 0
