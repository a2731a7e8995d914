"""The app with real providers: ``STREAMING`` pointing each vendor's SDK at a fake upstream, and
``POST /api/chat`` on the sync (WSGI) and the async (ASGI) path, for tests of what a user sees when a
vendor fails, retries, falls back or leaks."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from streaming.stopping import request_stop
from tests.fake_upstream import VENDORS, FakeUpstream, Vendor

MODEL = {
    "openai": "openai:gpt-4.1-mini",
    "anthropic": "anthropic:claude-haiku-4-5",
    "gemini": "gemini:gemini-2.5-flash",
}
BY_NAME = {vendor.name: vendor for vendor in VENDORS}
_ENV = (
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_API_VERSION",
)


def use_key(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """Every vendor's key variable set to ``key``; nothing else from the environment."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    for vendor in VENDORS:
        monkeypatch.setenv(vendor.key_env, key)


def configure(settings: Any, upstreams: dict[str, FakeUpstream], **extra: Any) -> None:
    """``STREAMING`` with one real provider per entry of ``upstreams`` (vendor name: its fake)."""
    providers = {
        name: {
            "BACKEND": BY_NAME[name].backend,
            "OPTIONS": {"base_url": upstream.url + BY_NAME[name].url_suffix},
        }
        for name, upstream in upstreams.items()
    }
    settings.STREAMING = {
        "PROVIDERS": providers,
        "MODELS": [MODEL[name] for name in upstreams],
        "RETRY_BASE_DELAY": 0.01,
        "RETRY_MAX_DELAY": 0.05,
        "STOP_POLL_SECONDS": 0.05,
        **extra,
    }


def body(vendor: Vendor | str, message: str = "Hi") -> dict[str, Any]:
    name = vendor if isinstance(vendor, str) else vendor.name
    return {"message": message, "model": MODEL[name]}


def post_sync(client: Client, data: dict[str, Any]) -> bytes:
    """``POST /api/chat`` through the WSGI handler: the relay's worker thread runs the sync SDK."""
    response: Any = client.post("/api/chat", data, content_type="application/json")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def post_async(user: Any, data: dict[str, Any]) -> bytes:
    """``POST /api/chat`` through the ASGI handler: the relay's task runs the async SDK."""

    async def run() -> bytes:
        client = AsyncClient()
        await sync_to_async(client.force_login)(user)
        response: Any = await client.post("/api/chat", data, content_type="application/json")
        assert response.status_code == 200
        return b"".join([part async for part in response.streaming_content])

    return asyncio.run(run())


def post(mode: str, api: Client, user: Any, data: dict[str, Any]) -> bytes:
    return post_sync(api, data) if mode == "sync" else post_async(user, data)


def post_and_stop(mode: str, api: Client, user: Any, data: dict[str, Any]) -> bytes:
    """``POST /api/chat`` and stop the reply once its first text has arrived, as the Stop button does."""
    if mode == "sync":
        response: Any = api.post("/api/chat", data, content_type="application/json")
        received = b""
        for part in response.streaming_content:
            received = _stop_at_first_text(received, received + part)
        return received

    async def run() -> bytes:
        client = AsyncClient()
        await sync_to_async(client.force_login)(user)
        response: Any = await client.post("/api/chat", data, content_type="application/json")
        received = b""
        async for part in response.streaming_content:
            received = _stop_at_first_text(received, received + part)
        return received

    return asyncio.run(run())


def _stop_at_first_text(before: bytes, received: bytes) -> bytes:
    if b'"text-delta"' in received and b'"text-delta"' not in before:
        found = re.search(rb'"messageId":"([0-9a-f-]+)"', received)
        assert found is not None
        request_stop(found.group(1).decode())
    return received
