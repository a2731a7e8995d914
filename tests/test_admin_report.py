"""The admin cost report: spend per day as an SVG chart, tables by model, provider and user that link to the
filtered usage list, and a query count that does not depend on the number of rows."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from streaming.cost_report import money_label, nice_ceiling, spend_chart
from streaming.models import Usage
from tests.costs import d, usage_row

pytestmark = pytest.mark.django_db

REPORT = "/admin/streaming/usage/report/"


@pytest.fixture
def spending(user: Any, other_user: Any) -> None:
    now = timezone.now()
    usage_row(user, "openai", "gpt-4.1-mini", input_tokens=1_000_000, output_tokens=0, at=now)  # $0.40
    usage_row(user, "openai", "gpt-4.1-mini", input_tokens=1_000_000, output_tokens=0, at=now)  # $0.40
    usage_row(
        other_user,
        "gemini",
        "gemini-2.5-flash",
        input_tokens=1_000_000,
        output_tokens=0,
        at=now - timedelta(days=3),
    )  # $0.30
    usage_row(other_user, "openai", "no-such-model", at=now - timedelta(days=3))  # unpriced
    usage_row(
        user,
        "anthropic",
        "claude-haiku-4-5",
        input_tokens=1_000_000,
        output_tokens=0,
        at=now - timedelta(days=20),
    )  # $1, inside 30 days only
    usage_row(
        user,
        "anthropic",
        "claude-haiku-4-5",
        input_tokens=1_000_000,
        output_tokens=0,
        at=now - timedelta(days=200),
    )  # outside every period


def test_the_report_shows_spend_by_day_model_provider_and_user(admin_client: Client, spending: None) -> None:
    response = admin_client.get(REPORT, {"days": "7"})
    assert response.status_code == 200
    context = response.context
    assert context["days"] == 7
    assert context["totals"]["cost"] == d("1.1")
    assert context["totals"]["unpriced"] == 1
    assert [(r["provider"], r["model"], r["cost"]) for r in context["by_model"]] == [
        ("openai", "gpt-4.1-mini", d("0.8")),
        ("gemini", "gemini-2.5-flash", d("0.3")),
        ("openai", "no-such-model", None),
    ]
    assert [(r["provider"], r["cost"], r["requests"]) for r in context["by_provider"]] == [
        ("openai", d("0.8"), 3),
        ("gemini", d("0.3"), 1),
    ]
    assert [(r["username"], r["cost"]) for r in context["by_user"]] == [
        ("alice", d("0.8")),
        ("bob", d("0.3")),
    ]
    page = response.content.decode()
    assert "$1.10" in page
    assert "openai:gpt-4.1-mini" in page
    assert 'class="unpriced"' in page


def test_the_period_is_selectable(admin_client: Client, spending: None) -> None:
    assert admin_client.get(REPORT, {"days": "30"}).context["totals"]["cost"] == d("2.1")
    assert admin_client.get(REPORT, {"days": "90"}).context["totals"]["requests"] == 5
    assert admin_client.get(REPORT, {"days": "banana"}).context["days"] == 30
    assert admin_client.get(REPORT, {"days": "5000"}).context["days"] == 30
    page = admin_client.get(REPORT).content.decode()
    for days in (7, 30, 90):
        assert f'href="?days={days}"' in page


def test_the_chart_is_an_svg_with_a_bar_per_day(admin_client: Client, spending: None) -> None:
    response = admin_client.get(REPORT, {"days": "7"})
    chart = response.context["chart"]
    assert [bar.day for bar in chart.bars] == [timezone.localdate() - timedelta(days=6 - i) for i in range(7)]
    costs = {bar.day: bar.cost for bar in chart.bars}
    assert costs[timezone.localdate()] == d("0.8")
    assert costs[timezone.localdate() - timedelta(days=3)] == d("0.3")
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert tallest.day == timezone.localdate()
    assert tallest.y + tallest.height == chart.baseline
    page = response.content.decode()
    svg = page[page.index('<svg class="chart"') :]
    svg = svg[: svg.index("</svg>")]
    assert svg.count("<rect") == 7
    assert 'role="img"' in svg
    assert "$0.8000 (2 requests)" in svg  # the bar's tooltip
    assert "$1" in svg  # the top gridline: 0.8 rounds up to $1


def test_each_table_row_links_to_the_filtered_usage_list(admin_client: Client, spending: None) -> None:
    context = admin_client.get(REPORT, {"days": "7"}).context
    expected = {
        context["by_model"][0]["link"]: 2,  # openai:gpt-4.1-mini
        context["by_provider"][0]["link"]: 3,  # openai
        context["by_user"][1]["link"]: 2,  # bob
        context["unpriced_link"]: 1,
        context["period_link"]: 4,
    }
    for link, count in expected.items():
        assert link.startswith("/admin/streaming/usage/?")
        listing = admin_client.get(link)
        assert listing.status_code == 200, link
        assert listing.context["cl"].result_count == count, link
    page = admin_client.get(REPORT, {"days": "7"}).content.decode()
    assert re.search(
        r'href="/admin/streaming/usage/\?provider=openai&amp;model=gpt-4.1-mini&amp;created_at__gte=', page
    )


def test_the_report_runs_the_same_queries_for_ten_rows_or_thousands(
    admin_client: Client, user: Any, django_user_model: Any, django_assert_max_num_queries: Any
) -> None:
    def add_rows(count: int, users: int) -> None:
        people = [
            django_user_model.objects.create_user(f"u{len(Usage.objects.all())}-{i}") for i in range(users)
        ]
        now = timezone.now()
        Usage.objects.bulk_create(
            Usage(
                user=people[i % users],
                provider=("openai", "anthropic", "gemini")[i % 3],
                model=f"model-{i % 7}",
                input_tokens=1000,
                output_tokens=100,
                total_cost=Decimal("0.001"),
                price_source="genai-prices==0.2.3",
                created_at=now - timedelta(hours=i % (24 * 89)),
            )
            for i in range(count)
        )

    add_rows(10, 2)
    with django_assert_max_num_queries(10) as small:
        admin_client.get(REPORT, {"days": "90"})
    add_rows(3000, 60)
    with django_assert_max_num_queries(10) as large:
        response = admin_client.get(REPORT, {"days": "90"})
    assert len(small.captured_queries) == len(large.captured_queries)
    assert response.context["totals"]["requests"] == 3010
    assert len(response.context["by_user"]) == 50  # the top spenders; the list has the rest


def test_nice_ceilings_and_labels() -> None:
    assert [nice_ceiling(Decimal(v)) for v in ("0", "0.8", "1", "1.2", "2.2", "3", "7", "0.013", "120")] == [
        Decimal(v) for v in ("1", "1", "1", "2", "2.5", "5", "10", "0.02", "200")
    ]
    assert [money_label(Decimal(v)) for v in ("0", "0.25", "2.5", "1250")] == [
        "$0",
        "$0.25",
        "$2.5",
        "$1,250",
    ]


def test_a_chart_with_no_spend_is_flat_and_says_so() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(30)]
    chart = spend_chart(days, {})
    assert chart.empty
    assert {bar.height for bar in chart.bars} == {0}
    assert len(chart.x_labels) <= 10
    assert chart.x_labels[-1][1] == "Nov 30"
