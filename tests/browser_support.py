"""Driving the chat page in Debian's Chromium with Playwright, against a server from ``tests.servers``.

Playwright's own browser download does not work everywhere this suite runs, so the browser is the
system's ``/usr/bin/chromium`` (``apt-get install chromium``), started through ``executable_path``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import require
from tests.servers import LiveServer, User

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("STREAMING_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Where the tests save screenshots; ``STREAMING_SCREENSHOTS=docs/screenshots`` refreshes the README's.
SCREENSHOTS = Path(os.environ.get("STREAMING_SCREENSHOTS", ROOT / "tests" / "artifacts" / "screenshots"))
#: The prefix ``tests.urls_browser`` mounts the app under: the page must not assume the site root.
CHAT_PATH = "/chat/"

DESKTOP = {"width": 1280, "height": 800}
PHONE: Any = {"width": 390, "height": 844}

#: Installed before the page's scripts: records long tasks (over 50 ms on the main thread), how long
#: each key press waited for the main thread, the (status, text length) of the last reply each time it
#: changes, and how long after the last Enter in the message box the reply's first character showed.
RECORDERS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push([entry.startTime, entry.duration]);
}).observe({ type: "longtask", buffered: true });
window.__inputDelays = [];
addEventListener("keydown", (event) => {
  window.__inputDelays.push(performance.now() - event.timeStamp);
  if (event.key === "Enter" && !event.shiftKey && event.target.id === "prompt") {
    window.__enterAt = event.timeStamp;
    window.__firstCharMs = null;
  }
}, true);
window.__replyStates = [];
new MutationObserver(() => {
  const replies = document.querySelectorAll("article.message.assistant");
  const reply = replies[replies.length - 1];
  if (!reply) return;
  const state = [reply.dataset.status, reply.querySelector(".content").textContent.length];
  const last = window.__replyStates[window.__replyStates.length - 1];
  if (!last || last[0] !== state[0] || last[1] !== state[1]) window.__replyStates.push(state);
  if (window.__enterAt != null && window.__firstCharMs == null && state[1] > 0)
    window.__firstCharMs = performance.now() - window.__enterAt;
}).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
"""


def chromium_available() -> tuple[bool, str]:
    if importlib.util.find_spec("playwright") is None:
        return False, "the playwright package is not installed (requirements-dev.txt)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return False, f"no Chromium at {CHROMIUM}: apt-get install chromium"
    return True, ""


