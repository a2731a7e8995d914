"""The admin cost review: the usage list (filters, totals, CSV export, re-price), the cost report and its
query bound, conversations with their messages' cost, price overrides and budgets; staff only."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import AsyncClient, Client
from django.utils import timezone

from streaming.models import Conversation, Message, PriceOverride, Usage, UserBudget
from tests.costs import d, usage_row

pytestmark = pytest.mark.django_db

USAGE = "/admin/streaming/usage/"
REPORT = "/admin/streaming/usage/report/"
EXPORT = "/admin/streaming/usage/export/"


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def rows(user: Any, other_user: Any) -> list[Usage]:
    """Four priced calls, one unknown model, one estimated; spread over three providers and two users."""
    now = timezone.now()
    return [
        usage_row(user, "openai", "gpt-4.1-mini", input_tokens=1_000_000, output_tokens=0, at=now),
        usage_row(user, "anthropic", "claude-haiku-4-5", input_tokens=10_000, cached_input_tokens=6_000,
                  cache_write_tokens=2_000, output_tokens=1_000, at=now - timedelta(days=1)),
        usage_row(other_user, "gemini", "gemini-2.5-flash", input_tokens=1_000_000, output_tokens=0,
                  estimated=True, at=now - timedelta(days=2)),
        usage_row(other_user, "openai", "no-such-model", input_tokens=500, output_tokens=50, at=now),
    ]  # fmt: skip


# -- access ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [USAGE, REPORT, EXPORT, "/admin/streaming/conversation/"])
def test_pages_are_refused_to_users_who_are_not_staff(api: Client, url: str) -> None:
    response = api.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", [USAGE, REPORT, EXPORT])
def test_staff_without_the_view_permission_get_403(django_user_model: Any, url: str) -> None:
    staff = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(url).status_code == 403


def test_staff_with_the_view_permission_see_the_review(django_user_model: Any, rows: list[Usage]) -> None:
    staff = django_user_model.objects.create_user("auditor", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_usage"))
    client = Client()
    client.force_login(staff)
    assert client.get(USAGE).status_code == 200
    assert client.get(REPORT).status_code == 200
    assert len(csv_rows(client.get(EXPORT))) == 4
    # Viewing is not re-pricing: the action needs the change permission.
    assert "reprice_selected" not in client.get(USAGE).content.decode()


# -- the usage list -------------------------------------------------------------------------------------


def test_the_usage_list_is_read_only(admin_client: Client, rows: list[Usage]) -> None:
    page = admin_client.get(USAGE).content.decode()
    assert "Add usage" not in page
    assert admin_client.get(f"{USAGE}add/").status_code == 403
    detail = admin_client.get(f"{USAGE}{rows[0].pk}/change/")
    assert detail.status_code == 200
    assert b'name="input_tokens"' not in detail.content  # no form fields, only values
    assert admin_client.post(f"{USAGE}{rows[0].pk}/delete/").status_code == 403


def test_totals_cover_the_whole_filter_not_just_the_page(admin_client: Client, rows: list[Usage]) -> None:
    response = admin_client.get(USAGE, {"provider": "openai"})
    totals = response.context["totals"]
    assert totals["requests"] == 2
    assert totals["input_tokens"] == 1_000_500
    assert totals["total_usd"] == d("0.4")
    assert totals["unpriced"] == 1
    page = response.content.decode()
    assert "Totals for the current filter" in page
    assert "cost <strong>$0.40</strong>" in page  # the admin's one money format
    assert "1 unpriced" in page

    all_rows = admin_client.get(USAGE).context["totals"]
    assert all_rows["total_usd"] == d("0.4") + d("0.0101") + d("0.3")
    assert all_rows["estimated_rows"] == 1


@pytest.mark.parametrize(
    ("query", "models"),
    [
        ({"provider": "openai"}, {"gpt-4.1-mini", "no-such-model"}),
        ({"model": "claude-haiku-4-5"}, {"claude-haiku-4-5"}),
        ({"estimated__exact": "1"}, {"gemini-2.5-flash"}),
        ({"price": "unpriced"}, {"no-such-model"}),
        ({"price": "priced"}, {"gpt-4.1-mini", "claude-haiku-4-5", "gemini-2.5-flash"}),
        ({"q": "bob"}, {"gemini-2.5-flash", "no-such-model"}),
    ],
)
def test_filters_and_search(
    admin_client: Client, rows: list[Usage], query: dict[str, str], models: set[str]
) -> None:
    response = admin_client.get(USAGE, query)
    assert response.status_code == 200
    assert {row.model for row in response.context["cl"].result_list} == models


def test_filter_by_user_and_date(admin_client: Client, rows: list[Usage], other_user: Any) -> None:
    by_user = admin_client.get(USAGE, {"user__id__exact": other_user.pk}).context["cl"].result_list
    assert {row.user_id for row in by_user} == {other_user.pk}
    today = timezone.localdate()
    drill = {"created_at__year": today.year, "created_at__month": today.month, "created_at__day": today.day}
    assert admin_client.get(USAGE, drill).context["cl"].result_count == 2  # the date hierarchy


def test_unpriced_rows_stand_out(admin_client: Client, rows: list[Usage]) -> None:
    page = admin_client.get(USAGE).content.decode()
    assert 'class="streaming-unpriced"' in page


def test_csv_export_streams_the_filtered_rows(admin_client: Client, rows: list[Usage], user: Any) -> None:
    exported = csv_rows(admin_client.get(EXPORT, {"provider": "openai"}))
    assert [row["model"] for row in exported] == ["no-such-model", "gpt-4.1-mini"] or [
        row["model"] for row in exported
    ] == ["gpt-4.1-mini", "no-such-model"]
    priced = next(row for row in exported if row["model"] == "gpt-4.1-mini")
    assert priced["user"] == "alice"
    assert priced["user_id"] == str(user.pk)
    assert priced["input_tokens"] == "1000000"
    assert priced["total_cost_usd"] == "0.4000000000"
    assert priced["price_source"] == "genai-prices==0.2.3"
    assert priced["estimated"] == "false"
    unpriced = next(row for row in exported if row["model"] == "no-such-model")
    assert (unpriced["total_cost_usd"], unpriced["price_source"]) == ("", "unpriced")


def test_csv_export_has_every_column_and_neutralizes_formulas(
    admin_client: Client, django_user_model: Any
) -> None:
    sly = django_user_model.objects.create_user(username="=cmd", password="pw")
    usage_row(
        sly,
        "anthropic",
        "claude-haiku-4-5",
        cached_input_tokens=100,
        cache_write_tokens=50,
        reasoning_tokens=7,
    )
    (row,) = csv_rows(admin_client.get(EXPORT))
    assert row["user"] == "'=cmd"
    assert (row["cached_input_tokens"], row["cache_write_tokens"], row["reasoning_tokens"]) == (
        "100",
        "50",
        "7",
    )
    assert Decimal(row["input_cost_usd"]) + Decimal(row["output_cost_usd"]) == Decimal(row["total_cost_usd"])
    assert row["created_at"].endswith("+00:00")


def test_csv_export_runs_a_bounded_number_of_queries(
    admin_client: Client, user: Any, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    Usage.objects.bulk_create(
        Usage(user=user, provider="openai", model="gpt-4.1-mini", input_tokens=i, created_at=now)
        for i in range(5000)
    )
    with django_assert_max_num_queries(12):
        response: Any = admin_client.get(EXPORT)
        parts = list(response.streaming_content)
    assert len(parts) == 1 + 3  # the header, then a write per 2000 rows
    assert len(b"".join(parts).decode().splitlines()) == 1 + 5000


@pytest.mark.django_db(transaction=True)
def test_csv_export_streams_under_asgi_too(admin_user: Any, user: Any) -> None:
    for _ in range(3):
        usage_row(user)

    async def export() -> tuple[bool, bytes]:
        client = AsyncClient()
        await client.aforce_login(admin_user)
        response: Any = await client.get(EXPORT)
        body = b"".join([part async for part in response.streaming_content])
        return response.is_async, body

    is_async, body = asyncio.run(export())
    assert is_async  # an async iterator: Django buffers a sync one whole under ASGI
    assert len(body.decode().splitlines()) == 1 + 3


def test_reprice_action_records_a_new_snapshot(admin_client: Client, rows: list[Usage]) -> None:
    override = PriceOverride.objects.create(
        provider="openai", model="no-such-model", valid_from=timezone.now() - timedelta(days=30),
        input_per_mtok=d("2"), output_per_mtok=d("10"),
    )  # fmt: skip
    unpriced = rows[3]
    response = admin_client.post(
        USAGE, {"action": "reprice_selected", "_selected_action": [unpriced.pk, rows[0].pk]}, follow=True
    )
    assert "Re-priced 2 usage row(s)" in response.content.decode()
    unpriced.refresh_from_db()
    assert unpriced.price_source == f"override:{override.pk}"
    assert unpriced.total_cost == d("0.0015")  # 500 * 2 + 50 * 10, per million
    assert unpriced.unit_prices == {"input_mtok": "2", "output_mtok": "10"}
    rows[0].refresh_from_db()
    assert (rows[0].price_source, rows[0].total_cost) == ("genai-prices==0.2.3", d("0.4"))


# -- conversations, overrides, budgets ---------------------------------------------------------------------


def test_a_conversation_shows_each_message_usage_and_cost_and_the_total(
    admin_client: Client, user: Any
) -> None:
    conversation = Conversation.objects.create(owner=user, model="openai:gpt-4.1-mini", title="Costs")
    Message.objects.create(conversation=conversation, role="user", content="Question")
    for text in ("First answer", "Second answer"):
        message = Message.objects.create(conversation=conversation, role="assistant", content=text)
        row = usage_row(user, input_tokens=1_000_000, cached_input_tokens=250_000, output_tokens=100_000)
        Usage.objects.filter(pk=row.pk).update(conversation=conversation, message=message)
    page = admin_client.get(f"/admin/streaming/conversation/{conversation.pk}/change/").content.decode()
    assert page.count("1,000,000 in (250,000 cached) / 100,000 out") == 2
    assert page.count("$0.485") == 2  # 750k * 0.4 + 250k * 0.1 + 100k * 1.6, per million
    assert "$0.97" in page  # the conversation's total
    listing = admin_client.get("/admin/streaming/conversation/").content.decode()
    assert "$0.97" in listing


def test_a_conversation_says_which_version_each_edited_or_regenerated_message_is(
    admin_client: Client, user: Any
) -> None:
    conversation = Conversation.objects.create(owner=user, model="openai:gpt-4.1-mini", title="Versions")
    question = Message.objects.create(conversation=conversation, role="user", content="Question")
    for text in ("First answer", "Regenerated answer"):
        Message.objects.create(conversation=conversation, parent=question, role="assistant", content=text)
    edited = Message.objects.create(conversation=conversation, role="user", content="Edited")
    Message.objects.filter(pk=edited.pk).update(parent=None)  # (a first message's new version: a root)
    Message.objects.create(conversation=conversation, parent=edited, role="assistant", content="Its answer")
    page = admin_client.get(f"/admin/streaming/conversation/{conversation.pk}/change/").content.decode()
    # The two first messages (the question and its edit), the two replies to the question; not the
    # edit's only answer.
    assert page.count("version 1 of 2") == 2
    assert page.count("version 2 of 2") == 2
    assert page.index("First answer") < page.index("Regenerated answer") < page.index("Its answer")
    assert "of 1" not in page


def test_conversations_are_not_added_in_the_admin(admin_client: Client) -> None:
    """A conversation starts with a chat: the admin offers no "Add" (its owner is read-only there)."""
    assert admin_client.get("/admin/streaming/conversation/add/").status_code == 403
    listing = admin_client.get("/admin/streaming/conversation/").content.decode()
    assert "/admin/streaming/conversation/add/" not in listing
    assert admin_client.get("/admin/").status_code == 200


def test_conversation_list_queries_do_not_grow_with_rows(
    admin_client: Client, user: Any, django_assert_max_num_queries: Any
) -> None:
    for index in range(30):
        conversation = Conversation.objects.create(owner=user, model="openai:gpt-4.1-mini", title=f"c{index}")
        Usage.objects.filter(pk=usage_row(user).pk).update(conversation=conversation)
    with django_assert_max_num_queries(9):  # (one is the owner filter's list of users)
        assert admin_client.get("/admin/streaming/conversation/").status_code == 200


def test_staff_add_a_price_override(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/streaming/priceoverride/add/",
        {
            "provider": "openai",
            "model": "gpt-4.1-mini",
            "valid_from_0": "2026-01-01",
            "valid_from_1": "00:00:00",
            "input_per_mtok": "0.5",
            "output_per_mtok": "2",
            "cache_read_per_mtok": "",
            "cache_write_per_mtok": "",
            "note": "negotiated",
        },
    )
    assert response.status_code == 302
    override = PriceOverride.objects.get()
    assert (override.input_per_mtok, override.cache_read_per_mtok) == (Decimal("0.5"), None)


def test_budgets_list_this_month_spend(admin_client: Client, user: Any) -> None:
    UserBudget.objects.create(user=user, monthly_usd=Decimal("5"))
    usage_row(user, input_tokens=1_000_000, output_tokens=0)  # $0.40
    usage_row(user, input_tokens=1_000_000, output_tokens=0, at=timezone.now() - timedelta(days=40))
    page = admin_client.get("/admin/streaming/userbudget/").content.decode()
    assert "$0.40" in page
    assert "$0.80" not in page


def test_csv_export_writes_a_zero_cost_as_a_plain_number(admin_client: Client, user: Any) -> None:
    """A free call's cost is stored as zero; a spreadsheet must read it as 0, not as the text 0E-10."""
    usage_row(user, "openai", "gpt-4.1-mini", input_tokens=0, output_tokens=0)
    (row,) = csv_rows(admin_client.get(EXPORT))
    assert (row["input_cost_usd"], row["output_cost_usd"], row["total_cost_usd"]) == ("0.0000000000",) * 3


