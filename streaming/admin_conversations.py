"""Conversations and messages in the admin, read-only: what was said, how each reply ended, and what it cost.

A message's text is shown in a box that wraps long lines (a 5,000-character line of code included), so a
conversation's page is never wider than the screen; the usage rows are summed per message in the query. A
conversation's page lists every message of every branch, oldest first: an edited message or a regenerated
reply says which version it is ("version 2 of 3": messages with the same parent, by time).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.db.models import Count, F, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from streaming.admin_display import (
    CostReviewStyles,
    ReadOnlyMixin,
    admin_link,
    cost_cell,
    field_display,
    moment,
    moment_lines,
    user_search_fields,
)
from streaming.models import Conversation, Message, Usage
from streaming.templatetags.streaming_costs import ms, tokens, usd

EXCERPT_CHARS = 120
SCROLLS_AFTER_CHARS = 1_000  # a text this long may be taller than its box (24 lines)
SCROLLS_AFTER_LINES = 20


def text_box(text: str, css_class: str = "streaming-text") -> str:
    """A message's text as written (line breaks kept, HTML escaped), wrapped inside its own box. A text that
    may overflow the box's height scrolls in it, and can then be reached and scrolled from the keyboard."""
    if not text:
        return "—"
    if len(text) < SCROLLS_AFTER_CHARS and text.count("\n") < SCROLLS_AFTER_LINES:
        return format_html('<div class="{}">{}</div>', css_class, text)
    return format_html(
        '<div class="{}" tabindex="0" role="region" aria-label="{}">{}</div>', css_class, "Message text", text
    )


def usage_summary(rows: list[Usage]) -> str:
    """``1,000 in (250 cached) / 100 out``, per provider call of the reply."""
    parts = [
        f"{tokens(u.input_tokens)} in"
        + (f" ({tokens(u.cached_input_tokens)} cached)" if u.cached_input_tokens else "")
        + f" / {tokens(u.output_tokens)} out"
        + (" (estimated)" if u.estimated else "")
        for u in rows
    ]
    return "; ".join(parts) or "—"


def author(obj: Message) -> str:
    """Who wrote it; for a reply, how it ended, the model and its time to first token beneath."""
    if obj.role != Message.Role.ASSISTANT:
        return obj.role
    parts = (obj.status, obj.model, ms(obj.ttft_ms) if obj.ttft_ms else "")
    details = " · ".join(part for part in parts if part)
    return format_html('{}<span class="streaming-note">{}</span>', obj.role, details)


def rows_cost(rows: list[Usage]) -> str:
    if not rows:
        return "—"
    if any(u.total_cost is None for u in rows):
        return cost_cell(None)
    return usd(sum((u.total_cost or Decimal(0) for u in rows), Decimal(0)))


