"""The README's client examples, run as written against the demo project under uvicorn: a token from
``manage.py streaming_token``, then curl and the Python client (httpx + httpx-sse) stream a reply with
it. Only the server's address differs from the README's (the test's server has a port of its own)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.providers.demo import REPLY
from tests.conftest import require
from tests.readme import code_blocks
from tests.servers import NEEDS, ROOT, LiveServer, User, available, running_server, server_env
from tests.sse import parse_events, text_of

pytestmark = pytest.mark.servers

DEMO_USER = User(username="demo", password="demo-readme-client-pw-7731")
SHELL, PYTHON = code_blocks("### A client")
EXPECTED_TEXT = REPLY.format(words="Hello!")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require(available("uvicorn"), f"{NEEDS['uvicorn']} is not installed")
    workdir = tmp_path_factory.mktemp("readme-client")
    env = {"STREAMING_DEMO_TOKENS_PER_SECOND": "200"}
    with running_server("uvicorn", workdir, env, users=(DEMO_USER,)) as live, live.log_on_failure():
        yield live


def beside(server: LiveServer, *command: str) -> str:
    """Run ``command`` where the server runs, with its environment (its database) and this interpreter's
    ``python`` first on PATH; its output."""
    env = server_env(server.log_path.parent)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_curl_streams_a_reply_with_a_token(server: LiveServer) -> None:
    require(shutil.which("curl") is not None, "curl is not installed")
    assert SHELL.language == "sh" and PYTHON.language == "python"
    # As written, then the test server's address in place of the README's 127.0.0.1:8000.
    script = re.sub(r"^(export CHAT_URL=.*)$", rf"\1\nexport CHAT_URL={server.url}", SHELL.code, flags=re.M)
    assert script != SHELL.code, "the README's client block no longer sets CHAT_URL"
    output = beside(server, "bash", "-euo", "pipefail", "-c", script + "\necho\necho $CHAT_TOKEN\n")
    *stream, token = output.rstrip("\n").split("\n")
    events = parse_events("\n".join(stream).encode())
    assert text_of(events) == EXPECTED_TEXT
    assert events[-2]["messageMetadata"]["status"] == "complete"
    assert events[-1] == "[DONE]"
    assert token.startswith("stk_")
    assert token not in server.log()  # the access log has the request line, never the header


def new_token(server: LiveServer) -> str:
    return beside(server, "python", "manage.py", "streaming_token", DEMO_USER.username).strip()


def run_client(tmp_path: Path, server: LiveServer, token: str) -> subprocess.CompletedProcess[str]:
    client = tmp_path / "client.py"
    client.write_text(PYTHON.code)
    env = {**os.environ, "CHAT_URL": server.url, "CHAT_TOKEN": token}
    return subprocess.run(
        [sys.executable, client], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_python_client_streams_a_reply_with_a_token(server: LiveServer, tmp_path: Path) -> None:
    done = run_client(tmp_path, server, new_token(server))
    assert done.returncode == 0, done.stderr
    text, _, summary = done.stdout.rstrip("\n").rpartition("\n")
    assert text == EXPECTED_TEXT
    assert re.fullmatch(r"\[complete\] \d+ tokens, \S+ USD", summary), summary


def test_the_python_client_says_why_a_token_is_refused(server: LiveServer, tmp_path: Path) -> None:
    done = run_client(tmp_path, server, "stk_not-a-token")
    assert done.returncode == 1
    assert done.stderr.strip() == "This API token is not valid, or was revoked."
