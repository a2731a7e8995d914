"""Versions, in the page: edit a sent message (the earlier version stays, "1 / 2"), regenerate a reply
(the earlier reply stays), continue a reply cut short in the same message, where the model's view of a
long conversation begins, and plain-text titles."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from streaming.providers.demo import REPLY
from tests.browser_support import ChatPage, words
from tests.page_support import LONG, Site, no_serious_violations, reply_with

pytestmark = [pytest.mark.browser, pytest.mark.servers]


def versions_of(article: Any) -> str:
    return str(article.locator(".version-number").get_attribute("aria-label") or "")


def quoted(reply: Any) -> str:
    """What the demo model quoted: the message it answered."""
    return str(reply.locator(".content p").nth(1).inner_text())


def edit(chat: ChatPage, article: Any, text: str) -> Any:
    article.hover()
    article.get_by_role("button", name="Edit message").click()
    box = article.get_by_role("textbox", name="Edit your message")
    assert box.evaluate("(el) => el === document.activeElement")
    box.fill(text)
    article.get_by_role("button", name="Send", exact=True).click()
    reply = chat.replies.last
    chat.wait_settled(reply)
    chat.wait_idle()
    return reply


def test_an_edit_is_a_new_version_and_the_earlier_one_stays(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        reply_with(chat, "Name a colour")
        reply_with(chat, "And another one")
        first = chat.page.locator("article.message.user").first
        reply = edit(chat, first, "Name a fruit")
        assert chat.user_messages.all_inner_texts() == ["Name a fruit"]  # what followed went with it
        assert quoted(reply) == 'You said: "Name a fruit"'
        user = chat.page.locator("article.message.user").first
        assert versions_of(user) == "Version 2 of 2"
        no_serious_violations(chat, "a message with two versions")

        user.get_by_role("button", name="Previous version").click()
        chat.page.locator("article.message.user .bubble", has_text="Name a colour").wait_for()
        assert chat.user_messages.all_inner_texts() == ["Name a colour", "And another one"]
        user = chat.page.locator("article.message.user").first
        assert versions_of(user) == "Version 1 of 2"
        assert chat.page.evaluate("document.activeElement.getAttribute('aria-label')") == "Next version"
        branch = parse_qs(urlsplit(chat.page.url).query)["branch"][0]
        assert branch == user.get_attribute("data-message-id")
        chat.reload()  # the address keeps the branch
        assert chat.user_messages.all_inner_texts() == ["Name a colour", "And another one"]

        chat.page.locator("article.message.user").first.get_by_role("button", name="Next version").click()
        chat.page.locator("article.message.user .bubble", has_text="Name a fruit").wait_for()
        # A message sent here follows this branch: the model sees it, not the other.
        reply = reply_with(chat, "One more")
        assert chat.user_messages.all_inner_texts() == ["Name a fruit", "One more"]
        assert "branch" not in chat.page.url
        assert quoted(reply) == 'You said: "One more"'


def test_escape_leaves_a_message_as_it_was(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        reply_with(chat, "Keep me")
        user = chat.page.locator("article.message.user").first
        user.get_by_role("button", name="Edit message").focus()
        chat.page.keyboard.press("Enter")
        chat.page.keyboard.type(" and change me")
        chat.page.keyboard.press("Escape")
        assert chat.user_messages.all_inner_texts() == ["Keep me"]
        assert chat.page.evaluate("document.activeElement.dataset.action") == "edit"
        assert chat.replies.count() == 1


def test_regenerate_keeps_the_earlier_reply_as_a_version(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        first = reply_with(chat, "Answer twice")
        first_id = first.get_attribute("data-message-id")
        first.get_by_role("button", name="Regenerate reply").click()
        second = chat.replies.last
        chat.wait_settled(second)
        chat.wait_idle()
        assert chat.replies.count() == 1
        assert second.get_attribute("data-message-id") != first_id
        assert versions_of(second) == "Version 2 of 2"
        second.get_by_role("button", name="Previous version").click()
        chat.page.locator(f"article[data-message-id='{first_id}']").wait_for()
        assert versions_of(chat.replies.last) == "Version 1 of 2"


def test_continue_goes_on_in_the_same_reply(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        reply = chat.send("Stop me, then go on", model="paced:echo")
        chat.wait_for_text(reply, 30)
        chat.stop_button().click()
        assert chat.wait_settled(reply, timeout=5_000) == "cancelled"
        chat.wait_idle()
        partial = reply.locator(".content").inner_text()
        message_id = reply.get_attribute("data-message-id")
        go_on = reply.get_by_role("button", name="Continue the reply")
        assert go_on.is_visible()
        go_on.click()
        assert chat.wait_settled(reply) == "complete"
        chat.wait_idle()
        assert chat.replies.count() == 1 and reply.get_attribute("data-message-id") == message_id
        shown = reply.locator(".content").inner_text()
        assert words(shown).startswith(words(partial)) and len(shown) > len(partial)
        assert not go_on.is_visible()  # complete: nothing to go on with
        chat.reload()
        assert chat.replies.last.locator(".content").inner_text() == shown


def test_export_downloads_the_branch_shown_or_every_branch(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        reply_with(chat, "Export me")
        edit(chat, chat.page.locator("article.message.user").first, "Export me, edited")
        menu = chat.page.locator("#export-menu")
        menu.get_by_text("Export").click()
        with chat.page.expect_download() as markdown:
            menu.get_by_role("link", name="Export as Markdown").click()
        assert markdown.value.suggested_filename == "export-me.md"
        text = markdown.value.path().read_text(encoding="utf-8")
        assert text.startswith("# Export me\n") and "## You\n\nExport me, edited\n" in text
        assert "## You\n\nExport me\n" not in text  # the other branch
        with chat.page.expect_download() as everything:
            menu.get_by_role("link", name="Export as JSON").click()
        data = json.loads(everything.value.path().read_text(encoding="utf-8"))
        asked = [m["content"] for m in data["messages"] if m["role"] == "user"]
        assert asked == ["Export me", "Export me, edited"]  # every branch


LONG_CONVERSATION = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from streaming.models import Conversation, Message
user = get_user_model().objects.get(username=username)
conversation = Conversation.objects.create(owner=user, model="demo:echo", title="A long talk")
start = timezone.now() - timedelta(hours=1)
for n in range(count):
    Message.objects.create(
        conversation=conversation, role="user" if n % 2 == 0 else "assistant", content=f"Message {n}",
        created_at=start + timedelta(seconds=n),
    )
result = str(conversation.pk)
"""


