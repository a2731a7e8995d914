"""The admin cost report: any period (shortcuts or dates, bad dates answered with a message), spend per day
as a chart with its table, spend by model, provider and user linking to the filtered usage list, tokens,
time to first token and error rate by model, a user's drill-down, one money format, and a query count that
does not depend on the number of rows."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from streaming.models import Conversation, Message, Usage
from tests.costs import d, usage_row

pytestmark = pytest.mark.django_db

REPORT = "/admin/streaming/usage/report/"


def user_page(user: Any) -> str:
    return f"{REPORT}user/{user.pk}/"


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
    assert len(context["period"].days) == 7
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
    assert "<strong>$1.10</strong>" in page
    assert "openai:gpt-4.1-mini" in page
    assert 'class="unpriced"' in page


def test_a_small_spend_is_never_shown_as_zero(admin_client: Client, user: Any) -> None:
    """The headline, the tables and the day's row write the same $0.0019."""
    usage_row(user, "openai", "gpt-4.1-mini", input_tokens=2_000, output_tokens=687)  # 0.0008 + 0.0010992
    page = admin_client.get(REPORT).content.decode()
    assert "<strong>$0.0019</strong>" in page
    assert "$0.00</strong>" not in page
    assert page.count("$0.0019") >= 4  # headline, by model, by provider, by user (and the day's row)


# -- the period ------------------------------------------------------------------------------------------


def test_the_period_is_selectable_by_shortcut_or_dates(admin_client: Client, spending: None) -> None:
    assert admin_client.get(REPORT, {"days": "30"}).context["totals"]["cost"] == d("2.1")
    assert admin_client.get(REPORT, {"days": "90"}).context["totals"]["requests"] == 5
    page = admin_client.get(REPORT).content.decode()
    for days in (7, 30, 90):
        assert f'href="?days={days}"' in page
    assert re.search(r'<a href="\?days=30" class="current" aria-current="page">Last 30 days</a>', page)

    today = timezone.localdate()
    three_days_ago = today - timedelta(days=3)
    response = admin_client.get(REPORT, {"start": str(three_days_ago), "end": str(three_days_ago)})
    assert response.context["totals"]["cost"] == d("0.3")
    assert [bar.day for bar in response.context["chart"].bars] == [three_days_ago]
    page = response.content.decode()
    assert f'value="{three_days_ago:%Y-%m-%d}"' in page
    assert 'class="current"' not in page  # not one of the shortcuts
    long_ago = admin_client.get(REPORT, {"start": str(today - timedelta(days=250)), "end": str(today)})
    assert long_ago.context["totals"]["requests"] == 6
    only_start = admin_client.get(REPORT, {"start": str(today - timedelta(days=3))}).context["period"]
    assert (only_start.first, only_start.last) == (today - timedelta(days=3), today)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"days": "banana"}, "Choose the last 7, 30 or 90 days, or dates."),
        ({"days": "5000"}, "Choose the last 7, 30 or 90 days, or dates."),
        ({"start": "2026-02-30"}, "Enter a valid date."),
        ({"start": "yesterday", "end": "today"}, "Enter a valid date."),
        ({"start": "2026-11-10", "end": "2026-11-01"}, "The start date is after the end date."),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "Choose at most 366 days."),
        ({"start": "0001-01-01", "end": "0001-01-02"}, "Enter a date from 2000 to 2999."),
        ({"end": "9999-12-31"}, "Enter a date from 2000 to 2999."),
    ],
)
def test_bad_dates_are_a_message_not_an_error(
    admin_client: Client, spending: None, query: dict[str, str], message: str
) -> None:
    response = admin_client.get(REPORT, query)
    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert "below are the last 30 days" in page
    assert response.context["totals"]["cost"] == d("2.1")  # the default period meanwhile


# -- the chart and its numbers ---------------------------------------------------------------------------


