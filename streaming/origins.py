"""Whether a WebSocket handshake comes from a page of this site: the rule of Django's CSRF check for
the HTTP API (``CsrfViewMiddleware``), applied to the handshake's ``Origin``.

A browser sends the session cookie with a WebSocket handshake opened by any site's page, and a handshake
carries no CSRF token: its ``Origin`` alone tells the site's own page from another site's (cross-site
WebSocket hijacking). So it must be the origin the socket was opened to (scheme, host and port, as
Django compares them) or one of ``CSRF_TRUSTED_ORIGINS``; channels' ``AllowedHostsOriginValidator``
compares host names only (another port of the host may be another site), and a project may forget it.
A handshake without an ``Origin`` is refused, as channels refuses it: a browser always sends one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.http import is_same_domain


class Handshake(HttpRequest):
    """The parts of a WebSocket handshake (an ASGI scope) that Django reads to tell a request's origin:
    its headers, the server's address, and whether it came over TLS (``SECURE_PROXY_SSL_HEADER`` too)."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        for name, value in scope.get("headers") or ():
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            self.META[key] = value.decode("latin-1")
        server = scope.get("server") or (None, None)
        if server[0] is not None:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = str(server[0]), str(server[1])
        self._secure_scheme = scope.get("scheme") in ("wss", "https")

    def _get_scheme(self) -> str:
        return "https" if self._secure_scheme else "http"


def same_origin(scope: dict[str, Any]) -> bool:
    """Whether the handshake of ``scope`` comes from the site's own origin or a trusted one."""
    request = Handshake(scope)
    origin = request.META.get("HTTP_ORIGIN")
    if not origin:
        return False
    try:
        own = f"{request.scheme}://{request.get_host()}"
    except (DisallowedHost, KeyError):  # (KeyError: neither a Host header nor a server address)
        own = None
    if origin == own:
        return True
    csrf = CsrfViewMiddleware(lambda request: HttpResponse())  # (its view of CSRF_TRUSTED_ORIGINS)
    if origin in csrf.allowed_origins_exact:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(is_same_domain(parsed.netloc, host) for host in csrf.allowed_origin_subdomains[parsed.scheme])