def launch(playwright: Any) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextmanager
def running_chromium() -> Iterator[Browser]:
    """Chromium for a module's tests: skipped without it on a developer's machine, failed under CI."""
    ok, reason = chromium_available()
    require(ok, reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def session_cookies(server: LiveServer, user: User | None = None) -> list[dict[str, Any]]:
    """Log in over HTTP once; each browser context gets the session and CSRF cookies."""
    with server.client(user) as client:
        return [{"name": name, "value": value, "url": server.url} for name, value in client.cookies.items()]


@dataclass
class LongTasks:
    """Main-thread tasks over 50 ms, as a PerformanceObserver of type ``longtask`` saw them."""

    durations: list[float]

    @property
    def count(self) -> int:
        return len(self.durations)

    @property
    def longest(self) -> float:
        return max(self.durations, default=0.0)

    @property
    def total(self) -> float:
        return sum(self.durations)

    def __str__(self) -> str:
        return f"{self.count} long tasks, longest {self.longest:.0f} ms, total {self.total:.0f} ms"


class ChatPage:
    """The chat page of one browser tab, in the words of the person using it."""

    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self._cdp: Any = None
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    @property
    def url(self) -> str:
        return self.server.url + CHAT_PATH

    def open(self, conversation_id: str | None = None) -> None:
        self.page.goto(self.url + (f"?c={conversation_id}" if conversation_id else ""))
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.locator("#chat-app[data-ready=true]").wait_for()

    def reload(self) -> None:
        self.page.reload()
        self.wait_ready()

    # -- the composer -----------------------------------------------------------------------------
    @property
    def prompt(self) -> Locator:
        return self.page.get_by_role("textbox", name="Message")

    def choose_model(self, model_id: str) -> None:
        self.page.get_by_role("combobox", name="Model").select_option(model_id)

    def set_reasoning(self, on: bool) -> None:
        self.page.get_by_role("checkbox", name="Reasoning").set_checked(on)

    def send(self, text: str, model: str | None = None) -> Locator:
        """Type ``text`` and press Enter (tap Send on a touch screen, where Enter is a new line); returns
        the reply that it starts."""
        if model:
            self.choose_model(model)
        before = self.replies.count()
        self.prompt.fill(text)
        if self.page.evaluate("matchMedia('(pointer: coarse)').matches"):
            self.send_button().tap()
        else:
            self.prompt.press("Enter")
        reply = self.replies.nth(before)
        reply.wait_for()
        return reply

    def stop_button(self) -> Locator:
        return self.page.get_by_role("button", name="Stop", exact=True)

    def send_button(self) -> Locator:
        return self.page.get_by_role("button", name="Send", exact=True)

    def wait_idle(self) -> None:
        """Wait until the composer offers Send again (no reply streaming in this conversation)."""
        self.send_button().wait_for()
        assert not self.stop_button().is_visible()

    # -- the transcript ---------------------------------------------------------------------------
    @property
    def replies(self) -> Locator:
        return self.page.locator("article.message.assistant")

    @property
    def user_messages(self) -> Locator:
        return self.page.locator("article.message.user .bubble")

    def wait_settled(self, reply: Locator, timeout: float = 30_000) -> str:
        """Wait until ``reply`` has ended and is fully rendered; returns its status."""
        reply.and_(self.page.locator("[aria-busy=false]")).wait_for(timeout=timeout)
        status = reply.get_attribute("data-status")
        assert status in ("complete", "cancelled", "error", "interrupted"), status
        return status

    def wait_for_text(self, reply: Locator, length: int, timeout: float = 15_000) -> None:
        """Wait until ``reply`` shows at least ``length`` characters."""
        self.page.wait_for_function(
            "([el, n]) => el.querySelector('.content').textContent.length >= n",
            arg=[reply.element_handle(), length],
            timeout=timeout,
        )

    def conversation_id(self) -> str:
        return parse_qs(urlsplit(self.page.url).query)["c"][0]

    def sidebar_item(self, title: str) -> Locator:
        return self.page.locator("#conversation-list li", has=self.page.get_by_role("link", name=title))

    # -- measurements -----------------------------------------------------------------------------
    def long_tasks(self) -> LongTasks:
        return LongTasks([duration for _start, duration in self.page.evaluate("window.__longTasks")])

    def reset_long_tasks(self) -> None:
        self.page.evaluate("window.__longTasks = []; window.__replyStates = []; window.__inputDelays = []")

    def input_delays(self) -> list[float]:
        """Milliseconds between each key press and the start of its handler."""
        return list(self.page.evaluate("window.__inputDelays"))

    def main_thread_seconds(self) -> float:
        """CPU time the page's main thread has used so far (Chromium's ``ThreadTime`` metric).

        Unlike wall-clock task lengths, it does not grow when other processes take the CPU.
        """
        if self._cdp is None:
            self._cdp = self.page.context.new_cdp_session(self.page)
            self._cdp.send("Performance.enable")
        metrics = self._cdp.send("Performance.getMetrics")["metrics"]
        return float(next(m["value"] for m in metrics if m["name"] == "ThreadTime"))

    def first_character_ms(self) -> float | None:
        """Milliseconds from the last Enter in the message box to the first character of its reply."""
        value = self.page.evaluate("window.__firstCharMs")
        return None if value is None else float(value)

    def reply_states(self) -> list[tuple[str, int]]:
        return [tuple(state) for state in self.page.evaluate("window.__replyStates")]

    def screenshot(self, name: str) -> Path:
        """A PNG under SCREENSHOTS, kept small: the README shows these."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=path, animations="disabled", caret="hide")
        return path


def shot(chat: ChatPage, name: str) -> None:
    """A JPEG of the page as it is, for docs/chat-page.md and docs/tools.md
    (``STREAMING_SCREENSHOTS=docs/screenshots`` writes them there)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.jpg"
    chat.page.mouse.move(0, 0)
    chat.page.screenshot(path=path, type="jpeg", quality=75, animations="disabled", caret="hide")
    assert path.stat().st_size < 150_000, path


@contextmanager
def chat_page(
    browser: Browser, server: LiveServer, cookies: list[dict[str, Any]], **context_options: Any
) -> Iterator[ChatPage]:
    """A logged-in tab in a fresh browser context (its own storage), opened on the chat page."""
    options = {"viewport": DESKTOP, "color_scheme": "light", "reduced_motion": "reduce", **context_options}
    context: BrowserContext = browser.new_context(**options)
    try:
        context.add_cookies(cookies)  # type: ignore[arg-type]  # (plain dicts of the cookie fields)
        context.add_init_script(RECORDERS)
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        chat = ChatPage(context.new_page(), server)
        chat.open()
        yield chat
        assert chat.errors == [], chat.errors
    finally:
        context.close()


def words(text: str) -> str:
    """Whitespace-normalized text, for comparing what the page shows with what the server stored."""
    return re.sub(r"\s+", " ", text).strip()
