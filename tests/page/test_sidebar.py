"""The conversation list of someone with 1,503 conversations: it loads a page at a time as it scrolls,
searches titles and text on the server, shows what each conversation cost, and is one Tab stop that the
arrow keys move through."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_support import ChatPage
from tests.page_support import MANY, Site, no_serious_violations

pytestmark = [pytest.mark.browser, pytest.mark.servers]

COUNT = 1503

MANY_CONVERSATIONS = """
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from streaming.models import Conversation, Message, Usage
user = get_user_model().objects.get(username=username)
if not Conversation.objects.filter(owner=user).exists():
    now = timezone.now()
    made = Conversation.objects.bulk_create(
        Conversation(
            owner=user, model="demo:echo", title=f"Conversation {n}", updated_at=now - timedelta(minutes=n)
        )
        for n in range(count)
    )
    Message.objects.bulk_create([
        Message(conversation=made[700], role="user", content="How do I plan a zebra crossing in a town?"),
        Message(conversation=made[1400], role="user", content="Zebras: stripes, and why they have them"),
    ])
    Usage.objects.create(
        user=user, conversation=made[0], provider="demo", model="echo", total_cost=Decimal("0.0019")
    )
result = count
"""


@pytest.fixture
def many(site: Site) -> None:
    site.django(MANY_CONVERSATIONS, username=MANY.username, count=COUNT)


def links(chat: ChatPage) -> Any:
    return chat.page.locator("#conversation-list .conversation-link")


def tab_stops(chat: ChatPage) -> int:
    return int(
        chat.page.evaluate(
            """() => [...document.querySelectorAll('#sidebar :is(a[href], button, input, select)')]
                .filter((el) => el.tabIndex >= 0 && el.checkVisibility()).length"""
        )
    )


def test_the_list_loads_as_it_scrolls(browser: Any, site: Site, many: None) -> None:
    with site.page(browser, MANY) as chat:
        assert links(chat).count() == 50
        assert links(chat).first.inner_text().startswith("Conversation 0")
        for loaded in (100, 150):
            chat.page.locator("#conversation-nav").evaluate("(el) => el.scrollTop = el.scrollHeight")
            chat.page.wait_for_function(f"document.querySelectorAll('.conversation-link').length >= {loaded}")
        titles = links(chat).locator(".conversation-title").all_inner_texts()
        assert titles == [f"Conversation {n}" for n in range(150)]  # in order, none twice


def test_one_tab_stop_and_the_arrow_keys(browser: Any, site: Site, many: None) -> None:
    with site.page(browser, MANY) as chat:
        page = chat.page
        # New chat, search, the list (one), and the settings and account links below it.
        stops = tab_stops(chat)
        assert stops <= 7, stops
        page.get_by_role("searchbox", name="Search conversations").focus()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent").startswith("Conversation 0")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        assert page.evaluate("document.activeElement.textContent").startswith("Conversation 2")
        page.keyboard.press("ArrowRight")
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Rename “Conversation 2”"
        page.keyboard.press("ArrowRight")
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Delete “Conversation 2”"
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("End")
        assert page.evaluate("document.activeElement.textContent").startswith("Conversation 49")
        page.keyboard.press("Shift+Tab")  # out of the list, and back in at the same row
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent").startswith("Conversation 49")
        assert tab_stops(chat) == stops
        page.keyboard.press("Enter")
        page.locator("#conversation-title", has_text="Conversation 49").wait_for()
        no_serious_violations(chat, "a long conversation list")


def test_search_looks_through_titles_and_text(browser: Any, site: Site, many: None) -> None:
    with site.page(browser, MANY) as chat:
        search = chat.page.get_by_role("searchbox", name="Search conversations")
        search.fill("zebra")
        chat.page.locator(".conversation-match").first.wait_for()
        found = links(chat)
        titles = found.locator(".conversation-title").all_inner_texts()
        assert titles == ["Conversation 700", "Conversation 1400"]
        match = found.first.locator(".conversation-match").inner_text()
        assert match == "How do I plan a zebra crossing in a town?"
        assert chat.page.locator("#conversation-status").inner_text() == "2 found"
        search.fill("Conversation 1502")
        chat.page.wait_for_function("document.querySelectorAll('.conversation-link').length === 1")
        search.fill("no such words anywhere")
        chat.page.get_by_text("No conversation has “no such words anywhere”.").wait_for()
        search.fill("")
        chat.page.wait_for_function("document.querySelectorAll('.conversation-link').length === 50")
        no_serious_violations(chat, "search")


def test_each_conversation_says_what_it_cost(browser: Any, site: Site, many: None) -> None:
    with site.page(browser, MANY) as chat:
        first = links(chat).first
        assert first.locator(".conversation-cost").inner_text() == "$0.0019"
        assert "cost $0.0019" in (first.evaluate("(el) => el.textContent") or "")
        assert links(chat).nth(1).locator(".conversation-cost").count() == 0  # nothing spent there
