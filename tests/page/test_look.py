"""How the page looks and reads, at 1280x800 and 390x844, light and dark: axe-core finds nothing serious
or critical in its main states, the focus ring and status labels meet WCAG AA, the theme can be chosen
and is remembered, numbers are written as the admin writes them, and the screenshots of docs/chat-page.md."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from streaming.templatetags.streaming_costs import usd
from tests.axe import CONTRAST
from tests.browser_support import DESKTOP, PHONE, ChatPage, shot
from tests.page_support import GRACE, PHONE_CONTEXT, Site, no_serious_violations, reply_with

pytestmark = [pytest.mark.browser, pytest.mark.servers]

LOOKS = {
    "desktop-light": {"viewport": DESKTOP, "color_scheme": "light"},
    "desktop-dark": {"viewport": DESKTOP, "color_scheme": "dark"},
    "phone-light": {**PHONE_CONTEXT, "color_scheme": "light"},
    "phone-dark": {**PHONE_CONTEXT, "color_scheme": "dark"},
}


@pytest.mark.parametrize("look", list(LOOKS))
def test_the_main_states_have_no_serious_accessibility_findings(browser: Any, site: Site, look: str) -> None:
    with site.page(browser, **LOOKS[look]) as chat:
        no_serious_violations(chat, f"{look}: a new chat")
        reply = reply_with(chat, "A plan, please", model="markdown:model")
        reply.locator("code.hljs").first.wait_for()
        no_serious_violations(chat, f"{look}: a reply with a task list, a table and code")
        assert chat.wait_settled(chat.send("Fail", model="broken:model")) == "error"
        no_serious_violations(chat, f"{look}: a failed reply")
        user = chat.page.locator("article.message.user").last
        user.get_by_role("button", name="Edit message").click()
        no_serious_violations(chat, f"{look}: editing a message")
        user.get_by_role("button", name="Cancel").click()
        chat.prompt.fill("x" * 32_001)
        chat.send_button().click()
        chat.page.locator(".composer-error").wait_for()
        no_serious_violations(chat, f"{look}: a refused message")
        if look.startswith("phone"):
            chat.page.get_by_role("button", name="Conversations").click()
        chat.page.get_by_role("searchbox", name="Search conversations").fill("plan")
        chat.page.locator("#conversation-status", has_text="found").wait_for()
        no_serious_violations(chat, f"{look}: search results")


def contrast(chat: ChatPage, selector: str) -> float:
    return float(chat.page.locator(selector).first.evaluate(CONTRAST))


def luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"[0-9.]+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def ratio(first: str, second: str) -> float:
    lighter, darker = sorted([luminance(first), luminance(second)], reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_focus_ring_and_status_labels_meet_wcag_aa(browser: Any, site: Site, scheme: str) -> None:
    with site.page(browser, color_scheme=scheme) as chat:
        reply_with(chat, "Contrast, please")
        assert contrast(chat, "article.message.assistant .status") >= 4.5  # "Complete"
        assert contrast(chat, ".meta-tokens") >= 4.5
        chat.prompt.focus()
        ring = chat.page.locator("#composer").evaluate(
            """(el) => { const style = getComputedStyle(el);
                return { border: style.borderTopColor, width: style.borderTopWidth, shadow: style.boxShadow,
                         page: getComputedStyle(document.body).backgroundColor }; }"""
        )
        # The box's border and a 1 px ring outside it, both in the focus colour: 2 px, at 3:1 or more.
        assert ring["width"] == "1px" and ring["shadow"].startswith(f"{ring['border']} 0px 0px 0px 1px"), ring
        assert ratio(ring["border"], ring["page"]) >= 3, ring


def test_the_theme_is_chosen_remembered_and_by_default_the_systems(browser: Any, site: Site) -> None:
    with site.page(browser, color_scheme="light") as chat:
        page = chat.page
        background = "getComputedStyle(document.body).backgroundColor"
        theme = page.get_by_role("combobox", name="Theme")
        assert theme.input_value() == "system"
        assert page.evaluate(background) == "rgb(255, 255, 255)"
        page.emulate_media(color_scheme="dark")
        assert page.evaluate(background) == "rgb(22, 24, 29)"  # the system's choice, followed
        theme.select_option("light")
        assert page.evaluate(background) == "rgb(255, 255, 255)"
        theme.select_option("dark")
        page.emulate_media(color_scheme="light")
        chat.reload()
        assert page.evaluate(background) == "rgb(22, 24, 29)"  # remembered, whatever the system says
        assert page.get_by_role("combobox", name="Theme").input_value() == "dark"
        page.get_by_role("combobox", name="Theme").select_option("system")
        assert page.evaluate(background) == "rgb(255, 255, 255)"


AMOUNTS = [
    "0", "0E-10", "0.0000000000", "0.0000000001", "0.00000000004", "0.0018610000", "0.0185610000", "0.4",
    "0.400", "0.485", "0.9999", "0.99951", "1", "1.005", "12.5", "1234.567", "1234567.891", "-0.0019",
    "0.1", "0.01", "0.001", "0.0015", "0.00149", "99.995",
]  # fmt: skip


def test_numbers_are_written_as_the_admin_writes_them(browser: Any, site: Site) -> None:
    """The page's one number format (format.js) is the admin's (``usd``), for the same amounts."""
    with site.page(browser) as chat:
        written = chat.page.evaluate(
            """async ([url, amounts]) => {
                const { usd, tokens } = await import(url);
                return { money: amounts.map((amount) => usd(amount)), tokens: tokens(1234567) };
            }""",
            [site.server.url + "/static/streaming/format.js", AMOUNTS],
        )
    assert written["money"] == [usd(Decimal(amount)) for amount in AMOUNTS]
    assert written["tokens"] == "1,234,567"


SHOWCASE = """
import re
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from streaming.models import Conversation, Usage, UserBudget
user = get_user_model().objects.get(username=username)
UserBudget.objects.update_or_create(user=user, defaults={"monthly_usd": Decimal("5.00")})
if not Conversation.objects.filter(owner=user).exists():
    for n, (title, cost) in enumerate(titles):
        conversation = Conversation.objects.create(owner=user, model="demo:echo", title=title,
            updated_at=timezone.now() - timezone.timedelta(days=n))
        Usage.objects.create(user=user, conversation=conversation, provider="demo", model="echo",
            total_cost=Decimal(cost))
