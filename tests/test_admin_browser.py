"""The admin's cost review in Chromium, as staff see it: the cost report and a user's drill-down, the usage
and message lists, a conversation and the detail pages, at 1280x800 and 390x844, light and dark.

Each page is checked for what a person notices: nothing wider than the screen, costs written one way,
the cost column in view, chart labels inside the chart, colours that meet WCAG AA, and axe-core finding
nothing serious or critical. The data is a month of made-up usage (``tests.admin_showcase``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from streaming.templatetags.streaming_costs import usd
from tests.axe import CONTRAST, require_axe, serious_violations
from tests.browser_support import (
    DESKTOP,
    PHONE,
    ROOT,
    SCREENSHOTS,
    running_chromium,
    session_cookies,
)
from tests.conftest import require
from tests.servers import NEEDS, LiveServer, User, available, running_server, server_env

pytestmark = [pytest.mark.browser, pytest.mark.servers]

STAFF = User(username="ada", password="ada-admin-pw-1815", staff=True)
SERVER_ENV = {"DJANGO_SETTINGS_MODULE": "tests.settings_browser"}
REPORT = "/admin/streaming/usage/report/"
VIEWS = {
    "desktop-light": {"viewport": DESKTOP, "color_scheme": "light"},
    "desktop-dark": {"viewport": DESKTOP, "color_scheme": "dark"},
    "phone-light": {"viewport": PHONE, "color_scheme": "light"},
    "phone-dark": {"viewport": PHONE, "color_scheme": "dark"},
}
MONEY = re.compile(r"-?<?\$[0-9][0-9,]*(?:\.[0-9]+)?")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_axe()
    with running_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require(available("runserver"), f"{NEEDS['runserver']} is not installed")
    workdir = tmp_path_factory.mktemp("admin-browser")
    with running_server("runserver", workdir, SERVER_ENV, users=(STAFF,)) as live:
        env = server_env(workdir, SERVER_ENV)
        subprocess.run(
            [sys.executable, "-m", "tests.admin_showcase"], cwd=ROOT, env=env, check=True, timeout=120
        )
        yield live


@pytest.fixture(scope="module")
def cookies(server: LiveServer) -> list[dict[str, Any]]:
    return session_cookies(server, STAFF)


class AdminTab:
    """One admin tab in its own browser context."""

    def __init__(self, page: Any, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, path: str) -> Any:
        response = self.page.goto(self.server.url + path)
        assert response.status == 200, (path, response.status)
        return response

    def width(self) -> int:
        return int(self.page.viewport_size["width"])

    def assert_fits(self) -> None:
        """Nothing makes the page scroll sideways: wide content scrolls inside its own box."""
        scroll = self.page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= self.width(), f"{self.page.url} is {scroll} px wide at {self.width()} px"

    def assert_accessible(self) -> None:
        found = serious_violations(self.page)
        assert found == [], f"{self.page.url}:\n" + "\n".join(found)

    def money(self) -> list[str]:
        return MONEY.findall(self.page.locator("#content").inner_text())

    def first_link(self, selector: str) -> str:
        return str(self.page.locator(selector).first.get_attribute("href"))

    def screenshot(self, name: str, height: int | None = None, top: str | None = None) -> None:
        """A PNG of ``height`` px of the page (from the element ``top`` when given), kept small: docs/costs.md
        shows these."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if top:
            self.page.locator(top).first.evaluate("(el) => el.scrollIntoView()")
        self.page.mouse.move(0, 0)
        clip = {"x": 0, "y": 0, "width": self.width(), "height": height} if height else None
        self.page.screenshot(path=path, animations="disabled", caret="hide", clip=clip)
        assert path.stat().st_size < 150_000, path


def new_tab(browser: Any, server: LiveServer, cookies: list[dict[str, Any]], view: str) -> Any:
    context = browser.new_context(**VIEWS[view], reduced_motion="reduce")
    context.add_cookies(cookies)
    return context, AdminTab(context.new_page(), server)


