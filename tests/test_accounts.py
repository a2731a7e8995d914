"""The app's login and logged-out pages, for a site whose only accounts URLs are Django's
(``path("accounts/", include("django.contrib.auth.urls"))``): they render in the chat page's look, log
a user in through the form (CSRF and all), and send them on to the chat page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


def form_post(client: Client, url: str, data: dict[str, str]) -> Any:
    """Fill in the login form at ``url`` and send it, with its hidden fields, as a browser does."""
    page = client.get(url).content.decode()
    return client.post(url, {**hidden_fields(page), **data})


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def test_the_chat_page_sends_a_visitor_to_the_apps_login_page(browser: Client) -> None:
    response = browser.get("/", follow=True)
    assert response.redirect_chain == [(f"{LOGIN}?next=/", 302)]
    page = response.content.decode()
    assert "<title>Log in</title>" in page
    assert 'href="/static/streaming/chat.css"' in page  # the chat page's look
    assert 'name="next" value="/"' in page
    assert 'autocomplete="current-password"' in page


def test_logging_in_through_the_form_opens_the_chat(browser: Client, user: Any) -> None:
    done = form_post(browser, LOGIN, {"username": "alice", "password": "pw-alice-123"})
    assert (done.status_code, done["Location"]) == (302, "/")  # the chat page, not /accounts/profile/
    chat = browser.get("/")
    assert chat.status_code == 200
    assert 'id="chat-app"' in chat.content.decode()


def test_a_next_page_is_kept_through_the_login(browser: Client, user: Any) -> None:
    assert 'name="next" value="/api/models"' in browser.get(f"{LOGIN}?next=/api/models").content.decode()
    done = form_post(browser, f"{LOGIN}?next=/api/models", {"username": "alice", "password": "pw-alice-123"})
    assert done["Location"] == "/api/models"


def test_a_wrong_password_says_so_and_logs_nobody_in(browser: Client, user: Any) -> None:
    done = form_post(browser, LOGIN, {"username": "alice", "password": "wrong"})
    assert done.status_code == 200
    page = done.content.decode()
    assert 'role="alert">Please enter a correct username and password.' in page
    assert browser.get("/api/models").status_code == 401


def test_logging_out_shows_the_apps_logged_out_page(browser: Client, user: Any) -> None:
    browser.force_login(user)
    chat = browser.get("/").content.decode()
    assert 'action="/accounts/logout/"' in chat  # the chat page's Log out button
    page = browser.post("/accounts/logout/", hidden_fields(chat))
    assert page.status_code == 200
    text = page.content.decode()
    assert "You are logged out" in text
    assert 'href="/static/streaming/account.css"' in text  # not the admin's page of the same name
    assert f'href="{LOGIN}?next=/"' in text
    assert browser.get("/api/models").status_code == 401
