"""The admin cost review: usage rows with totals and a CSV export, the cost report, conversations and
messages with their usage and cost, price overrides and per-user budgets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter, RelatedOnlyFieldListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Count, DecimalField, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, reverse
from django.utils.html import format_html, format_html_join

from streaming import budgets, token_admin  # noqa: F401  (token_admin registers its admin)
from streaming.admin_conversations import ConversationAdmin, MessageAdmin
from streaming.admin_display import (
    CostReviewStyles,
    PlainHelpTexts,
    ReadOnlyMixin,
    admin_link,
    cost_cell,
    field_display,
    moment_lines,
    price_source_label,
    user_search_fields,
)
from streaming.admin_report import CostReportViews
from streaming.costs import reprice
from streaming.models import Conversation, Message, PriceOverride, Usage, UserBudget
from streaming.pricing import COST_DECIMAL_PLACES, FREE, OVERRIDE_PREFIX, PRICE_KEYS
from streaming.templatetags.streaming_costs import ms, tokens, usd
from streaming.usage_csv import csv_response

admin.site.register(Conversation, ConversationAdmin)
admin.site.register(Message, MessageAdmin)


class PriceFilter(admin.SimpleListFilter):
    title = "price"
    parameter_name = "price"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("unpriced", "Unpriced (no known price)"),
            ("priced", "Priced"),
            ("override", "Priced by an override"),
            ("free", "Free provider"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "unpriced":
            return queryset.filter(total_cost__isnull=True)
        if value == "priced":
            return queryset.filter(total_cost__isnull=False)
        if value == "override":
            return queryset.filter(price_source__startswith=OVERRIDE_PREFIX)
        if value == "free":
            return queryset.filter(price_source=FREE)
        return queryset


USAGE_TOTALS = {
    "requests": Count("id"),
    "input_tokens": Sum("input_tokens"),
    "cached_input_tokens": Sum("cached_input_tokens"),
    "cache_write_tokens": Sum("cache_write_tokens"),
    "output_tokens": Sum("output_tokens"),
    "reasoning_tokens": Sum("reasoning_tokens"),
    "input_usd": Sum("input_cost"),
    "output_usd": Sum("output_cost"),
    "total_usd": Sum("total_cost"),
    "unpriced": Count("id", filter=Q(total_cost__isnull=True)),
    "estimated_rows": Count("id", filter=Q(estimated=True)),
}


@admin.register(Usage)
class UsageAdmin(CostReportViews, PlainHelpTexts, ReadOnlyMixin, CostReviewStyles, admin.ModelAdmin):
    # Five narrow columns, cost second: the list fits 1280 px beside the admin's sidebar and filters, and
    # a phone sees the cost before it scrolls sideways. Where a price came from is in the cost cell.
    list_display = ("when", "cost", "user", "model_id", "token_counts")
    list_filter = (
        "provider",
        "model",
        ("user", RelatedOnlyFieldListFilter),
        ("created_at", DateFieldListFilter),
        "estimated",
        PriceFilter,
    )
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    actions = ["reprice_selected"]
    list_per_page = 100
    fieldsets = [
        (None, {"fields": ["created_at", "user", "conversation_link", "message_link", "provider", "model"]}),
        ("Tokens", {"fields": ["input_count", "cached_count", "cache_write_count", "output_count",
                               "reasoning_count", "estimated"]}),
        ("Time", {"fields": ["first_token", "duration"]}),
        ("Cost snapshot", {"fields": ["total", "input_cost_usd", "output_cost_usd", "price_source",
                                      "prices", "priced_at"]}),
    ]  # fmt: skip
    readonly_fields = (
        "conversation_link", "message_link", "input_count", "cached_count", "cache_write_count",
        "output_count", "reasoning_count", "first_token", "duration", "total", "input_cost_usd",
        "output_cost_usd", "prices",
    )  # fmt: skip

    input_count = field_display("input_tokens", "input tokens (cache reads and writes included)", tokens)
    cached_count = field_display("cached_input_tokens", "cache reads", tokens)
    cache_write_count = field_display("cache_write_tokens", "cache writes", tokens)
    output_count = field_display("output_tokens", "output tokens (reasoning included)", tokens)
    reasoning_count = field_display("reasoning_tokens", "reasoning tokens", tokens)
    total = field_display("total_cost", "total cost", cost_cell)
    first_token = field_display("ttft_ms", "time to first token", ms)
    duration = field_display("duration_ms", "duration", ms)
    input_cost_usd = field_display("input_cost", "input cost", cost_cell)
    output_cost_usd = field_display("output_cost", "output cost", cost_cell)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the usage log is the audit trail of what was spent

    def has_reprice_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_usage")

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return user_search_fields("user")

    @admin.display(description="time", ordering="created_at")
    def when(self, obj: Usage) -> str:
        return moment_lines(obj.created_at)

    @admin.display(description="model", ordering="model")
    def model_id(self, obj: Usage) -> str:
        return format_html("{}:<wbr>{}", obj.provider, obj.model)  # breaks after the provider, if at all

    @admin.display(description="cost", ordering="total_cost")
    def cost(self, obj: Usage) -> str:
        """The cost, and where its price came from when that is not the bundled price data."""
        source = obj.price_source
        if obj.total_cost is None or not (source == FREE or source.startswith(OVERRIDE_PREFIX)):
            return cost_cell(obj.total_cost)
        label = price_source_label(source, self.admin_site)
        return format_html('{}<span class="streaming-note">{}</span>', cost_cell(obj.total_cost), label)

    @admin.display(description="tokens", ordering="input_tokens")
    def token_counts(self, obj: Usage) -> str:
        """In and out on short lines, then the cached part and whether the counts are estimates."""
        lines = [(f"{tokens(obj.input_tokens)} in", ""), (f"{tokens(obj.output_tokens)} out", "")]
        if obj.cached_input_tokens:
            lines.append((f"{tokens(obj.cached_input_tokens)} cached", " streaming-note"))
        if obj.estimated:
            lines.append(("estimated", " streaming-note"))
        return format_html_join("", '<span class="streaming-line{1}">{0}</span>', lines)

    @admin.display(description="conversation")
    def conversation_link(self, obj: Usage) -> str:
        if obj.conversation_id is None:
            return "— (deleted)" if obj.message_id is None else "—"
        return admin_link(self.admin_site, "conversation", obj.conversation_id, str(obj.conversation))

    @admin.display(description="message")
    def message_link(self, obj: Usage) -> str:
        if obj.message_id is None:
            return "—"
        return admin_link(self.admin_site, "message", obj.message_id, str(obj.message_id))

    @admin.display(description="unit prices (USD per million tokens)")
    def prices(self, obj: Usage) -> str:
        stored = obj.unit_prices or {}  # (PostgreSQL's jsonb keeps no order: the price list's is used)
        keys = [key for key in PRICE_KEYS if key in stored] + sorted(set(stored) - set(PRICE_KEYS))
        found = [(key.removesuffix("_mtok").replace("_", " "), usd(stored[key])) for key in keys]
        if not found:
            return "—"
        return format_html_join(", ", "{} {}", found)

    @admin.action(description="Re-price selected usage with the prices in force now", permissions=["reprice"])
    def reprice_selected(self, request: HttpRequest, queryset: QuerySet[Usage]) -> None:
        count = reprice(queryset)
        self.message_user(
            request, f"Re-priced {count} usage row(s); their new cost snapshot is stored.", messages.SUCCESS
        )

    def get_urls(self) -> list[URLPattern]:
        return [*self.report_urls(), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:  # one aggregate over the filtered rows, not the page
            context["totals"] = context["cl"].queryset.aggregate(**USAGE_TOTALS)
        return response

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The rows of the changelist with the same filters, search and date drill-down, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:streaming_usage_changelist"))
        return csv_response(request, changelist.queryset)  # type: ignore[return-value]


def per_mtok(price: Decimal | None) -> str:
    return usd(price, missing="as input")  # an empty cache price charges the input price


@admin.register(PriceOverride)
class PriceOverrideAdmin(CostReviewStyles, admin.ModelAdmin):
    list_display = ("provider", "model", "valid_from", "input", "cache_read", "cache_write", "output", "note")
    list_filter = ("provider",)
    search_fields = ("provider", "model", "note")
    date_hierarchy = "valid_from"
    fieldsets = [
        (
            None,
            {
                "fields": ["provider", "model", "valid_from", "note"],
                "description": "Requests made from valid-from on are priced with these rates instead of the "
                "bundled price data. Costs already stored do not change: re-price them from the usage list.",
            },
        ),
        (
            "USD per million tokens",
            {"fields": ["input_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok", "output_per_mtok"]},
        ),
    ]

    input = field_display("input_per_mtok", "input / M tokens", per_mtok)
    cache_read = field_display("cache_read_per_mtok", "cache read / M", per_mtok)
    cache_write = field_display("cache_write_per_mtok", "cache write / M", per_mtok)
    output = field_display("output_per_mtok", "output / M tokens", per_mtok)


@admin.register(UserBudget)
class UserBudgetAdmin(CostReviewStyles, admin.ModelAdmin):
    list_display = ("user", "limit", "spent_this_month", "note", "updated_at")
    raw_id_fields = ("user",)
    list_select_related = ("user",)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return [*user_search_fields("user"), "note"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserBudget]:
        spend = (
            Usage.objects.filter(user_id=OuterRef("user_id"), created_at__gte=budgets.month_start())
            .values("user_id")
            .annotate(spent=Sum("total_cost"))
            .values("spent")
        )
        cost = DecimalField(max_digits=30, decimal_places=COST_DECIMAL_PLACES)
        budgets_: QuerySet[UserBudget] = super().get_queryset(request)
        return budgets_.annotate(spent=Subquery(spend, output_field=cost))

    @admin.display(description="monthly budget", ordering="monthly_usd")
    def limit(self, obj: UserBudget) -> str:
        return usd(obj.monthly_usd, missing="no limit")

    @admin.display(description="spent this month", ordering="spent")
    def spent_this_month(self, obj: UserBudget) -> str:
        return usd(getattr(obj, "spent", None) or Decimal(0))
