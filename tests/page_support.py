"""What the chat page's browser tests share: one ASGI server (daphne, through ``runserver``) per test module
with the browser test models, users for the states a test needs, a way to put rows in that server's
database (a conversation 1,500 deep, a spent budget), and axe-core.

The fixtures are in ``tests/page/conftest.py``: the page's tests live in ``tests/page/``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from tests.axe import require_axe, serious_violations
from tests.browser_support import (
    PHONE,
    ChatPage,
    chat_page,
    session_cookies,
)
from tests.servers import ROOT, LiveServer, User

SERVER_ENV = {
    "DJANGO_SETTINGS_MODULE": "tests.settings_browser",
    "STREAMING_DEMO_TOKENS_PER_SECOND": "400",
    "STREAMING_BROWSER_PACED_TPS": "40",
}
ALICE = User()
#: Users whose data a test shapes; each test that changes a user's data has a user of its own.
GRACE = User(username="grace", password="grace-browser-pw-5150")  # the screenshots' user
BUDGET = User(username="bea", password="bea-browser-pw-2231")
MANY = User(username="max", password="max-browser-pw-7712")
LONG = User(username="lena", password="lena-browser-pw-4410")
USERS = (ALICE, GRACE, BUDGET, MANY, LONG)


@dataclass
class Site:
    """A server of the demo project with the browser test models, and its environment."""

    server: LiveServer
    env: dict[str, str]

    def django(self, code: str, **values: Any) -> Any:
        """Run ``code`` in the server's database (in a process of its own, with its settings); ``values``
        are its variables; what it assigns to ``result`` comes back."""
        given = [f"{name} = orjson.loads({orjson.dumps(value).decode()!r})" for name, value in values.items()]
        script = "\n".join(
            [
                "import django, orjson, sys",
                "django.setup()",
                *given,
                "result = None",
                textwrap.dedent(code),
                "sys.stdout.write(orjson.dumps(result).decode())",
            ]
        )
        command = [sys.executable, "-c", script]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return orjson.loads(done.stdout or "null")

    @contextmanager
    def page(self, browser: Any, user: User = ALICE, **options: Any) -> Iterator[ChatPage]:
        """A logged-in tab of ``user``, on the chat page (``options``: the browser context's)."""
        with chat_page(browser, self.server, session_cookies(self.server, user), **options) as chat:
            yield chat


def no_serious_violations(chat: ChatPage, state: str) -> None:
    """axe-core finds nothing serious or critical on the page as it is now."""
    require_axe()
    found = serious_violations(chat.page)
    assert found == [], f"{state}: {found}"


PHONE_CONTEXT = {"viewport": PHONE, "has_touch": True, "is_mobile": True}


def reply_with(chat: ChatPage, text: str, model: str = "demo:echo") -> Any:
    """Send ``text`` and wait until its reply has ended; the reply."""
    reply = chat.send(text, model=model)
    chat.wait_settled(reply)
    chat.wait_idle()
    return reply