@pytest.fixture(params=list(VIEWS))
def tab(request: pytest.FixtureRequest, browser: Any, server: LiveServer, cookies: Any) -> Iterator[AdminTab]:
    context, admin_tab = new_tab(browser, server, cookies, request.param)
    try:
        yield admin_tab
        assert admin_tab.errors == [], admin_tab.errors
    finally:
        context.close()


@pytest.fixture
def desktop(browser: Any, server: LiveServer, cookies: Any) -> Iterator[AdminTab]:
    context, admin_tab = new_tab(browser, server, cookies, "desktop-light")
    try:
        yield admin_tab
    finally:
        context.close()


def pages(tab: AdminTab) -> list[str]:
    """Every admin page of the cost review, found by following links as staff would."""
    tab.open(REPORT)
    user_page = tab.first_link(".cost-report td.name a[href*='/report/user/']")
    conversation = tab.open(user_page) and tab.first_link("td.name a[href*='/conversation/']")
    tab.open("/admin/streaming/usage/")
    usage_detail = tab.first_link("#result_list th.field-when a")
    tab.open("/admin/streaming/message/?status__exact=error")
    message_detail = tab.first_link("#result_list th.field-when a")
    return [
        REPORT,
        REPORT + "?days=90",
        user_page,
        "/admin/streaming/usage/",
        usage_detail,
        "/admin/streaming/message/",
        message_detail,
        conversation,
        "/admin/streaming/conversation/",
        "/admin/streaming/priceoverride/",
        "/admin/streaming/userbudget/",
    ]


def test_every_page_fits_the_screen_and_axe_finds_nothing_serious(tab: AdminTab) -> None:
    for path in pages(tab):
        tab.open(path)
        tab.assert_fits()
        tab.assert_accessible()
        for amount in tab.money():  # one format: what the page shows is what usd() writes
            assert amount == usd(Decimal(amount.replace("$", "").replace(",", ""))), (path, amount)


def test_the_cost_column_is_in_view_on_a_desktop_and_a_phone(tab: AdminTab) -> None:
    """Beside the admin's sidebar and the filters at 1280 px, and before any sideways scroll at 390 px."""
    for path in ("/admin/streaming/usage/", "/admin/streaming/message/"):
        tab.open(path)
        header = tab.page.locator("#result_list th.column-cost").bounding_box()
        first = tab.page.locator("#result_list td.field-cost").first.bounding_box()
        assert header["x"] + header["width"] <= tab.width(), (path, header)
        assert first["x"] + first["width"] <= tab.width(), (path, first)
        if tab.width() >= 1280:  # every column, not only the cost
            table = tab.page.locator("#result_list").bounding_box()
            assert table["x"] + table["width"] <= tab.width(), (path, table)


def test_a_long_line_of_code_wraps_inside_its_message(tab: AdminTab) -> None:
    tab.open("/admin/streaming/message/?q=argument_219")
    message = tab.first_link("#result_list th.field-when a")
    conversation = tab.first_link("#result_list td.field-conversation_link a")
    for path in (conversation, message):
        tab.open(path)
        text = tab.page.locator(".streaming-text", has_text="argument_219").first
        box = text.bounding_box()
        assert box["x"] + box["width"] <= tab.width(), (path, box)
        assert "argument_219" in text.inner_text()  # all of it, wrapped
        tab.assert_fits()
        tab.assert_accessible()


def test_the_chart_reads_clearly(tab: AdminTab) -> None:
    """Bars 3:1 against the page, the current period 4.5:1, every label inside the chart, and a table of
    the numbers behind it."""
    page = tab.page
    tab.open(REPORT)
    bars = page.locator(".day-chart .plot rect.bar")
    assert bars.count() > 20
    assert bars.first.evaluate(CONTRAST) >= 3
    assert page.locator(".cost-report svg.meter rect").first.evaluate(CONTRAST) >= 3
    assert page.locator(".cost-report svg.meter.other rect").first.evaluate(CONTRAST) >= 3
    current = page.get_by_role("link", name="Last 30 days")
    assert current.get_attribute("aria-current") == "page"
    assert current.evaluate(CONTRAST) >= 4.5
    plot = page.locator(".day-chart .x-axis").bounding_box()
    labels = page.locator(".day-chart .x-axis text:visible")
    assert 2 <= labels.count() <= (8 if tab.width() >= 1280 else 4)
    for index in range(labels.count()):
        box = labels.nth(index).bounding_box()
        assert plot["x"] <= box["x"] and box["x"] + box["width"] <= plot["x"] + plot["width"] + 0.5, box
    ticks = page.locator(".day-chart .y-axis span")
    assert ticks.count() == 5 and ticks.last.inner_text() == "$0.00"
    assert all(ticks.nth(i).bounding_box()["x"] >= 0 for i in range(5))
    page.get_by_text("Spend per day as a table").click()
    rows = page.locator(".day-table tbody tr")
    assert rows.count() == 30
    assert rows.last.locator("td").last.inner_text().startswith("$")
    tab.assert_fits()
    tab.assert_accessible()


