"""The fixtures of the chat page's browser tests: a browser, and a server with its database (``site``)
for each test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser_support import running_chromium
from tests.page_support import SERVER_ENV, USERS, Site
from tests.servers import running_server, server_env


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with running_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("page")
    with running_server("runserver", workdir, SERVER_ENV, users=USERS) as live:
        yield Site(live, server_env(workdir, SERVER_ENV))
