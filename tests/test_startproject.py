"""SPEC §1's install story, on a project fresh from ``django-admin startproject``: ``pip install`` the
app, one INSTALLED_APPS entry, one ``include()``, ``migrate``; then the checks pass and a reply streams.

The app is built from a copy of its source and installed (not in editable mode) into a new virtualenv
that borrows Django and friends from the current one, so a module or template missing from the
package fails here, and so does any import of the demo ``project``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import require
from tests.servers import ROOT, outer_env, parse_block

PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")

REQUEST_SCRIPT = """
import importlib.util, json
import streaming
from django.contrib.auth import get_user_model
from django.test import Client

user = get_user_model().objects.create_user("ada", password="ada-startproject-pw-5150")
client = Client(SERVER_NAME="localhost")
client.force_login(user)
page = client.get("/")
body = {"message": "Hello from a new project", "model": "demo:echo"}
response = client.post("/api/chat", body, content_type="application/json")
stream = b"".join(response.streaming_content).decode()
conversation = client.get("/api/conversations").json()["conversations"][0]["id"]
detail = client.get(f"/api/conversations/{conversation}").json()
print("RESULT " + json.dumps({
    "app_file": streaming.__file__,
    "project_importable": importlib.util.find_spec("project") is not None,
    "page_status": page.status_code,
    "status": response.status_code,
    "content_type": response["Content-Type"],
    "stream": stream,
    "reply": detail["messages"][-1],
}))
"""


def run(command: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return done.stdout


def clean_env() -> dict[str, str]:
    """Nothing of this checkout or of the test run's settings leaks into the new project."""
    env = outer_env()
    env.pop("PYTHONPATH", None)
    return env


def package_source(target: Path) -> Path:
    """What an sdist of the app holds: its metadata files and the ``streaming`` package."""
    target.mkdir()
    for name in PACKAGE_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, target / name)
    shutil.copytree(ROOT / "streaming", target / "streaming", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def make_venv(where: Path, env: dict[str, str]) -> Path:
    """A new virtualenv that sees the current one's packages (Django, pip) through a ``.pth`` file."""
    run([sys.executable, "-m", "venv", "--without-pip", where], where.parent, env)
    python = where / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], where, env)
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site.strip(), "borrowed-from-the-test-run.pth").write_text("\n".join(sorted(outer)) + "\n")
    return python


def add_the_app(site: Path) -> None:
    """The two edits the README asks for: an INSTALLED_APPS entry and one include() in the URLconf."""
    settings = site / "mysite" / "settings.py"
    text, count = re.subn(
        r"(INSTALLED_APPS = \[.*?)(\n\])", r'\1\n    "streaming",\2', settings.read_text(), flags=re.S
    )
    assert count == 1, "startproject's settings.py has no INSTALLED_APPS list"
    settings.write_text(text)
    urls = site / "mysite" / "urls.py"
    text, imports = re.subn(
        r"^from django.urls import path$",
        "from django.urls import include, path",
        urls.read_text(),
        flags=re.M,
    )
    text, count = re.subn(
        r"(urlpatterns = \[.*?)(\n\])", r'\1\n    path("", include("streaming.urls")),\2', text, flags=re.S
    )
    assert imports == count == 1, "startproject's urls.py changed shape"
    urls.write_text(text)


@pytest.mark.servers
def test_the_app_joins_a_new_project(tmp_path: Path) -> None:
    require(importlib.util.find_spec("pip") is not None, "pip is not installed")
    env = clean_env()
    python = make_venv(tmp_path / "venv", env)
    run([python, "-m", "pip", "install", "--no-deps", package_source(tmp_path / "source")], tmp_path, env)
    site = tmp_path / "site"
    site.mkdir()
    run([python, "-m", "django", "startproject", "mysite", site], tmp_path, env)
    add_the_app(site)

    run([python, "manage.py", "migrate", "--verbosity", "0"], site, env)
    run([python, "manage.py", "check", "--fail-level", "WARNING"], site, env)
    output = run([python, "manage.py", "shell", "-c", REQUEST_SCRIPT], site, env)
    result = json.loads(output.rpartition("RESULT ")[2])

    assert Path(result["app_file"]).is_relative_to(tmp_path / "venv")  # the installed copy, not this checkout
    assert result["project_importable"] is False  # so the app ran without the demo project
    assert result["page_status"] == 200  # the chat page renders with the app's own templates
    assert result["status"] == 200
    assert result["content_type"] == "text/event-stream"
    events = [parse_block(block.encode())[1] for block in result["stream"].split("\n\n") if block.strip()]
    assert events[-1] == "[DONE]"
    finish = events[-2]
    assert finish["type"] == "finish"
    assert finish["messageMetadata"]["status"] == "complete"
    text = "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == "text-delta")
    assert "Hello from a new project" in text
    assert result["reply"]["status"] == "complete"
    assert result["reply"]["content"] == text
    assert result["reply"]["usage"]["output_tokens"] > 0


def test_the_app_never_imports_the_demo_project() -> None:
    """Every module of the app, not only those the request above ran."""
    offenders = []
    for path in (ROOT / "streaming").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(name == "project" or name.startswith("project.") for name in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
