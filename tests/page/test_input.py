"""The message box, the way a person meets it: Enter on a phone, the drawer's focus, a message that is too
long, a session that ended, a budget that is spent, Enter while a reply streams, and a page that never
grows taller than the screen. In Chromium, against daphne (``runserver``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.page_support import (
    ALICE,
    BUDGET,
    PHONE_CONTEXT,
    Site,
    no_serious_violations,
    reply_with,
)

pytestmark = [pytest.mark.browser, pytest.mark.servers]


def test_on_a_touch_screen_enter_makes_a_new_line_and_send_sends(browser: Any, site: Site) -> None:
    with site.page(browser, **PHONE_CONTEXT) as chat:
        page = chat.page
        hint = page.locator("#composer-hint")
        assert hint.is_visible()
        assert hint.inner_text() == "Enter for a new line; tap Send to send"
        assert chat.prompt.get_attribute("enterkeyhint") == "enter"
        chat.choose_model("demo:echo")
        chat.prompt.tap()
        page.keyboard.type("First line")
        page.keyboard.press("Enter")
        page.keyboard.type("second line")
        assert chat.prompt.input_value() == "First line\nsecond line"
        assert chat.replies.count() == 0  # Enter sent nothing
        chat.send_button().tap()
        chat.wait_settled(chat.replies.first)
        assert chat.user_messages.first.inner_text() == "First line\nsecond line"


def test_on_a_keyboard_enter_sends(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        assert chat.page.locator("#composer-hint").inner_text() == "Enter to send, Shift+Enter for a new line"
        assert chat.prompt.get_attribute("enterkeyhint") == "send"


def test_the_drawer_takes_the_focus_and_gives_it_back(browser: Any, site: Site) -> None:
    """With the drawer's animation running, as on a real phone."""
    with site.page(browser, **PHONE_CONTEXT, reduced_motion="no-preference") as chat:
        page = chat.page
        toggle = page.get_by_role("button", name="Conversations")
        toggle.tap()
        assert page.evaluate("document.activeElement.closest('#sidebar') !== null")
        assert page.evaluate("document.activeElement.textContent.trim()") == "New chat"
        page.keyboard.press("Escape")
        assert page.evaluate("document.activeElement.id") == "sidebar-toggle"
        assert toggle.get_attribute("aria-expanded") == "false"


def test_a_message_over_the_limit_stays_in_the_box_with_the_limit(browser: Any, site: Site) -> None:
    text = "x" * 32_500
    with site.page(browser) as chat:
        chat.choose_model("demo:echo")
        chat.prompt.fill(text)
        chat.prompt.press("Enter")
        error = chat.page.locator(".composer-error")
        error.wait_for()
        assert error.get_attribute("role") == "alert"
        assert error.inner_text() == "The message has 32,500 characters; the limit is 32,000."
        assert chat.prompt.input_value() == text  # kept, to shorten and send again
        assert chat.prompt.get_attribute("aria-invalid") == "true"
        assert chat.page.get_by_role("button", name="Retry").count() == 0  # it would be refused again
        assert chat.user_messages.count() == 0 and chat.replies.count() == 0  # nothing was stored
        no_serious_violations(chat, "a refused message")
        chat.prompt.fill("A shorter message")
        assert not error.is_visible()
        assert chat.prompt.get_attribute("aria-invalid") is None


def test_an_ended_session_offers_to_log_in_and_come_back(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        conversation = reply_with(chat, "Before the session ends") and chat.conversation_id()
        chat.page.context.clear_cookies()  # the session expired, or was ended elsewhere
        chat.prompt.fill("After it ended")
        chat.prompt.press("Enter")
        error = chat.page.locator(".composer-error")
        error.wait_for()
        said = error.locator("p").inner_text()
        assert said == "Your session has ended: log in again, then send your message."
        assert chat.page.get_by_role("button", name="Retry").count() == 0
        assert chat.prompt.input_value() == "After it ended"
        link = error.get_by_role("link", name="Log in again")
        assert link.get_attribute("href") == f"/accounts/login/?next=%2Fchat%2F%3Fc%3D{conversation}"
        link.click()
        chat.page.get_by_label("Username").fill(ALICE.username)
        chat.page.get_by_label("Password").fill(ALICE.password)
        chat.page.get_by_role("button", name="Log in").click()
        chat.wait_ready()
        assert chat.conversation_id() == conversation  # back where the reader was
        assert chat.user_messages.all_inner_texts() == ["Before the session ends"]


SPEND = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from streaming.models import Usage, UserBudget
user = get_user_model().objects.get(username=username)
UserBudget.objects.update_or_create(user=user, defaults={"monthly_usd": Decimal(limit)})
Usage.objects.create(user=user, provider="demo", model="echo", total_cost=Decimal(spent))
"""


def test_a_spent_budget_says_what_is_left_and_offers_no_retry(browser: Any, site: Site) -> None:
    site.django(SPEND, username=BUDGET.username, limit="0.04", spent="0.0412")
    with site.page(browser, BUDGET) as chat:
        budget = chat.page.locator("#budget")
        assert budget.locator(".budget-text").inner_text() == "$0.0412 of $0.04 used · $0.00 left"
        assert chat.page.get_by_role("meter").count() == 1
        chat.choose_model("demo:echo")
        chat.prompt.fill("One more question")
        chat.prompt.press("Enter")
        error = chat.page.locator(".composer-error")
        error.wait_for()
        said = error.inner_text()
        assert said.startswith("You have used $0.0412 of your $0.04 monthly budget. It renews on ")
        assert said.endswith("This month: $0.0412 of $0.04 used · $0.00 left.")
        assert chat.page.get_by_role("button", name="Retry").count() == 0
        assert chat.prompt.input_value() == "One more question"


def test_enter_during_a_reply_says_why_nothing_was_sent(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        reply = chat.send("A long answer, please " + "word " * 60, model="paced:echo")
        chat.wait_for_text(reply, 20)
        chat.prompt.fill("My next question")
        chat.prompt.press("Enter")
        note = chat.page.locator(".composer-note")
        note.wait_for()
        assert note.is_visible()
        assert "wait for it to finish, or stop it" in note.inner_text()
        assert chat.page.locator("#composer-status").get_attribute("aria-live") == "polite"
        assert chat.prompt.input_value() == "My next question"
        assert chat.user_messages.count() == 1
        chat.stop_button().click()
        chat.wait_settled(reply)


@pytest.mark.parametrize("size", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}])
def test_nothing_makes_the_page_taller_or_wider_than_the_screen(
    browser: Any, site: Site, size: dict[str, int]
) -> None:
    """The hidden headings of each message ("You said:", "Assistant:") stay in the transcript, which
    scrolls: the page itself never does (find-in-page would shift the whole app)."""
    with site.page(browser, viewport=size) as chat:
        for n in range(4):
            reply_with(chat, f"Message {n} " + "word " * 30)
        chat.page.locator("#transcript").evaluate("(el) => el.scrollTop = 0")
        sizes = chat.page.evaluate(
            """() => ({height: document.documentElement.scrollHeight, bodyHeight: document.body.scrollHeight,
                       width: document.documentElement.scrollWidth, inner: innerHeight, innerWidth})"""
        )
        assert sizes["height"] <= sizes["inner"] and sizes["bodyHeight"] <= sizes["inner"], sizes
        assert sizes["width"] <= sizes["innerWidth"], sizes
        heading = chat.page.locator("article.message h2.visually-hidden").last
        heading.scroll_into_view_if_needed()  # what find-in-page does with a match
        assert chat.page.evaluate("[scrollX, scrollY, document.documentElement.scrollTop]") == [0, 0, 0]
