"""The app added to a project fresh from ``django-admin startproject``, as a user would add it.

The wheel is built from this checkout and installed with ``[all]`` into a new virtualenv by the README's
own ``pip install`` line (pip finds the unreleased wheel through ``PIP_FIND_LINKS``, and the SDKs on
PyPI or in its cache). Every block of the README's "Add it to your project" then runs as written; the
site passes its checks, serves the chat under WSGI and ASGI, static files included with ``DEBUG`` off,
and a browser logs in through the app's login page and chats with the demo model.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import django
import httpx
import pytest

from tests.browser_support import ChatPage, chromium_available, launch
from tests.conftest import require
from tests.readme import Block, code_blocks
from tests.servers import ROOT, LiveServer, User, outer_env, parse_block, start_server

#: Building the wheel and installing the SDKs (from pip's cache, else PyPI) is the first test's setup.
pytestmark = pytest.mark.timeout(600)

PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")
DISTRIBUTION = "django-llm-streaming"
USER = User(username="ada", password="ada-startproject-pw-5150")
#: ``# mysite/settings.py (at the end)``: where a Python block of the README goes.
TARGET = re.compile(r"# (?P<path>[\w/]+\.py) \((?P<how>at the end|the whole file)\)\n")

CHECK_SCRIPT = """
import json, re
from django.test import Client, override_settings
from streaming.models import Message