def test_the_chart_has_a_bar_per_day_and_a_table_of_its_numbers(admin_client: Client, spending: None) -> None:
    response = admin_client.get(REPORT, {"days": "7"})
    chart = response.context["chart"]
    assert [bar.day for bar in chart.bars] == [timezone.localdate() - timedelta(days=6 - i) for i in range(7)]
    amounts = {bar.day: bar.amount for bar in chart.bars}
    assert amounts[timezone.localdate()] == d("0.8")
    assert amounts[timezone.localdate() - timedelta(days=3)] == d("0.3")
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert tallest.day == timezone.localdate()
    assert tallest.y + tallest.height == 100  # standing on the baseline
    assert chart.ticks == ["$1.00", "$0.75", "$0.50", "$0.25", "$0.00"]  # 0.8 rounds up to $1
    page = response.content.decode()
    svg = page[page.index('<svg class="plot"') :]
    svg = svg[: svg.index("</svg>")]
    assert svg.count("<rect") == 2  # the days with spend
    assert 'role="img"' in svg
    assert "$0.80 (2 requests)" in svg  # the bar's tooltip
    table = page[page.index('<details class="day-table">') :]
    table = table[: table.index("</details>")]
    assert table.count("<tr>") == 1 + 7  # the header, then every day, spent or not
    assert f"{timezone.localdate():%a %b} {timezone.localdate().day}, {timezone.localdate().year}" in table
    assert "$0.80" in table and "$0.30" in table


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


# -- tokens, time to first token and errors by model ------------------------------------------------------


def test_tokens_by_model(admin_client: Client, user: Any) -> None:
    usage_row(user, "openai", "gpt-4.1-mini", input_tokens=9_000, output_tokens=1_000)
    usage_row(user, "anthropic", "claude-haiku-4-5", input_tokens=500, output_tokens=20_000)
    rows = admin_client.get(REPORT).context["tokens"]
    assert [(r["model"], r["input_tokens"], r["output_tokens"]) for r in rows] == [
        ("claude-haiku-4-5", 500, 20_000),
        ("gpt-4.1-mini", 9_000, 1_000),
    ]
    assert rows[0]["output_tokens_share"] == 100  # bars on one scale for input and output
    assert rows[1]["input_tokens_share"] == 45


def test_first_token_percentiles_by_model(admin_client: Client, user: Any) -> None:
    for ttft in [*range(100, 1100, 100), 5_000]:  # eleven calls: p50 600 ms, p95 the slow one
        Usage.objects.filter(pk=usage_row(user, "openai", "gpt-4.1-mini").pk).update(ttft_ms=ttft)
    for ttft in (42, 1_234, 123_456):
        Usage.objects.filter(pk=usage_row(user, "gemini", "gemini-2.5-flash").pk).update(ttft_ms=ttft)
    usage_row(user, "anthropic", "claude-haiku-4-5")  # not timed: no row
    response = admin_client.get(REPORT)
    assert [(r["model"], r["calls"], r["p50"], r["p95"]) for r in response.context["first_token"]] == [
        ("gemini:gemini-2.5-flash", 3, 1_200, 120_000),  # two significant digits
        ("openai:gpt-4.1-mini", 11, 600, 5_000),
    ]
    page = response.content.decode()
    assert "600 ms" in page and "120,000 ms" in page


def test_error_rate_by_model(admin_client: Client, user: Any) -> None:
    talk = Conversation.objects.create(owner=user, model="openai:gpt-4.1-mini")
    statuses = {
        "openai:gpt-4.1-mini": ["complete"] * 3 + ["error"],
        "gemini:gemini-2.5-flash": ["complete"] * 5,
    }
    for model, ends in statuses.items():
        for status in ends:
            Message.objects.create(conversation=talk, role="assistant", model=model, status=status)
    Message.objects.create(
        conversation=talk, role="assistant", model="openai:gpt-4.1-mini", status="streaming"
    )
    Message.objects.create(conversation=talk, role="user", content="hi")
    response = admin_client.get(REPORT)
    assert [(r["model"], r["replies"], r["errors"], r["label"]) for r in response.context["errors"]] == [
        ("openai:gpt-4.1-mini", 4, 1, "25%"),  # the reply still streaming is not counted yet
        ("gemini:gemini-2.5-flash", 5, 0, "0%"),
    ]
    assert "25%" in response.content.decode()


# -- one user ---------------------------------------------------------------------------------------------