def test_a_long_conversation_shows_where_the_models_view_begins(browser: Any, site: Site) -> None:
    conversation = site.django(LONG_CONVERSATION, username=LONG.username, count=50)
    with site.page(browser, LONG) as chat:
        chat.open(conversation)
        divider = chat.page.get_by_role("note")
        assert divider.inner_text() == "The model sees the 40 messages below this line"
        after = divider.evaluate("(el) => el.nextElementSibling.textContent")
        assert "Message 10" in after  # messages 10 to 49: the newest 40
        reply_with(chat, "Message 50")
        after = divider.evaluate("(el) => el.nextElementSibling.textContent")
        assert "Message 12" in after  # two more messages: the line moved down two
        no_serious_violations(chat, "a long conversation")


def test_the_title_is_plain_text(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        reply_with(chat, "# **Bold** plan with `code` and <b>tags</b>\n\n```\nx = 1\n```")
        title = "Bold plan with code and tags"
        chat.sidebar_item(title).wait_for()
        assert chat.page.locator("#conversation-title").inner_text() == title
        assert chat.page.title() == f"{title} · Chat"


def test_a_reply_quotes_what_it_answers() -> None:
    """(The tests above read the demo model's quote of the message it answered.)"""
    assert REPLY.splitlines()[2] == 'You said: "{words}"'
