"""Run a script of ``tests/js`` (the AI SDK's own client) against a live server, as its logged-in user."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import require
from tests.servers import LiveServer

JS = Path(__file__).resolve().parent / "js"


def run_node(server: LiveServer, script: str, api: str, *args: str, timeout: float = 60) -> dict[str, Any]:
    """``node <script> <server url + api> <cookie header> <csrf token> <args...>``: the JSON object the
    script prints last. ``api`` is where the app's URLs are included (``""`` at the root)."""
    require(shutil.which("node") is not None, "Node.js is not installed")
    require(
        (JS / "node_modules" / "ai").is_dir(), "the ai package is not installed: npm ci --prefix tests/js"
    )
    with server.client() as client:
        client.get(f"{api}/api/models")
        cookies = dict(client.cookies.items())
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    command = ["node", str(JS / script), server.url + api, cookie, cookies["csrftoken"], *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=JS)
    assert done.returncode == 0, done.stderr + server.log()[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