"""
SHOWCASE_TITLES = [
    ["Merge two sorted lists in Python", "0.0021"],
    ["SQLite WAL or rollback journal?", "0.0187"],
    ["Plan a weekend in Lisbon", "0.31"],
    ["Explain Server-Sent Events", "0.0009"],
]


def test_screenshots(browser: Any, site: Site) -> None:
    """Every state of the page, light and dark, desktop and phone, as docs/chat-page.md shows them."""
    site.django(SHOWCASE, username=GRACE.username, titles=SHOWCASE_TITLES)
    with site.page(browser, GRACE, viewport=DESKTOP) as chat:
        shot(chat, "chat-empty")
        reply = reply_with(chat, "A rollback plan for the API deploy, please", model="markdown:model")
        reply.locator("code.hljs").first.wait_for()
        chat.page.locator("#transcript").evaluate("(el) => el.scrollTop = 0")
        shot(chat, "chat-light")
        chat.page.emulate_media(color_scheme="dark")
        shot(chat, "chat-dark")
        chat.page.emulate_media(color_scheme="light")
        user = chat.page.locator("article.message.user").first
        user.get_by_role("button", name="Edit message").click()
        user.get_by_role("textbox").fill("A rollback plan for the web deploy, please")
        shot(chat, "chat-edit")
        user.get_by_role("button", name="Send", exact=True).click()
        chat.wait_settled(chat.replies.last)
        chat.wait_idle()
        chat.page.locator("#transcript").evaluate("(el) => el.scrollTop = 0")
        shot(chat, "chat-versions")
        assert chat.wait_settled(chat.send("And if that fails?", model="broken:model")) == "error"
        chat.prompt.fill("Here is the whole log of the failed deploy, to read through. " * 560)
        chat.send_button().click()
        chat.page.locator(".composer-error").wait_for()
        shot(chat, "chat-errors")
        chat.prompt.fill("")
        chat.page.get_by_role("searchbox", name="Search conversations").fill("rollback")
        chat.page.locator("#conversation-status", has_text="found").wait_for()
        shot(chat, "chat-search")
    with site.page(browser, GRACE, **PHONE_CONTEXT) as chat:
        chat.page.locator("#conversation-list li").first.wait_for(state="attached")
        chat.open(chat.page.locator("#conversation-list li").first.get_attribute("data-id"))
        shot(chat, "chat-phone")
        chat.page.emulate_media(color_scheme="dark")
        shot(chat, "chat-phone-dark")
        chat.page.get_by_role("button", name="Conversations").click()
        shot(chat, "chat-phone-drawer")
    assert PHONE["width"] == 390
