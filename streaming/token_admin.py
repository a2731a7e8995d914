"""The admin of API tokens: listed by name, owner and prefix with when each was last used; created for a
user (the token is shown once, on the page that answers the form, and never stored or logged), and
revoked by an action (a revoked token stays listed and opens nothing)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from streaming.models import ApiToken

SHOWN = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
        if self.value() in ("active", "revoked"):
            return queryset.filter(revoked_at__isnull=self.value() == "active")
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [StatusFilter, "created_at"]
    search_fields = ["name", "prefix"]
    raw_id_fields = ["user"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[Any]:
        return ["user", "name"] if obj is None else SHOWN

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        return [] if obj is None else [field for field in SHOWN if field != "name"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if not change:
            obj.raw_token = obj.new_secret()  # type: ignore[attr-defined]  # (for response_add, this request only)
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The new token, once, on this page (not through a redirect and a message: those would keep it
        in the session or a cookie)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"API token {obj.name!r} created",
            "token": obj,
            "raw_token": obj.raw_token,  # type: ignore[attr-defined]
        }
        return TemplateResponse(request, "admin/streaming/apitoken/created.html", context)

    @admin.action(description="Revoke the selected API tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} API token{'s' * (revoked != 1)}.", messages.SUCCESS)