class MessageInline(ReadOnlyMixin, admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("sent", "author", "text", "tokens", "cost")
    readonly_fields = fields
    ordering = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        siblings = [F("conversation_id"), F("parent_id")]  # (versions of one another)
        messages: QuerySet[Message] = (
            super()
            .get_queryset(request)
            .annotate(
                version=Window(RowNumber(), partition_by=siblings, order_by=[F("created_at"), F("pk")]),
                versions=Window(Count("pk"), partition_by=siblings),
            )
            .prefetch_related("usage")
        )
        return messages

    @admin.display(description="sent")
    def sent(self, obj: Message) -> str:
        return moment(obj.created_at)

    @admin.display(description="from")
    def author(self, obj: Message) -> str:
        versions = getattr(obj, "versions", 1)
        if versions < 2:
            return author(obj)
        note = f"version {getattr(obj, 'version', 1)} of {versions}"
        return format_html('{}<span class="streaming-note">{}</span>', author(obj), note)

    @admin.display(description="text")
    def text(self, obj: Message) -> str:
        error = f"{obj.error_code}: {obj.error_text}" if obj.error_code or obj.error_text else ""
        if not error:
            return text_box(obj.content)
        return format_html('{}<div class="streaming-error">{}</div>', text_box(obj.content), error)

    @admin.display(description="tokens in / out")
    def tokens(self, obj: Message) -> str:
        return usage_summary(list(obj.usage.all()))

    @admin.display(description="cost")
    def cost(self, obj: Message) -> str:
        return rows_cost(list(obj.usage.all()))


class ConversationAdmin(CostReviewStyles, admin.ModelAdmin):
    list_display = ("title", "owner", "model", "created_at", "updated_at", "cost")
    list_filter = ("model", ("owner", RelatedOnlyFieldListFilter))
    date_hierarchy = "created_at"
    readonly_fields = ("id", "owner", "model", "created_at", "updated_at", "cost")
    fields = ("id", "title", "owner", "model", "created_at", "updated_at", "cost")
    inlines = [MessageInline]
    list_select_related = ("owner",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a conversation starts with a chat, its owner's; the admin reviews and renames it

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["title", *user_search_fields("owner")]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).with_cost()  # type: ignore[attr-defined,no-any-return]

    @admin.display(description="total cost", ordering="total_cost")
    def cost(self, obj: Conversation) -> str:
        return usd(getattr(obj, "total_cost", None))  # the with_cost() annotation: priced usage only


class ReplyModelFilter(admin.SimpleListFilter):
    """The models that wrote replies (a user's message has no model: no empty choice)."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        found = Message.objects.exclude(model="").values_list("model", flat=True).distinct().order_by("model")
        return [(model, model) for model in found]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(model=self.value()) if self.value() else queryset


class MessageAdmin(ReadOnlyMixin, CostReviewStyles, admin.ModelAdmin):
    """Every message of every conversation, to find failed replies, slow models and costly answers."""

    # Five columns, cost second as in the usage list: readable at 1280 px beside the sidebar and filters.
    list_display = ("when", "cost", "sender", "excerpt", "conversation_link")
    ordering = ("-created_at",)
    list_filter = ("status", "role", ReplyModelFilter)
    list_select_related = ("conversation",)
    list_per_page = 100
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["conversation_link", "role", "status", "model", "created_at", "updated_at"]}),
        ("Text", {"fields": ["text", "reasoning_text", "finish_reason", "error_code", "error_text"]}),
        ("Usage", {"fields": ["first_token", "duration", "usage_link", "cost"]}),
    ]
    readonly_fields = ("conversation_link", "text", "reasoning_text", "first_token", "duration", "usage_link",
                       "cost")  # fmt: skip

    first_token = field_display("ttft_ms", "time to first token", ms)
    duration = field_display("duration_ms", "duration", ms)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # a conversation is deleted as a whole, from its own page

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["content", "conversation__title", *user_search_fields("conversation__owner")]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        messages: QuerySet[Message] = (
            super()
            .get_queryset(request)
            .annotate(
                total_cost=Sum("usage__total_cost"),
                calls=Count("usage"),
                unpriced=Count("usage", filter=Q(usage__total_cost__isnull=True)),
            )
        )
        return messages

    @admin.display(description="time", ordering="created_at")
    def when(self, obj: Message) -> str:
        return moment_lines(obj.created_at)

    @admin.display(description="from", ordering="role")
    def sender(self, obj: Message) -> str:
        return author(obj)

    @admin.display(description="conversation", ordering="conversation__title")
    def conversation_link(self, obj: Message) -> str:
        return admin_link(self.admin_site, "conversation", obj.conversation_id, str(obj.conversation))

    @admin.display(description="text")
    def excerpt(self, obj: Message) -> str:
        return Truncator(" ".join(obj.content.split())).chars(EXCERPT_CHARS) or "—"

    @admin.display(description="cost", ordering="total_cost")
    def cost(self, obj: Message) -> str:
        """The summed cost of the message's usage, with a link to those usage rows beneath."""
        if not getattr(obj, "calls", 0):
            return "—"
        amount = cost_cell(None if getattr(obj, "unpriced", 0) else getattr(obj, "total_cost", None))
        return format_html('{}<span class="streaming-note">{}</span>', amount, self.usage_link(obj))

    @admin.display(description="usage")
    def usage_link(self, obj: Message) -> str:
        calls = getattr(obj, "calls", 0)
        if not calls:
            return "—"
        url = reverse(f"{self.admin_site.name}:streaming_usage_changelist")
        label = f"{calls} call" if calls == 1 else f"{calls} calls"
        return format_html('<a href="{}?message__id__exact={}">{}</a>', url, obj.pk, label)

    @admin.display(description="text")
    def text(self, obj: Message) -> str:
        return text_box(obj.content)

    @admin.display(description="reasoning")
    def reasoning_text(self, obj: Message) -> str:
        return text_box(obj.reasoning)
