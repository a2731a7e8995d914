"""The chat page in a real browser (Debian's Chromium, driven by Playwright) against real servers: daphne
through ``runserver`` (ASGI) and gunicorn (WSGI), with the app mounted under ``/chat/``.

Test models (``tests.settings_browser``): ``paced:echo`` streams the demo reply at 40 tokens a second,
``long:echo`` streams 5,000 tokens, ``flaky:model`` fails after a few words, ``hostile:model`` answers
with HTML and links that would run script if the page rendered them unsanitized.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from streaming.providers.base import ChatMessage, ChatRequest
from streaming.providers.demo import REPLY, DemoProvider
from tests.browser_support import (
    ChatPage,
    chat_page,
    running_chromium,
    session_cookies,
    words,
)
from tests.conftest import require
from tests.dropping_proxy import dropping_proxy
from tests.servers import NEEDS, LiveServer, available, running_server

pytestmark = [pytest.mark.browser, pytest.mark.servers]

SERVERS = {"asgi": "runserver", "wsgi": "gunicorn"}
SERVER_ENV = {
    "DJANGO_SETTINGS_MODULE": "tests.settings_browser",
    "STREAMING_DEMO_TOKENS_PER_SECOND": "400",  # demo:echo: a quick reply where pace does not matter
    "STREAMING_BROWSER_PACED_TPS": "40",
    "STREAMING_BROWSER_LONG_TPS": "1500",
    "STREAMING_BROWSER_LONG_TOKENS": "5000",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with running_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    kind = SERVERS[request.param]
    require(available(kind), f"{NEEDS[kind]} is not installed: cannot test the page under {kind}")
    workdir = tmp_path_factory.mktemp(f"browser-{kind}")
    with running_server(kind, workdir, SERVER_ENV) as live:
        yield live


#: For what does not depend on the server: run under ASGI only.
ONCE = pytest.mark.parametrize("server", ["asgi"], indirect=True)


@pytest.fixture(scope="module")
def cookies(server: LiveServer) -> list[dict[str, Any]]:
    return session_cookies(server)


@pytest.fixture
def chat_options() -> dict[str, Any]:
    """Browser context options of the ``chat`` fixture; a test parametrizes it for another viewport."""
    return {}


@pytest.fixture
def chat(
    browser: Any, server: LiveServer, cookies: list[dict[str, Any]], chat_options: dict[str, Any]
) -> Iterator[ChatPage]:
    with chat_page(browser, server, cookies, **chat_options) as page:
        yield page
    print(f"--- the {server.kind} server's output ---\n{server.log()[-4000:]}")  # shown on failure


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def stored_reply(server: LiveServer, conversation_id: str) -> dict[str, Any]:
    with server.client() as client:
        data = client.get(f"/chat/api/conversations/{conversation_id}").json()
    return [m for m in data["messages"] if m["role"] == "assistant"][-1]


# -- streaming --------------------------------------------------------------------------------------


def test_reply_streams_in_and_renders_markdown(chat: ChatPage) -> None:
    """Partial text shows while the reply streams; the finished reply is formatted markdown with its
    reasoning, status, tokens, cost and time to first token."""
    reasoning_switch = chat.page.get_by_role("checkbox", name="Reasoning")
    chat.choose_model("long:echo")  # a model without reasoning: no switch
    assert not reasoning_switch.is_visible()
    chat.choose_model("paced:echo")
    chat.set_reasoning(True)
    chat.reset_long_tasks()
    message = unique("Show me markdown")
    reply = chat.send(message)

    assert chat.stop_button().is_visible()
    chat.wait_for_text(reply, 60)
    assert reply.get_attribute("data-status") == "streaming"
    partial = reply.locator(".content").inner_text()
    assert chat.wait_settled(reply) == "complete"
    assert 0 < len(partial) < len(reply.locator(".content").inner_text())

    states = chat.reply_states()
    shown = [length for status, length in states if status == "streaming" and length]
    assert len(set(shown)) >= 10, states  # it grew in many steps, not all at once
    # Never a flicker: what is shown only shrinks by a few markdown markers ("**" closing, a fence).
    assert all(later >= earlier - 12 for earlier, later in pairwise(shown)), states
    content = reply.locator(".content")
    assert content.locator("p").first.inner_text() == "Here is a streamed reply from the demo model."
    assert content.locator("p").nth(1).inner_text() == f'You said: "{message}"'
    assert content.locator("strong").inner_text() == "demo"
    assert content.locator("ul > li").count() == 3
    code = content.locator(".code-block")
    assert code.locator(".code-language").inner_text() == "python"
    assert "def greet(name):" in code.locator("pre").inner_text()
    code.get_by_role("button", name="Copy python code").click()
    assert "def greet(name):" in chat.page.evaluate("navigator.clipboard.readText()")

    reasoning = reply.locator("details.reasoning")
    assert reasoning.get_attribute("open") is None  # collapsed
    assert reasoning.locator("summary").inner_text().startswith("Reasoned for")
    reasoning.locator("summary").click()
    assert "The user wrote" in reasoning.locator(".reasoning-body").inner_text()

    assert reply.locator(".status").inner_text() == "Complete"
    assert "in · " in reply.locator(".meta-tokens").inner_text()
    assert "reasoning" in reply.locator(".meta-tokens").inner_text()
    assert reply.locator(".meta-cost").inner_text().startswith("$")
    assert reply.locator(".meta-ttft").inner_text().startswith("first token ")
    chat.wait_idle()
    chat.sidebar_item(message).locator("[aria-current=page]").wait_for()
    assert chat.page.locator("#conversation-title").inner_text() == message


def test_stop_keeps_the_partial_reply_as_cancelled(chat: ChatPage) -> None:
    """Stop halts the reply at once; it shows as stopped, and a reload shows the same text, cancelled."""
    reply = chat.send(unique("Stop me"), model="paced:echo")
    chat.wait_for_text(reply, 30)
    chat.stop_button().click()
    assert chat.wait_settled(reply, timeout=5_000) == "cancelled"
    assert reply.locator(".status").inner_text() == "Stopped"
    shown = reply.locator(".content").inner_text()
    time.sleep(0.5)  # at 40 tokens a second, a reply still streaming would have grown by now
    assert reply.locator(".content").inner_text() == shown
    assert "That is all for now." not in shown
    chat.wait_idle()

    stored = stored_reply(chat.server, chat.conversation_id())
    assert stored["status"] == "cancelled"
    assert stored["usage"]["estimated"] is True
    chat.reload()
    reply = chat.replies.last
    assert reply.get_attribute("data-status") == "cancelled"
    assert reply.locator(".status").inner_text() == "Stopped"
    assert reply.locator(".content").inner_text() == shown


def test_switching_conversations(chat: ChatPage) -> None:
    """Each conversation shows its own messages; a reply keeps streaming while another one is open."""
    # The demo reply quotes the message: a longer one keeps the second reply streaming for a while (its
    # title is the message as long as that is under 80 characters).
    first, second = unique("First topic"), unique("Second topic" + " with more words" * 3)
    assert chat.wait_settled(chat.send(first, model="demo:echo")) == "complete"
    first_id = chat.conversation_id()
    chat.page.get_by_role("button", name="New chat").click()
    assert chat.replies.count() == 0
    assert chat.page.locator("#empty-state").is_visible()
    reply = chat.send(second, model="paced:echo")
    chat.wait_for_text(reply, 10)
    second_id = chat.conversation_id()
    assert second_id != first_id

    chat.page.get_by_role("link", name=first).click()
    chat.page.locator("#conversation-title", has_text=first).wait_for()
    assert chat.user_messages.all_inner_texts() == [first]
    assert chat.conversation_id() == first_id
    assert "streaming" in (chat.sidebar_item(second).get_attribute("class") or "")
    assert chat.replies.last.get_attribute("data-status") == "complete"

    chat.page.get_by_role("link", name=second).click()
    chat.page.locator("#conversation-title", has_text=second).wait_for()
    assert chat.user_messages.all_inner_texts() == [second]
    assert chat.wait_settled(chat.replies.last) == "complete"
    assert words(chat.replies.last.locator(".content").inner_text()).startswith("Here is a streamed reply")

    chat.page.go_back()
    chat.page.locator("#conversation-title", has_text=first).wait_for()
    assert chat.user_messages.all_inner_texts() == [first]


def test_regenerate_shows_the_new_reply_and_keeps_the_old_one(chat: ChatPage) -> None:
    message = unique("Answer twice")
    assert chat.wait_settled(chat.send(message, model="demo:echo")) == "complete"
    first_id = chat.replies.last.get_attribute("data-message-id")
    chat.replies.last.get_by_role("button", name="Regenerate reply").click()
    assert chat.wait_settled(chat.replies.last) == "complete"
    assert chat.replies.count() == 1
    assert chat.replies.last.get_attribute("data-message-id") != first_id
    chat.reload()
    assert chat.replies.count() == 1
    assert chat.user_messages.all_inner_texts() == [message]
    assert chat.replies.last.locator(".version-number").inner_text() == "2 / 2"  # the old one, a click away


@ONCE
def test_stop_from_another_tab(chat: ChatPage) -> None:
    """A second tab shows the reply streaming in the first, can stop it, and then shows it stopped."""
    reply = chat.send(unique("Two tabs"), model="paced:echo")
    chat.wait_for_text(reply, 20)
    other = ChatPage(chat.page.context.new_page(), chat.server)
    other.open(chat.conversation_id())
    assert other.replies.last.get_attribute("data-status") == "streaming"
    other.stop_button().click()
    assert chat.wait_settled(reply, timeout=5_000) == "cancelled"
    other.page.locator("article.message.assistant[data-status=cancelled]").wait_for(timeout=5_000)
    assert other.replies.last.locator(".content").inner_text() == reply.locator(".content").inner_text()
    other.wait_idle()
    assert other.errors == []


# -- a reply outlives its connection --------------------------------------------------------------


def long_message(text: str) -> str:
    """A message the paced demo model quotes: about four seconds of reply."""
    return unique(text) + " " + " ".join(f"word{n}" for n in range(100))


def test_a_reload_mid_reply_shows_it_still_streaming(chat: ChatPage) -> None:
    """F5 one second into a long reply: the page comes back with the reply, which goes on live and ends
    complete with exactly the text the server stored (nothing lost or doubled)."""
    message = long_message("Reload me")
    reply = chat.send(message, model="paced:echo")
    chat.wait_for_text(reply, 40)
    chat.reload()
    reply = chat.replies.last
    assert reply.get_attribute("data-status") == "streaming"
    assert chat.stop_button().is_visible()
    shown = len(reply.locator(".content").inner_text())
    chat.wait_for_text(reply, shown + 40)  # it grows here, live
    assert chat.wait_settled(reply) == "complete"
    chat.wait_idle()
    assert_shown_as_stored(chat, reply, message)


@ONCE
def test_a_second_tab_shows_the_reply_live(chat: ChatPage) -> None:
    reply = chat.send(long_message("Two tabs live"), model="paced:echo")
    chat.wait_for_text(reply, 20)
    other = ChatPage(chat.page.context.new_page(), chat.server)
    other.open(chat.conversation_id())
    theirs = other.replies.last
    assert theirs.get_attribute("data-status") == "streaming"
    before = len(theirs.locator(".content").inner_text())
    other.wait_for_text(theirs, before + 40)  # live, not a copy of what was stored
    assert reply.get_attribute("data-status") == "streaming"
    assert chat.wait_settled(reply) == "complete"
    assert other.wait_settled(theirs) == "complete"
    assert theirs.locator(".content").inner_text() == reply.locator(".content").inner_text()
    assert other.errors == []


def test_a_dropped_network_reconnects_with_nothing_lost_or_doubled(chat: ChatPage) -> None:
    """The connection is cut mid-reply and the network stays away for a while: the page says it is
    reconnecting, follows the reply again from the last event it had, and ends with the whole reply."""
    with dropping_proxy(chat.server.port) as proxy:
        tab = ChatPage(chat.page.context.new_page(), dataclasses.replace(chat.server, port=proxy.port))
        tab.open()
        followed: list[str | None] = []

        def note(request: Any) -> None:
            if request.url.endswith("/stream"):
                followed.append(request.headers.get("last-event-id"))

        tab.page.on("request", note)
        message = long_message("Lose the network")
        reply = tab.send(message, model="paced:echo")
        tab.wait_for_text(reply, 40)
        proxy.drop(1.5)  # a phone in a tunnel: the stream breaks, and reconnecting fails for a while
        reply.locator(".status", has_text="Reconnecting").wait_for(timeout=5_000)
        assert tab.wait_settled(reply) == "complete"
        assert followed and all(last is not None and int(last) > 0 for last in followed)
        assert_shown_as_stored(tab, reply, message)
        assert tab.errors == []


def assert_shown_as_stored(chat: ChatPage, reply: Any, message: str) -> None:
    """The reply ended complete, its stored text is the model's whole reply once (nothing lost or
    doubled), and the page shows what a reload shows of the stored reply."""
    stored = stored_reply(chat.server, chat.conversation_id())
    assert stored["status"] == "complete"
    assert stored["content"] == REPLY.format(words=" ".join(message.split()))
    shown = reply.locator(".content").inner_text()
    chat.reload()
    assert chat.replies.last.locator(".content").inner_text() == shown


# -- errors and hostile output ----------------------------------------------------------------------


def test_provider_error_is_readable_and_retry_works(chat: ChatPage) -> None:
    message = unique("Fail once")
    reply = chat.send(message, model="flaky:model")
    assert chat.wait_settled(reply) == "error"
    alert = reply.get_by_role("alert")
    assert alert.locator("p").inner_text() == "The model provider is overloaded. Try again shortly."
    assert reply.locator(".status").inner_text() == "Error"
    assert reply.locator(".content").inner_text() == "I started to answer, but then"

    alert.get_by_role("button", name="Retry").click()
    retried = chat.replies.last
    assert chat.wait_settled(retried) == "complete"
    assert retried.locator(".content").inner_text() == "Recovered: this time it worked."
    assert chat.replies.count() == 1
    chat.reload()
    assert chat.replies.count() == 1
    assert chat.replies.last.get_attribute("data-status") == "complete"


def test_refused_request_is_readable(chat: ChatPage) -> None:
    """An error before the stream starts (here 413, too long) shows the server's message by the message
    box, which keeps the text."""
    chat.choose_model("demo:echo")
    chat.prompt.fill("x" * 32_001)
    chat.prompt.press("Enter")
    error = chat.page.get_by_role("alert").filter(has_text="characters")
    assert error.inner_text() == "The message has 32,001 characters; the limit is 32,000."
    assert chat.prompt.input_value() == "x" * 32_001


def test_hostile_output_never_runs_script(chat: ChatPage) -> None:
    reply = chat.send(unique("Be hostile"), model="hostile:model")
    assert chat.wait_settled(reply) == "complete"
    for _attempt in range(2):  # as streamed, then as stored and rendered again after a reload
        content = reply.locator(".content")
        assert "<script>window.__pwned" in content.inner_text()  # shown as text, not run
        for link in content.locator("a").all():
            link.click()
        assert chat.page.evaluate("window.__pwned") is None
        assert content.locator("script, img, svg, iframe, style, details, object, embed").count() == 0
        assert (
            chat.page.evaluate(
                """(el) => [...el.querySelectorAll('*')].flatMap((node) => [...node.attributes])
                .filter((a) => a.name.startsWith('on') || /^\\s*(javascript|data):/i.test(a.value))
                .map((a) => a.name + '=' + a.value)""",
                content.element_handle(),
            )
            == []
        )
        assert chat.page.locator("#prompt").is_visible()  # the model's <style> hid nothing
        assert chat.dialogs == []
        chat.reload()
        reply = chat.replies.last


# -- a long reply -----------------------------------------------------------------------------------


def long_reply_paragraphs() -> int:
    provider = DemoProvider("long", {"min_reply_tokens": int(SERVER_ENV["STREAMING_BROWSER_LONG_TOKENS"])})
    tokens, _reasoning, _usage = provider._script(ChatRequest("echo", [ChatMessage("user", "Long reply")]))
    return "".join(tokens).count("\n\nParagraph ")


def test_long_reply_keeps_the_page_responsive(chat: ChatPage, capsys: pytest.CaptureFixture[str]) -> None:
    """5,000 tokens stream in and render while the page stays responsive: its main thread is mostly
    idle, key presses are handled at once, and no task freezes it. The long tasks (PerformanceObserver,
    type ``longtask``) are printed, and quoted in docs/chat-page.md.

    Long tasks are wall-clock times, which grow when other processes take the CPU; the main thread's
    CPU time does not, so the busy share is measured in CPU time."""
    chat.choose_model("long:echo")
    chat.reset_long_tasks()
    cpu_before = chat.main_thread_seconds()
    started = time.monotonic()
    reply = chat.send("Long reply")
    chat.wait_for_text(reply, 2_000)
    chat.prompt.press_sequentially("typing while it streams")  # the page takes input meanwhile
    assert chat.wait_settled(reply, timeout=60_000) == "complete"
    took = time.monotonic() - started
    busy = (chat.main_thread_seconds() - cpu_before) / took
    tasks, delays = chat.long_tasks(), chat.input_delays()
    first = chat.first_character_ms()

    tokens = reply.locator(".meta-tokens").inner_text()
    report = (
        f"{chat.server.kind}: first character {first:.0f} ms after Enter; {tokens} in {took:.1f} s; "
        f"main thread busy {busy:.0%} (CPU time); "
        f"{tasks}; key presses waited at most {max(delays):.0f} ms"
    )
    with capsys.disabled():
        print(f"\n[long reply] {report}")
    assert chat.prompt.input_value() == "typing while it streams"
    assert reply.locator(".content > p").filter(has_text="adds more words").count() == long_reply_paragraphs()
    assert busy < 0.5, report
    assert len(delays) > len("typing while it streams") and max(delays) < 250, report
    assert tasks.longest < 500, report  # nothing that a person would notice as a freeze


@ONCE
def test_chunky_provider_is_smoothed(chat: ChatPage) -> None:
    """A provider that sends a quarter of the reply every half second is shown at a steady pace."""
    reply = chat.send(unique("Smooth this"), model="chunky:model")
    assert chat.wait_settled(reply) == "complete"
    shown = [length for status, length in chat.reply_states() if status == "streaming" and length]
    full = len(reply.locator(".content").inner_text())
    steps = [later - earlier for earlier, later in pairwise(shown)]
    # Unsmoothed, the text would grow in about four jumps of a quarter of the reply each.
    assert len(shown) >= 16, shown
    assert max(steps) < full / 5, shown


# -- once, under ASGI: the parser, keyboard use and a phone (more of the page: tests/page/) -----------

PARSER_CHECK = """
async (url) => {
  const { EventStreamParser, readChunks } = await import(url);
  const wire = 'id: 0\\ndata: {"type":"start"}\\n\\n: ping\\n\\n'
    + 'data: {"type":"text-delta",\\ndata: "delta":"é 🎉"}\\n\\n'
    + 'id: 2\\r\\ndata:{"type":"crlf"}\\r\\n\\r\\ndata: {"type":"cr"}\\r\\rdata: not json\\n\\n'
    + 'event: other\\ndata: {"type":"named"}\\n\\ndata: [DONE]\\n\\ndata: {"type":"after-done"}\\n\\n';
  const whole = new EventStreamParser().push(wire).map((e) => e.data);
  const splits = [];
  for (let at = 0; at <= wire.length; at++) {
    const parser = new EventStreamParser();
    splits.push([...parser.push(wire.slice(0, at)), ...parser.push(wire.slice(at))].map((e) => e.data));
  }
  const bytes = new TextEncoder().encode(wire);
  const body = new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 3) controller.enqueue(bytes.slice(i, i + 3));
      controller.close();
    },
  });
  const chunks = [];
  for await (const chunk of readChunks(new Response(body))) chunks.push(chunk);
  return { whole, splits, chunks };
}
"""


@ONCE
def test_event_stream_parsing(chat: ChatPage) -> None:
    """Events split anywhere across reads, pings, multi-line data, CR/CRLF line ends, UTF-8 split
    inside a character, data that is not JSON, and [DONE]."""
    result = chat.page.evaluate(PARSER_CHECK, chat.server.url + "/static/streaming/sse.js")
    expected = [
        '{"type":"start"}',
        '{"type":"text-delta",\n"delta":"é 🎉"}',
        '{"type":"crlf"}',
        '{"type":"cr"}',
        "not json",
        '{"type":"named"}',
        "[DONE]",
        '{"type":"after-done"}',
    ]
    assert result["whole"] == expected
    assert all(split == expected for split in result["splits"])
    assert result["chunks"] == [
        {"type": "start"},
        {"type": "text-delta", "delta": "é 🎉"},
        {"type": "crlf"},
        {"type": "cr"},
        {"type": "named"},
    ]
    chat.errors.clear()


@ONCE
def test_keyboard_only(chat: ChatPage) -> None:
    """Send with Enter (Shift+Enter is a new line), stop with Escape, rename (the arrow keys) and delete
    (the Delete key), all from the keyboard; the controls have names and the transcript is a polite live
    region."""
    page = chat.page
    with chat.server.client() as client:
        models = client.get("/chat/api/models").json()
    model_select = page.get_by_role("combobox", name="Model")
    assert model_select.locator("option").evaluate_all("(options) => options.map((o) => o.value)") == [
        model["id"] for model in models["models"]
    ]
    assert page.get_by_role("log").get_attribute("aria-live") == "polite"
    assert page.get_by_role("status").count() == 1
    assert page.get_by_role("combobox", name="Model").is_visible()
    chat.choose_model("paced:echo")
    chat.reload()  # the model stays chosen
    assert page.evaluate("document.activeElement.id") == "prompt"  # a new chat starts in the message box
    first = page.evaluate("document.querySelector('a[href], button, input, select, textarea').textContent")
    assert first == "Skip to the message box"
    page.get_by_role("link", name="Skip to the message box").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "prompt"
    first_line = unique("Line one")
    page.keyboard.type(first_line)
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    page.keyboard.press("Enter")
    assert chat.user_messages.last.inner_text() == f"{first_line}\nline two"
    reply = chat.replies.last
    chat.wait_for_text(reply, 20)
    page.keyboard.press("Escape")
    assert chat.wait_settled(reply, timeout=5_000) == "cancelled"

    item = chat.sidebar_item(first_line)
    item.get_by_role("link").focus()
    page.keyboard.press("ArrowRight")  # the list is one Tab stop: arrows reach a row's buttons
    assert page.evaluate("document.activeElement.dataset.action") == "rename"
    page.keyboard.press("Enter")
    renamed = unique("Renamed")
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(renamed)
    page.keyboard.press("Enter")
    page.get_by_role("link", name=renamed).wait_for()
    assert page.locator("#conversation-title").inner_text() == renamed

    chat.sidebar_item(renamed).get_by_role("link").focus()
    page.keyboard.press("Delete")
    dialog = page.get_by_role("dialog")
    assert dialog.is_visible()
    assert page.evaluate("document.activeElement.textContent") == "Cancel"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.get_by_role("link", name=renamed).wait_for(state="detached")
    assert page.locator("#conversation-title").inner_text() == "New chat"
    assert "c=" not in page.url


STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'"


@ONCE
def test_strict_content_security_policy(chat: ChatPage) -> None:
    """The page needs no inline script or style: it works under a strict CSP without a violation."""

    def with_csp(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    chat.page.route(f"{chat.url}**", with_csp)
    chat.page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (event) => window.__violations.push(event.violatedDirective));"
    )
    chat.open()
    reply = chat.send(unique("Under a strict policy"), model="demo:echo")
    assert chat.wait_settled(reply) == "complete"
    assert reply.locator(".code-block").count() == 1
    assert chat.page.evaluate("window.__violations") == []
    # The policy was in force: an inline script is refused.
    inline = "Object.assign(document.createElement('script'), {text: 'window.__inline = 1'})"
    chat.page.evaluate(f"document.head.append({inline})")
    chat.page.wait_for_function("window.__violations.length > 0")
    assert chat.page.evaluate("window.__inline") is None


@ONCE
@pytest.mark.parametrize("chat_options", [{"viewport": {"width": 390, "height": 844}}])
def test_phone_width(chat: ChatPage) -> None:
    """At 390 px the conversation list is a drawer, and nothing is wider than the screen."""
    page = chat.page
    assert not page.locator("#sidebar").is_visible()
    reply = chat.send(unique("A phone asks"), model="demo:echo")
    assert chat.wait_settled(reply) == "complete"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = reply.bounding_box()
    assert box is not None and box["width"] <= 390

    toggle = page.get_by_role("button", name="Conversations")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert page.locator("#sidebar").is_visible()
    assert page.evaluate("document.getElementById('main').inert")
    page.keyboard.press("Escape")
    assert not page.locator("#sidebar").is_visible()
    assert page.evaluate("document.activeElement.id") == "sidebar-toggle"
