"""Model output as a reader sees it: task lists with their checkboxes, a wide table that scrolls instead
of breaking its words, links that lost their target shown as text, highlighted code (the library fetched
only once a code block appears), and no Copy on a reply with nothing to copy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.page_support import (
    PHONE_CONTEXT,
    Site,
    no_serious_violations,
    reply_with,
)

pytestmark = [pytest.mark.browser, pytest.mark.servers]

HIGHLIGHT = "/static/streaming/vendor/highlight.min.js"


def test_task_lists_keep_their_checkboxes(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        reply = reply_with(chat, "A plan, please", model="markdown:model")
        boxes = reply.get_by_role("checkbox")
        assert boxes.count() == 3
        assert [box.is_checked() for box in boxes.all()] == [True, False, False]
        assert all(box.is_disabled() for box in boxes.all())  # a record of the plan, not a form
        assert reply.locator("li.task").first.inner_text().strip() == "Snapshot the database"
        assert reply.locator("input:not([type=checkbox]), input[name], input:not([disabled])").count() == 0
        chat.reload()  # as stored, too
        assert chat.replies.last.get_by_role("checkbox").count() == 3


def test_a_wide_table_scrolls_sideways_without_breaking_words(browser: Any, site: Site) -> None:
    with site.page(browser, **PHONE_CONTEXT) as chat:
        reply = reply_with(chat, "A plan, please", model="markdown:model")
        region = reply.get_by_role("region", name="Table")
        assert region.get_attribute("tabindex") == "0"  # keyboard users can scroll it
        widths = region.evaluate("(el) => [el.scrollWidth, el.clientWidth]")
        assert widths[0] > widths[1]  # it scrolls ...
        assert chat.page.evaluate("document.documentElement.scrollWidth") <= 390  # ... and the page does not
        lines = reply.locator("td", has_text="Rollback").first.evaluate(
            """(cell) => { const range = document.createRange(); range.selectNodeContents(cell);
                           return range.getClientRects().length; }"""
        )
        assert lines == 1  # "Rollback" on one line, not "Rollb" / "ack"


def test_links_that_lost_their_target_are_plain_text(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        reply = reply_with(chat, "Be hostile", model="hostile:model")
        content = reply.locator(".content")
        assert content.locator("a:not([href])").count() == 0
        assert content.get_by_role("link", name="a link").count() == 0
        assert "a link" in content.inner_text() and "another" in content.inner_text()
        shown = content.get_by_text("a link", exact=False).first
        assert shown.evaluate("(el) => getComputedStyle(el).textDecorationLine") == "none"


def test_code_is_highlighted_and_the_library_comes_only_with_code(browser: Any, site: Site) -> None:
    """highlight.js is fetched (by the worker that highlights off the main thread) only once a reply
    shows code, and once."""
    with site.page(browser) as chat:
        fetched: list[str] = []
        chat.page.context.on("request", lambda request: fetched.append(request.url))  # (the worker's too)
        reply_with(chat, "No code here", model="flaky:model")
        assert not any(url.endswith(HIGHLIGHT) for url in fetched)
        reply = reply_with(chat, "A plan, please", model="markdown:model")
        python = reply.locator(".code-block").first
        python.locator("code.hljs").wait_for()
        assert python.locator(".hljs-keyword", has_text="def").count() == 1
        assert python.locator(".hljs-string").count() >= 1
        assert reply.locator(".code-block").nth(1).locator(".hljs-keyword", has_text="const").count() == 1
        assert sum(url.endswith(HIGHLIGHT) for url in fetched) == 1
        assert "def rollback(release: str) -> None:" in python.locator("pre").inner_text()  # same text
        no_serious_violations(chat, "highlighted code")


def test_a_reply_with_no_text_offers_no_copy(browser: Any, site: Site) -> None:
    with site.page(browser) as chat:
        chat.page.evaluate("navigator.clipboard.writeText('kept')")
        reply = chat.send("Fail at once", model="broken:model")
        assert chat.wait_settled(reply) == "error"
        assert reply.locator(".content").inner_text() == ""
        said = reply.get_by_role("alert").locator("p").inner_text()
        assert said == "The model provider rejected the request."
        assert not reply.get_by_role("button", name="Copy reply").is_visible()
        assert not reply.get_by_role("button", name="Continue the reply").is_visible()
        assert reply.get_by_role("button", name="Retry").is_visible()
        chat.reload()
        assert not chat.replies.last.get_by_role("button", name="Copy reply").is_visible()
        assert chat.page.evaluate("navigator.clipboard.readText()") == "kept"
