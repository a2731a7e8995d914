"""The providers' TLS options, through the real SDKs (sync and async clients) against the fake upstream
behind a private CA: ``verify`` names the CA bundle to trust, ``cert`` the client certificate that a
server may require; without them, the public CAs (and ``SSL_CERT_FILE``) only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils.module_loading import import_string

from streaming.events import TextDelta
from streaming.exceptions import ProviderError
from streaming.providers.base import ChatMessage, ChatRequest, Provider
from tests.certificates import Authority, make_authority
from tests.fake_upstream import VENDORS, FakeUpstream, Reply, Vendor, collect

KEY = "sk-test-SECRET-1234567890"
MODES = ["sync", "async"]


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def upstream(authority: Authority, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    for name in (
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "GOOGLE_GEMINI_BASE_URL",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    for vendor in VENDORS:
        monkeypatch.setenv(vendor.key_env, KEY)
    with FakeUpstream(tls=authority.server_context(require_client_cert=True)) as server:
        yield server


def call(
    upstream: FakeUpstream, vendor: Vendor, mode: str, **options: Any
) -> tuple[list[Any], Exception | None]:
    upstream.enqueue(Reply.stream(vendor.complete("Hello")))
    url = upstream.url + vendor.url_suffix
    provider: Provider = import_string(vendor.backend)(vendor.name, {"base_url": url, **options})
    return collect(provider, ChatRequest("model-test", [ChatMessage("user", "Hi")]), mode)


def client_cert(authority: Authority) -> list[str]:
    return [str(authority.client_cert), str(authority.client_key)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda vendor: vendor.name)
def test_the_configured_ca_and_client_certificate(
    upstream: FakeUpstream, authority: Authority, vendor: Vendor, mode: str
) -> None:
    events, error = call(upstream, vendor, mode, verify=str(authority.ca), cert=client_cert(authority))
    assert error is None
    assert TextDelta("Hello") in events


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda vendor: vendor.name)
def test_an_unknown_ca_is_refused(
    upstream: FakeUpstream, authority: Authority, vendor: Vendor, mode: str
) -> None:
    _, error = call(upstream, vendor, mode, cert=client_cert(authority))
    assert isinstance(error, ProviderError) and error.code == "connection"
    assert not upstream.requests


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda vendor: vendor.name)
def test_ssl_cert_file_is_trusted(
    upstream: FakeUpstream, authority: Authority, vendor: Vendor, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca))
    events, error = call(upstream, vendor, mode, cert=client_cert(authority))
    assert error is None
    assert TextDelta("Hello") in events