# -- the usage detail and the message list ----------------------------------------------------------------


def test_the_usage_detail_writes_costs_for_people(admin_client: Client, user: Any) -> None:
    """Costs in the money format (not the stored "0.0185610000"), counts with separators, and the price
    source's help text as written ("override:<id>", which the admin would otherwise read as a tag)."""
    row = usage_row(user, "anthropic", "claude-haiku-4-5", input_tokens=12_345, output_tokens=1_234)
    page = admin_client.get(f"{USAGE}{row.pk}/change/").content.decode()
    assert row.total_cost is not None and f"{row.total_cost}" not in page
    assert ">$0.0185<" in page  # 12,345 * $1 + 1,234 * $5, per million: 0.018515
    assert "12,345" in page and "1,234" in page
    assert "override:&lt;id&gt;, genai-prices==X.Y.Z" in page
    assert "override:," not in page
    assert "input $1.00, cache read $0.10, cache write $1.25, output $5.00" in page  # per million tokens


@pytest.fixture
def chat(user: Any, other_user: Any) -> dict[str, Any]:
    """A conversation of alice with a priced reply, a failed one and a reply of an unknown model."""
    talk = Conversation.objects.create(owner=user, model="openai:gpt-4.1-mini", title="Weekend plans")
    Message.objects.create(conversation=talk, role="user", content="Where to go?")
    good = Message.objects.create(
        conversation=talk, role="assistant", content="Lisbon.", model="openai:gpt-4.1-mini"
    )
    failed = Message.objects.create(
        conversation=talk,
        role="assistant",
        status="error",
        model="openai:gpt-4.1-mini",
        error_code="upstream",
        error_text="The provider failed.",
    )
    odd = Message.objects.create(
        conversation=talk, role="assistant", content="Hm.", model="openai:no-such-model"
    )
    for message, model in ((good, "gpt-4.1-mini"), (odd, "no-such-model")):
        row = usage_row(user, "openai", model, input_tokens=1_000_000, output_tokens=0)
        Usage.objects.filter(pk=row.pk).update(conversation=talk, message=message)
    return {"talk": talk, "good": good, "failed": failed, "odd": odd}


