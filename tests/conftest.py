"""Shared fixtures. Tests that need a service (a browser, PostgreSQL, Redis, a server binary) call
``require(...)``: it skips on a developer's machine that lacks the service, and fails under CI
(``CI`` or ``STREAMING_REQUIRE_SERVICES`` set), so CI never passes by skipping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from streaming import database, upkeep
from streaming.providers.scripted import ScriptedProvider
from tests.replies import settle

STRICT = bool(os.environ.get("STREAMING_REQUIRE_SERVICES") or os.environ.get("CI"))


def require(available: bool, reason: str) -> None:
    """Skip (or, under CI, fail) the current test unless ``available``."""
    if available:
        return
    if STRICT:
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _reset_scripted() -> Iterator[None]:
    ScriptedProvider.reset()
    yield
    ScriptedProvider.reset()


@pytest.fixture(autouse=True)
def _end_database_threads() -> Iterator[None]:
    """A reply outlives its readers (for its grace period): stop what a test left streaming, and wait
    for it to be saved, before the test's data goes. Then end the app's database threads, which keep
    their connections, so that none outlives the database it saw (pytest-django drops the test
    database at the end, which PostgreSQL refuses while a connection to it is open)."""
    yield
    for relay in list(upkeep.live.values()):
        relay.stop()
    settle()
    upkeep.stop()
    database.threads.stop()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob", password="pw-bob-123")


@pytest.fixture
def api(user: Any) -> Client:
    """A logged-in client that enforces CSRF checks, sending the token header as the page does."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    client.defaults["HTTP_X_CSRFTOKEN"] = token
    return client
