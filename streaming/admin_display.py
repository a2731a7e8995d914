"""Pieces the admin pages share: read-only model admins, money and counts as cells, times, and links.

Money goes through ``streaming_costs.usd`` everywhere, so a cost reads the same in a list, a detail page and
the cost report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString

from streaming.pricing import FREE, OVERRIDE_PREFIX, UNPRICED
from streaming.templatetags.streaming_costs import usd

CSS = "streaming/admin/costs.css"


class CostReviewStyles:
    """The cost review's stylesheet on a model admin's pages (lists, details, inlines)."""

    class Media:
        css = {"all": [CSS]}


class ReadOnlyMixin:
    """Nothing to add or change: the rows record what happened."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class PlainHelpTexts:
    """The models' help texts are plain text ("override:<id>"); the admin prints help texts as HTML, where
    "<id>" would vanish as an unknown tag. Escaped here, they read as written."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        model = self.model  # type: ignore[attr-defined]
        texts = {field.name: escape(field.help_text) for field in model._meta.fields if field.help_text}
        kwargs["help_texts"] = {**texts, **kwargs.get("help_texts", {})}
        return super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]


def user_search_fields(relation: str) -> list[str]:
    """Search fields for a user relation that exist on the project's user model (which may be custom)."""
    user_model = get_user_model()
    fields = [f"{relation}__{user_model.USERNAME_FIELD}"]
    has_email = "email" in {f.name for f in user_model._meta.get_fields()}
    if has_email and user_model.USERNAME_FIELD != "email":
        fields.append(f"{relation}__email")
    return fields


def cost_cell(amount: Decimal | None) -> str:
    """A stored cost; NULL is a model without a known price, marked so that it is noticed."""
    if amount is None:
        return format_html('<span class="streaming-unpriced">{}</span>', "unpriced")
    return usd(amount)


def moment(value: datetime | None) -> str:
    """A compact local time, ``2026-12-07 14:05``: a list column that does not wrap over three lines."""
    return "—" if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def moment_lines(value: datetime) -> str:
    """The date above the time: the narrowest way to show both in a list column."""
    day, time = moment(value).split(" ")
    return format_html('<span class="streaming-line">{}</span>{}', day, time)


def admin_link(site: admin.AdminSite, model: str, pk: Any, text: str) -> str:
    """A link to an object's admin page, or the bare text when the object is gone or not registered."""
    if pk is None:
        return text
    try:
        url = reverse(f"{site.name}:streaming_{model}_change", args=[pk])
    except NoReverseMatch:
        return text
    return format_html('<a href="{}">{}</a>', url, text)


def price_source_label(source: str, site: admin.AdminSite) -> SafeString | str:
    """``genai-prices 0.2.3``, ``override #3`` (linked), ``free`` or ``unpriced``, as staff read them."""
    if source.startswith(OVERRIDE_PREFIX):
        pk = source.removeprefix(OVERRIDE_PREFIX)
        return admin_link(site, "priceoverride", pk, f"override #{pk}")
    if source == UNPRICED:
        return format_html('<span class="streaming-unpriced">{}</span>', "unpriced")
    if source in ("", FREE):
        return source or "—"
    return source.replace("==", " ")


def field_display(field: str, description: str, show: Callable[[Any], str]) -> Callable[[Any, Any], str]:
    """A read-only column or field that shows a model field through ``show`` (``tokens``, ``cost_cell``,
    ``ms``...), sorted by the field."""

    @admin.display(description=description, ordering=field)
    def display(model_admin: Any, obj: Any) -> str:
        return show(getattr(obj, field))

    return display
