"""The demo project serves its static files under every server, not only ``runserver``: gunicorn and
uvicorn serve none of their own, and a page without its CSS and JavaScript is an unstyled, dead page.
WhiteNoise's middleware serves them, DEBUG on or off, without a ``collectstatic``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.staticfiles import finders

from tests.conftest import require
from tests.servers import NEEDS, LiveServer, available, running_server

pytestmark = pytest.mark.servers

CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
#: Django warns, once per process, when it reads a file response whole to serve it under ASGI.
WHOLE_FILE_WARNING = "must consume synchronous iterators"


def serve(kind: str, tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[LiveServer]:
    require(available(kind), f"{NEEDS[kind]} is not installed: cannot test under {kind}")
    with running_server(kind, tmp_path_factory.mktemp(f"static-{kind}"), env) as live, live.log_on_failure():
        yield live


@pytest.fixture(scope="module", params=["gunicorn", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(request.param, tmp_path_factory, {})


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """uvicorn with DEBUG off, as deployed (HTTPS redirects off: the test speaks plain HTTP)."""
    env = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "static-files-test-" + "k" * 40,
        "DJANGO_SECURE_SSL_REDIRECT": "0",
    }
    yield from serve("uvicorn", tmp_path_factory, env)


def static_urls(page: str) -> list[str]:
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
    assert urls, page[:2000]
    return urls


def assert_served(client: httpx.Client, url: str) -> None:
    """``url`` answers 200 with the bytes of the file the app ships, and the right content type."""
    source = finders.find(url.removeprefix("/static/"))
    assert isinstance(source, str), f"no static file behind {url}"
    response = client.get(url)
    assert response.status_code == 200, url
    assert response.content == Path(source).read_bytes(), url
    assert response.headers["content-type"].startswith(CONTENT_TYPES[Path(url).suffix]), url


def test_the_chat_page_gets_its_css_and_javascript(server: LiveServer) -> None:
    with server.client() as client:
        chat = client.get("/")
        assert chat.status_code == 200
        urls = static_urls(chat.text)
        assert {"/static/streaming/chat.css", "/static/streaming/chat.js"} <= set(urls)
        for url in urls:
            assert_served(client, url)
        # The modules chat.js imports, which the page names nowhere.
        for name in ("api.js", "reply.js", "sse.js", "markdown.js"):
            assert_served(client, f"/static/streaming/{name}")
    assert WHOLE_FILE_WARNING not in server.log()


def test_the_login_page_and_the_admin_are_styled_too(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as visitor:
        login = visitor.get("/accounts/login/")
        assert login.status_code == 200
        for url in static_urls(login.text):
            assert_served(visitor, url)
        admin_login = visitor.get("/admin/login/")
        assert "/static/admin/css/base.css" in static_urls(admin_login.text)
        assert_served(visitor, "/static/admin/css/base.css")


def test_with_debug_off(production: LiveServer) -> None:
    with httpx.Client(base_url=production.url, timeout=10) as visitor:
        login = visitor.get("/accounts/login/")
        assert login.status_code == 200
        urls = static_urls(login.text)
        assert "/static/streaming/account.css" in urls
        for url in [*urls, "/static/streaming/chat.js"]:
            assert_served(visitor, url)
        assert visitor.get("/static/streaming/no-such-file.css").status_code == 404
