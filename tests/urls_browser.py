"""The demo project's URLs with the app mounted under ``/chat/``, and static files served by Django
whatever the server (gunicorn and uvicorn do not serve them; DEBUG may be off)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.views import serve
from django.urls import include, path, re_path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("chat/", include("streaming.urls")),
    re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}),
]
