"""The admin cost review: usage rows with totals and a CSV export, the cost report, conversations with
their messages' usage and cost, price overrides and per-user budgets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter, RelatedOnlyFieldListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, DecimalField, OuterRef, Q, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from streaming import budgets, cost_report, token_admin  # noqa: F401  (token_admin registers its admin)
from streaming.costs import reprice
from streaming.models import Conversation, Message, PriceOverride, Usage, UserBudget
from streaming.pricing import COST_DECIMAL_PLACES, FREE, OVERRIDE_PREFIX
from streaming.usage_csv import csv_response


def usd(amount: Decimal | None, places: int = 6) -> str:
    """A cost for people: rounded for display (CSV and API keep every stored place)."""
    if amount is None:
        return "unpriced"
    return f"${amount:,.{places}f}"


def _cost_cell(amount: Decimal | None) -> str:
    if amount is None:
        return format_html('<span class="streaming-unpriced" title="{}">unpriced</span>', "No known price")
    return usd(amount)


def user_search_fields(relation: str) -> list[str]:
    """Search fields for a user relation that exist on the project's user model (which may be custom)."""
    user_model = get_user_model()
    fields = [f"{relation}__{user_model.USERNAME_FIELD}"]
    has_email = "email" in {f.name for f in user_model._meta.get_fields()}
    if has_email and user_model.USERNAME_FIELD != "email":
        fields.append(f"{relation}__email")
    return fields


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


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
class UsageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "user",
        "model_id",
        "input",
        "cached",
        "output",
        "estimated",
        "cost",
        "price_source",
    )
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

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the usage log is the audit trail of what was spent

    def has_reprice_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_usage")

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return user_search_fields("user")

    @admin.display(description="model", ordering="model")
    def model_id(self, obj: Usage) -> str:
        return f"{obj.provider}:{obj.model}"

    @admin.display(description="input tokens", ordering="input_tokens")
    def input(self, obj: Usage) -> str:
        return f"{obj.input_tokens:,}"

    @admin.display(description="cached", ordering="cached_input_tokens")
    def cached(self, obj: Usage) -> str:
        return f"{obj.cached_input_tokens:,}"

    @admin.display(description="output tokens", ordering="output_tokens")
    def output(self, obj: Usage) -> str:
        return f"{obj.output_tokens:,}"

    @admin.display(description="cost", ordering="total_cost")
    def cost(self, obj: Usage) -> str:
        return _cost_cell(obj.total_cost)

    @admin.action(description="Re-price selected usage with the prices in force now", permissions=["reprice"])
    def reprice_selected(self, request: HttpRequest, queryset: QuerySet[Usage]) -> None:
        count = reprice(queryset)
        self.message_user(
            request, f"Re-priced {count} usage row(s); their new cost snapshot is stored.", messages.SUCCESS
        )

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("report/", wrap(self.report_view), name=f"{prefix}_report"),
            path("export/", wrap(self.export_view), name=f"{prefix}_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:  # one aggregate over the filtered rows, not the page
            context["totals"] = context["cl"].queryset.aggregate(**USAGE_TOTALS)
        return response

    def report_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = reverse(f"{self.admin_site.name}:streaming_usage_changelist")
        days = cost_report.period_days(request.GET.get("days"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Cost report",
            "opts": self.opts,
            "changelist_url": changelist,
            **cost_report.report(days, changelist),
        }
        return TemplateResponse(request, "admin/streaming/usage/cost_report.html", context)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The rows of the changelist with the same filters, search and date drill-down, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:streaming_usage_changelist"))
        return csv_response(request, changelist.queryset)  # type: ignore[return-value]


class MessageInline(ReadOnlyMixin, admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "role", "status", "model", "content", "tokens", "cost", "error_code", "ttft_ms")
    readonly_fields = fields
    ordering = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).prefetch_related("usage")

    @admin.display(description="tokens in / out")
    def tokens(self, obj: Message) -> str:
        rows = list(obj.usage.all())
        if not rows:
            return "—"
        parts = [
            f"{u.input_tokens:,} ({u.cached_input_tokens:,} cached) / {u.output_tokens:,}"
            + (" (estimated)" if u.estimated else "")
            for u in rows
        ]
        return "; ".join(parts)

    @admin.display(description="cost")
    def cost(self, obj: Message) -> str:
        rows = list(obj.usage.all())
        if not rows:
            return "—"
        if any(u.total_cost is None for u in rows):
            return "unpriced"
        return usd(sum((u.total_cost for u in rows if u.total_cost is not None), Decimal(0)))


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "model", "created_at", "updated_at", "cost")
    list_filter = ("model",)
    date_hierarchy = "created_at"
    readonly_fields = ("id", "owner", "model", "created_at", "updated_at", "cost")
    fields = ("id", "title", "owner", "model", "created_at", "updated_at", "cost")
    inlines = [MessageInline]
    list_select_related = ("owner",)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["title", *user_search_fields("owner")]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).with_cost()  # type: ignore[attr-defined,no-any-return]

    @admin.display(description="total cost", ordering="total_cost")
    def cost(self, obj: Conversation) -> str:
        total = getattr(obj, "total_cost", None)  # the with_cost() annotation: priced usage only
        return "—" if total is None else usd(total)


@admin.register(PriceOverride)
class PriceOverrideAdmin(admin.ModelAdmin):
    list_display = (
        "provider",
        "model",
        "valid_from",
        "input_per_mtok",
        "cache_read_per_mtok",
        "cache_write_per_mtok",
        "output_per_mtok",
        "note",
    )
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


@admin.register(UserBudget)
class UserBudgetAdmin(admin.ModelAdmin):
    list_display = ("user", "monthly_usd", "spent_this_month", "note", "updated_at")
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
        return super().get_queryset(request).annotate(spent=Subquery(spend, output_field=cost))

    @admin.display(description="spent this month")
    def spent_this_month(self, obj: UserBudget) -> str:
        return usd(getattr(obj, "spent", None) or Decimal(0), places=2)
