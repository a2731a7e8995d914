"""The demo project's URLs with the app mounted under ``/chat/`` (the page must not assume the site root).
Static files come from the demo's WhiteNoise middleware, under every server."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("chat/", include("streaming.urls")),
]
