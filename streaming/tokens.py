"""API tokens without the database: making one, the digest that is stored in its place, the prefix that
names it, and reading one from a request's ``Authorization: Bearer`` header.

A token is 32 random bytes, so a plain SHA-256 digest is safe to store (a slow password hash guards
guessable secrets; nobody guesses 256 bits) and lets a request find its token with one indexed lookup.
The ``stk_`` start tells people and secret scanners what leaked; the prefix, the first few characters,
tells a user's tokens apart in lists without revealing them.
"""

from __future__ import annotations

import hashlib
import secrets

from django.http import HttpRequest

START = "stk_"
PREFIX_LENGTH = len(START) + 8


def new_token() -> str:
    return START + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """What is stored in place of ``token``: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def prefix(token: str) -> str:
    return token[:PREFIX_LENGTH]


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None without one (another scheme, or
    no header: the session decides). A Bearer header with nothing after it gives "" (a wrong token)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()
