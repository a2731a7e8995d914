"""WebSocket routes of the app. A project's ``asgi.py`` routes ``"websocket"`` to
``AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))`` in a channels
``ProtocolTypeRouter``, beside Django's ASGI application for ``"http"`` (see the demo's ``project/asgi.py``).
"""

from __future__ import annotations

from django.urls import path

from streaming.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi(), name="streaming-ws-chat"),
]