def test_the_admins_theme_switch_is_followed(desktop: AdminTab) -> None:
    """The admin's own theme button (``data-theme`` on the page) recolours the report as the system's
    preference does, and the colours still meet AA."""
    page = desktop.page
    desktop.open(REPORT)
    light = page.locator(".day-chart rect.bar").first.evaluate("(el) => getComputedStyle(el).fill")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    page.wait_for_timeout(500)  # the admin's links fade to their new colours in 0.15 s
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(18, 18, 18)"
    bar = page.locator(".day-chart rect.bar").first
    assert bar.evaluate("(el) => getComputedStyle(el).fill") != light
    assert bar.evaluate(CONTRAST) >= 3
    assert page.get_by_role("link", name="Last 30 days").evaluate(CONTRAST) >= 4.5
    desktop.assert_accessible()


def test_any_dates_from_the_form(desktop: AdminTab) -> None:
    page = desktop.page
    desktop.open(REPORT)
    page.get_by_label("From", exact=True).fill("2026-01-10")
    page.get_by_label("To", exact=True).fill("2026-01-05")
    page.get_by_role("button", name="Show").click()
    assert page.get_by_role("alert").inner_text().startswith("The start date is after the end date.")
    assert page.get_by_role("link", name="Last 30 days").get_attribute("aria-current") is None
    desktop.assert_accessible()
    first = page.locator(".day-table tbody tr").first.locator("td").first.text_content() or ""
    page.get_by_label("From", exact=True).fill(first_day := _iso(first))
    page.get_by_label("To", exact=True).fill(first_day)
    page.get_by_role("button", name="Show").click()
    assert f"start={first_day}" in page.url
    assert page.get_by_role("alert").count() == 0
    assert page.locator(".day-table tbody tr").count() == 1
    assert (
        page.locator(".summary strong").first.inner_text()
        == page.locator(".day-table td.num").last.text_content()
    )


def _iso(shown: str) -> str:
    """``Sun Nov 8, 2026`` as ``2026-11-08``."""
    return datetime.strptime(shown, "%a %b %d, %Y").strftime("%Y-%m-%d")


def test_screenshots(browser: Any, server: LiveServer, cookies: Any) -> None:
    """The pictures of docs/costs.md, saved under tests/artifacts/screenshots, or where STREAMING_SCREENSHOTS
    says (docs/screenshots)."""
    for view in VIEWS:
        context, tab = new_tab(browser, server, cookies, view)
        with context:
            tab.open(REPORT)
            tab.screenshot(f"admin-report-{view}")
            if view == "phone-light":
                tab.open("/admin/streaming/usage/")
                tab.screenshot("admin-usage-list-phone")
            if view == "desktop-light":
                tab.open(tab.first_link(".cost-report td.name a[href*='/report/user/']"))
                tab.screenshot("admin-user-report", height=600)
                tab.open("/admin/streaming/usage/")
                tab.screenshot("admin-usage-list", height=600)
                tab.open("/admin/streaming/message/")
                tab.screenshot("admin-message-list", height=600)
                tab.open("/admin/streaming/message/?q=argument_219")
                tab.open(tab.first_link("#result_list td.field-conversation_link a"))
                tab.screenshot("admin-conversation", height=600, top=".inline-group")
