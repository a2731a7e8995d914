"""Conversations with their messages read-only, and the usage rows. The cost review builds on this."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from streaming.models import Conversation, Message, Usage


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class MessageInline(ReadOnlyMixin, admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "role", "status", "model", "content", "reasoning", "error_code", "ttft_ms")
    readonly_fields = fields
    ordering = ("created_at",)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "model", "created_at", "updated_at")
    list_filter = ("model",)
    search_fields = ("title", "owner__username", "owner__email")
    date_hierarchy = "created_at"
    readonly_fields = ("id", "owner", "model", "created_at", "updated_at")
    fields = ("id", "title", "owner", "model", "created_at", "updated_at")
    inlines = [MessageInline]
    list_select_related = ("owner",)


@admin.register(Usage)
class UsageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "user",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "estimated",
    )
    list_filter = ("provider", "model", "estimated")
    search_fields = ("user__username", "user__email")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