browser = Client(SERVER_NAME="localhost", enforce_csrf_checks=True)
visit = browser.get("/chat/")
page = browser.get(visit["Location"]).content.decode()
form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
login = browser.post(visit["Location"], {**form, "username": "ada", "password": "ada-startproject-pw-5150"})
body = {"message": "Hello from a new project", "model": "demo:echo"}
reply = browser.post("/chat/api/chat", body, content_type="application/json",
                     HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
stream = b"".join(reply.streaming_content).decode()
with override_settings(DEBUG=False, ALLOWED_HOSTS=["localhost"]):
    css = Client(SERVER_NAME="localhost").get("/static/streaming/chat.css")
    served = b"".join(css.streaming_content) if css.streaming else css.content
print("RESULT " + json.dumps({
    "visit": [visit.status_code, visit["Location"]],
    "login": [login.status_code, login["Location"]],
    "status": reply.status_code,
    "stream": stream,
    "stored": Message.objects.filter(role="assistant").get().content,
    "css": [css.status_code, served.decode()],
}))
"""

ASGI_SCRIPT = """
import asyncio, json
from asgiref.testing import ApplicationCommunicator
from mysite.asgi import application

async def get(path):
    headers = [(b"host", b"localhost")]
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": headers}
    app = ApplicationCommunicator(application, scope)
    await app.send_input({"type": "http.request", "body": b""})
    start = await app.receive_output(10)
    body = b""
    while True:
        message = await app.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            return [start["status"], body.decode()]

async def main():
    print("RESULT " + json.dumps([await get("/accounts/login/"), await get("/static/streaming/chat.css")]))

asyncio.run(main())
"""


@dataclass
class Site:
    """A startproject site in a virtualenv of its own, with the README's steps done."""

    root: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return Path(self.env["VIRTUAL_ENV"], "bin", "python")

    def run(self, *command: str | Path, timeout: float = 300, **extra: str) -> str:
        done = subprocess.run(
            command, cwd=self.root, env={**self.env, **extra}, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
        return done.stdout

    def result(self, script: str) -> object:
        """What ``script`` printed after ``RESULT``, run in the site's Python with its settings."""
        output = self.run(self.python, "manage.py", "shell", "-c", script)
        return json.loads(output.rpartition("RESULT ")[2])

    def follow(self, block: Block) -> None:
        """Do what a block of the README says: run a shell block, or put a Python block where it names."""
        if block.language == "sh":
            self.run("bash", "-euo", "pipefail", "-c", block.code)
            return
        target = TARGET.match(block.code)
        assert block.language == "python" and target, (
            f"the README's block says nowhere where it goes:\n{block.code}"
        )
        path = self.root / target["path"]
        before = path.read_text() + "\n\n" if target["how"] == "at the end" else ""
        path.write_text(before + block.code)


def pypi_answers() -> bool:
    try:
        httpx.head("https://pypi.org/simple/pip/", timeout=10)
    except httpx.HTTPError:
        return False
    return True


def build_wheel(where: Path) -> Path:
    """The wheel of this checkout, built from a copy of what the distribution holds."""
    source = where / "source"
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "streaming", source / "streaming", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = where / "wheels"
    pip: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", wheels, source]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300, env=outer_env())
    assert done.returncode == 0, done.stdout + done.stderr
    return wheels


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    require(importlib.util.find_spec("pip") is not None, "pip is not installed")
    require(pypi_answers(), "PyPI does not answer: the wheel's dependencies cannot be installed")
    where = tmp_path_factory.mktemp("startproject")
    wheels = build_wheel(where)
    subprocess.run([sys.executable, "-m", "venv", where / "venv"], check=True, timeout=120)
    env = outer_env()
    env.pop("PYTHONPATH", None)  # nothing of this checkout
    env.update(
        VIRTUAL_ENV=str(where / "venv"),
        PATH=f"{where / 'venv' / 'bin'}{os.pathsep}{env['PATH']}",
        PIP_FIND_LINKS=str(wheels),  # the unreleased wheel, as if it were on PyPI
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        DJANGO_SUPERUSER_PASSWORD=USER.password,
    )
    site = Site(where / "site", env)
    site.root.mkdir()
    # A project that exists already, on the Django of this test run; then the README, block by block.
    site.run("pip", "install", "--quiet", f"Django=={django.get_version()}")
    site.run("django-admin", "startproject", "mysite", site.root)
    for block in code_blocks("## Add it to your project"):
        site.follow(block)
    site.run(
        site.python, "manage.py", "createsuperuser", "--noinput", "--username", USER.username, "--email", ""
    )
    return site


@pytest.mark.servers
def test_the_wheel_installs_with_every_sdk(site: Site) -> None:
    site.run("pip", "check")
    script = f"""
import importlib.metadata, importlib.util, json, streaming, openai, anthropic, google.genai
meta = importlib.metadata.distribution("{DISTRIBUTION}")
print(json.dumps({{
    "app": streaming.__file__,
    "license": [str(f) for f in meta.files if f.name == "LICENSE"],
    "license_expression": meta.metadata["License-Expression"],
    "demo_project": importlib.util.find_spec("project") is not None,
}}))
"""
    installed = json.loads(site.run(site.python, "-c", script))
    assert Path(installed["app"]).is_relative_to(
        site.env["VIRTUAL_ENV"]
    )  # the wheel's copy, not the checkout
    assert installed["license"] and installed["license_expression"] == "MIT"
    assert installed["demo_project"] is False  # so the app runs without the demo project


@pytest.mark.servers
def test_the_readmes_steps_give_a_working_site(site: Site) -> None:
    site.run(site.python, "manage.py", "check", "--fail-level", "WARNING")
    site.run(site.python, "manage.py", "makemigrations", "--check", "--dry-run")  # the app's are complete
    result = site.result(CHECK_SCRIPT)
    assert isinstance(result, dict)
    assert result["visit"] == [302, "/accounts/login/?next=/chat/"]  # the app's login page, not a 404
    assert result["login"] == [302, "/chat/"]
    assert result["status"] == 200
    events = [parse_block(block.encode())[1] for block in result["stream"].split("\n\n") if block.strip()]
    assert events[-1] == "[DONE]" and events[-2]["messageMetadata"]["status"] == "complete"
    text = "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta")
    assert 'You said: "Hello from a new project"' in text
    assert result["stored"] == text
    # DEBUG off: WhiteNoise serves the collected file.
    assert result["css"] == [200, (ROOT / "streaming/static/streaming/chat.css").read_text()]


@pytest.mark.servers
def test_the_readmes_asgi_module_serves_the_site(site: Site) -> None:
    """The README's asgi.py sets DJANGO_SETTINGS_MODULE itself: nothing in the environment names it."""
    assert "DJANGO_SETTINGS_MODULE" not in site.env
    output = site.run(site.python, "-c", ASGI_SCRIPT)
    (login_status, login_page), (css_status, css) = json.loads(output.rpartition("RESULT ")[2])
    assert (login_status, css_status) == (200, 200)
    assert "<title>Log in</title>" in login_page
    assert css == (ROOT / "streaming/static/streaming/chat.css").read_text()


@pytest.fixture
def runserver(site: Site, tmp_path: Path) -> Iterator[LiveServer]:
    """``manage.py runserver`` of the site (WSGI: a new project has no daphne)."""
    command: list[str | Path] = [site.python, "manage.py", "runserver", "--noreload"]
    server = start_server(
        "runserver-wsgi",
        site.env,
        tmp_path,
        (USER,),
        command=lambda port: [*command, f"127.0.0.1:{port}"],
        cwd=site.root,
    )
    try:
        with server.log_on_failure():
            yield server
    finally:
        server.stop()


@pytest.mark.servers
@pytest.mark.browser
def test_a_browser_logs_in_through_the_login_page_and_chats(runserver: LiveServer) -> None:
    ok, reason = chromium_available()
    require(ok, reason)
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(runserver.url + "/chat/")
        expect(page).to_have_title("Log in")
        page.get_by_label("Username").fill(USER.username)
        page.get_by_label("Password").fill(USER.password)
        page.get_by_role("button", name="Log in").click()
        chat = ChatPage(page, runserver)
        chat.wait_ready()
        reply = chat.send("Hello from a new project", model="demo:echo")
        assert chat.wait_settled(reply) == "complete"
        assert 'You said: "Hello from a new project"' in reply.locator(".content").inner_text()
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="You are logged out")).to_be_visible()
        page.get_by_role("link", name="Log in again").click()
        expect(page).to_have_url(runserver.url + "/accounts/login/?next=/chat/")
        assert errors == []
        browser.close()


def test_the_app_never_imports_the_demo_project() -> None:
    """Every module of the app, not only those the site above ran."""
    offenders = []
    for path in (ROOT / "streaming").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(name == "project" or name.startswith("project.") for name in names):
                offenders.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}")
    assert offenders == []
