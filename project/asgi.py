"""ASGI entry point of the demo project: Django for HTTP, the chat consumer for ``/ws/chat/``.

HTTP goes through ``streaming.asgi``'s handler: Django's, with a sync view and its middleware run in one
thread hop instead of one per middleware (see that module). WebSockets get the session's user
(``AuthMiddlewareStack``) and must come from a page of one of the ``ALLOWED_HOSTS``
(``AllowedHostsOriginValidator``: a cross-site page cannot use a visitor's session).
"""

from __future__ import annotations

import gc
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

# A worker streaming many replies allocates a few small objects per token: with Python's default
# thresholds the cyclic collector runs hundreds of times a second and, now and then, walks every
# object of the process, which stalls every stream at once. Objects made at start-up (Django, the
# URLconf, the models) are left out of collections for good, and collections come ten times less
# often: at 1,000 streams of 30 tokens/s the p99 gap between tokens went from about 220 ms to 145
# (docs/deployment.md).
gc.collect()
gc.freeze()
gc.set_threshold(20_000, 20, 20)
