"""ASGI entry point of the demo project: Django for HTTP, the chat consumer for ``/ws/chat/``.

HTTP goes through ``streaming.asgi``'s handler: Django's, with a sync view and its middleware run in one
thread hop instead of one per middleware (see that module). WebSockets get the session's user
(``AuthMiddlewareStack``) and must come from a page of one of the ``ALLOWED_HOSTS``
(``AllowedHostsOriginValidator``: a cross-site page cannot use a visitor's session).
"""

from __future__ import annotations

import os

from streaming.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Set Django up before importing anything that touches models (the consumer, the auth middleware).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from streaming.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