def test_the_message_list_is_read_only_with_cost_and_links(
    admin_client: Client, chat: dict[str, Any]
) -> None:
    response = admin_client.get("/admin/streaming/message/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Add message" not in page
    assert admin_client.get("/admin/streaming/message/add/").status_code == 403
    assert admin_client.post(f"/admin/streaming/message/{chat['good'].pk}/delete/").status_code == 403
    assert f'href="/admin/streaming/conversation/{chat["talk"].pk}/change/"' in page
    assert f'href="/admin/streaming/usage/?message__id__exact={chat["good"].pk}"' in page
    assert "$0.40" in page and "unpriced" in page
    usage = admin_client.get("/admin/streaming/usage/", {"message__id__exact": chat["good"].pk})
    assert usage.context["cl"].result_count == 1  # the link lands on the message's usage


@pytest.mark.parametrize(
    ("query", "contents"),
    [
        ({"status__exact": "error"}, {""}),
        ({"role__exact": "user"}, {"Where to go?"}),
        ({"model": "openai:no-such-model"}, {"Hm."}),
        ({"q": "lisbon"}, {"Lisbon."}),
        ({"q": "weekend"}, {"Where to go?", "Lisbon.", "", "Hm."}),
    ],
)
def test_the_message_list_filters_and_searches(
    admin_client: Client, chat: dict[str, Any], query: dict[str, str], contents: set[str]
) -> None:
    response = admin_client.get("/admin/streaming/message/", query)
    assert response.status_code == 200
    assert {message.content for message in response.context["cl"].result_list} == contents


def test_a_message_detail_shows_its_text_error_and_cost(admin_client: Client, chat: dict[str, Any]) -> None:
    page = admin_client.get(f"/admin/streaming/message/{chat['failed'].pk}/change/").content.decode()
    assert "The provider failed." in page
    good = admin_client.get(f"/admin/streaming/message/{chat['good'].pk}/change/").content.decode()
    assert '<div class="streaming-text">Lisbon.</div>' in good
    assert "$0.40" in good


def test_the_message_list_queries_do_not_grow_with_rows(
    admin_client: Client, chat: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(8) as few:
        admin_client.get("/admin/streaming/message/")
    for index in range(40):
        Message.objects.create(conversation=chat["talk"], role="user", content=f"more {index}")
    with django_assert_max_num_queries(8) as many:
        admin_client.get("/admin/streaming/message/")
    assert len(few.captured_queries) == len(many.captured_queries)