def test_a_users_page_shows_their_spend_models_and_conversations(
    admin_client: Client, spending: None, user: Any, other_user: Any
) -> None:
    talk = Conversation.objects.create(owner=user, model="openai:gpt-4.1-mini", title="Costly chat")
    Usage.objects.filter(user=user, model="gpt-4.1-mini").update(conversation=talk)
    report = admin_client.get(REPORT, {"days": "7"})
    assert report.context["by_user"][0]["page"].startswith(f"{user_page(user)}?start=")
    response = admin_client.get(user_page(user), {"days": "30"})
    assert response.status_code == 200
    context = response.context
    assert context["totals"]["cost"] == d("1.8")  # 0.8 this week, 1 twenty days ago; nothing of bob's
    assert [(r["model"], r["cost"]) for r in context["by_model"]] == [
        ("claude-haiku-4-5", d("1")),
        ("gpt-4.1-mini", d("0.8")),
    ]
    assert [(r["title"], r["cost"], r["requests"]) for r in context["conversations"]] == [
        (None, d("1"), 1),  # usage outside any conversation
        ("Costly chat", d("0.8"), 2),
    ]
    page = response.content.decode()
    assert "Cost report: alice" in page
    assert f'href="/admin/streaming/conversation/{talk.pk}/change/"' in page
    listing = admin_client.get(context["period_link"])
    assert listing.context["cl"].result_count == 3  # alice's rows in the period, linked from her page


def test_an_unknown_user_is_a_404(admin_client: Client) -> None:
    assert admin_client.get(f"{REPORT}user/999999/").status_code == 404
    assert admin_client.get(f"{REPORT}user/not-a-number/").status_code == 404


def test_a_users_page_needs_the_view_permission(django_user_model: Any, user: Any) -> None:
    staff = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(user_page(user)).status_code == 403


# -- queries ---------------------------------------------------------------------------------------------


def add_rows(django_user_model: Any, count: int, users: int) -> list[Any]:
    """``count`` usage rows and replies over 89 days, by ``users`` new users, 7 models and 3 providers."""
    people = [django_user_model.objects.create_user(f"u{Usage.objects.count()}-{i}") for i in range(users)]
    talks = [Conversation.objects.create(owner=person, model="openai:model-0") for person in people]
    now = timezone.now()
    Message.objects.bulk_create(
        Message(conversation=talks[i % users], role="assistant", model=f"openai:model-{i % 7}",
                status=("complete", "error")[i % 2], created_at=now - timedelta(hours=i % (24 * 89)))
        for i in range(count)
    )  # fmt: skip
    Usage.objects.bulk_create(
        Usage(
            user=people[i % users],
            conversation=talks[i % users],
            provider=("openai", "anthropic", "gemini")[i % 3],
            model=f"model-{i % 7}",
            input_tokens=1000,
            output_tokens=100,
            ttft_ms=50 + i * 37 % 20_000,
            total_cost=Decimal("0.001"),
            price_source="genai-prices==0.2.3",
            created_at=now - timedelta(hours=i % (24 * 89)),
        )
        for i in range(count)
    )
    return people


def test_the_report_runs_the_same_queries_for_ten_rows_or_thousands(
    admin_client: Client, django_user_model: Any, django_assert_max_num_queries: Any
) -> None:
    """Session and user, then five aggregates: per day, by model, first-token histogram, errors, users."""
    add_rows(django_user_model, 10, 2)
    with django_assert_max_num_queries(7) as small:
        admin_client.get(REPORT, {"days": "90"})
    add_rows(django_user_model, 3000, 60)
    with django_assert_max_num_queries(7) as large:
        response = admin_client.get(REPORT, {"days": "90"})
    assert len(small.captured_queries) == len(large.captured_queries)
    assert response.context["totals"]["requests"] == 3010
    assert len(response.context["by_user"]) == 50  # the top spenders; the list has the rest
    assert len(response.context["first_token"]) == 21  # 3 providers x 7 models
    assert sum(row["replies"] for row in response.context["errors"]) == 3010


def test_a_users_page_runs_the_same_queries_for_ten_rows_or_thousands(
    admin_client: Client, django_user_model: Any, django_assert_max_num_queries: Any
) -> None:
    """Session, user, the person, then five aggregates: per day, by model, histogram, errors and
    conversations."""
    person = add_rows(django_user_model, 10, 1)[0]
    with django_assert_max_num_queries(8) as small:
        admin_client.get(user_page(person), {"days": "90"})
    Usage.objects.update(user=person)
    add_rows(django_user_model, 3000, 1)
    Usage.objects.update(user=person)
    with django_assert_max_num_queries(8) as large:
        response = admin_client.get(user_page(person), {"days": "90"})
    assert len(small.captured_queries) == len(large.captured_queries)
    assert response.context["totals"]["requests"] == 3010
