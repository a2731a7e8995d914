"""Pricing with known values: genai-prices per provider with cached tokens, tiers, dates; overrides by
valid-from; free and unpriced models; stored snapshots that only an explicit re-price changes; costs in
the stream and the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from streaming.costs import price_call, reprice
from streaming.events import Finish, TextDelta
from streaming.events import Usage as Counts
from streaming.models import Conversation, PriceOverride, Usage
from streaming.pricing import (
    FREE,
    UNPRICED,
    Override,
    Rates,
    cost_string,
    library_source,
    price_usage,
)
from streaming.providers.scripted import Pause, ScriptedProvider
from streaming.services import ChatInput, start_reply
from tests import replies
from tests.costs import d, priced_streaming, usage_row
from tests.queries import all_queries

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SOURCE = "genai-prices==0.2.3"


def price(provider: str, model: str, at: datetime = AT, **counts: Any) -> Any:
    return price_usage(Counts(**counts), provider=provider, model=model, at=at)


def test_the_library_is_the_pinned_version() -> None:
    assert library_source() == SOURCE


@pytest.mark.parametrize(
    ("provider", "model", "counts", "input_cost", "output_cost"),
    [
        # $0.40 / M input, $0.10 / M cached input, $1.60 / M output: 500k uncached + 500k cache reads.
        (
            "openai",
            "gpt-4.1-mini",
            {"input_tokens": 1_000_000, "cached_input_tokens": 500_000, "output_tokens": 1_000_000},
            "0.25",
            "1.6",
        ),
        # $1 / M input, $0.10 cache read, $1.25 cache write, $5 output: 2000 plain + 6000 read + 2000 written.
        (
            "anthropic",
            "claude-haiku-4-5",
            {
                "input_tokens": 10_000,
                "cached_input_tokens": 6_000,
                "cache_write_tokens": 2_000,
                "output_tokens": 1_000,
            },
            "0.0051",
            "0.005",
        ),
        # $0.30 / M input, $0.03 cache read, $2.50 output (reasoning is output): 6000 plain + 4000 read.
        (
            "gemini",
            "gemini-2.5-flash",
            {
                "input_tokens": 10_000,
                "cached_input_tokens": 4_000,
                "output_tokens": 1_000,
                "reasoning_tokens": 300,
            },
            "0.00192",
            "0.0025",
        ),
    ],
)
def test_known_prices_with_cached_tokens(
    provider: str, model: str, counts: dict[str, Any], input_cost: str, output_cost: str
) -> None:
    result = price(provider, model, **counts)
    assert result.source == SOURCE
    assert result.input_cost == d(input_cost)
    assert result.output_cost == d(output_cost)
    assert result.total_cost == d(input_cost) + d(output_cost)


def test_the_unit_prices_used_are_recorded() -> None:
    result = price("anthropic", "claude-haiku-4-5", input_tokens=10, output_tokens=1)
    assert result.unit_prices == {
        "input_mtok": "1",
        "cache_read_mtok": "0.1",
        "cache_write_mtok": "1.25",
        "output_mtok": "5",
    }


def test_a_tiered_price_applies_per_request_above_200k_input_tokens() -> None:
    at_limit = price(
        "gemini", "gemini-2.5-pro", input_tokens=200_000, cached_input_tokens=100_000, output_tokens=1_000
    )
    above = price(
        "gemini", "gemini-2.5-pro", input_tokens=200_001, cached_input_tokens=100_000, output_tokens=1_000
    )
    # <= 200k: $1.25 input, $0.125 cached, $10 output.
    assert at_limit.input_cost == d("0.1375")  # 100_000 * 1.25 + 100_000 * 0.125, per million
    assert at_limit.output_cost == d("0.01")
    assert at_limit.unit_prices == {"input_mtok": "1.25", "cache_read_mtok": "0.125", "output_mtok": "10"}
    # > 200k: every token of the request at $2.50 / $0.25 / $15.
    assert above.input_cost == d("0.2750025")  # 100_001 * 2.5 + 100_000 * 0.25, per million
    assert above.output_cost == d("0.015")
    assert above.unit_prices == {"input_mtok": "2.5", "cache_read_mtok": "0.25", "output_mtok": "15"}


def test_the_request_time_selects_dated_prices() -> None:
    # OpenAI cut o3 from $10/$40 to $2/$8 on 2025-06-10.
    before = price(
        "openai", "o3", at=datetime(2025, 6, 1, tzinfo=UTC), input_tokens=1_000_000, output_tokens=0
    )
    after = price(
        "openai", "o3", at=datetime(2025, 6, 11, tzinfo=UTC), input_tokens=1_000_000, output_tokens=0
    )
    assert (before.total_cost, after.total_cost) == (d("10"), d("2"))


def test_the_provider_is_passed_explicitly() -> None:
    # The name "gemini" resolves to genai-prices' "google"; a model of another vendor is not found there.
    assert price("gemini", "gemini-2.5-flash", input_tokens=1_000_000).total_cost == d("0.3")
    assert price("gemini", "gpt-4.1-mini", input_tokens=1_000_000).source == UNPRICED


@pytest.mark.parametrize(("provider", "model"), [("openai", "no-such-model"), ("my-local-llm", "llama-3")])
def test_an_unknown_model_is_unpriced_never_zero(provider: str, model: str) -> None:
    result = price(provider, model, input_tokens=1000, output_tokens=1000)
    assert result.source == UNPRICED
    assert (result.input_cost, result.output_cost, result.total_cost) == (None, None, None)
    assert result.unit_prices == {}
    assert cost_string(result.total_cost) is None


def test_an_unknown_model_is_looked_up_once_per_price_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local server's model is unknown to genai-prices: each reply would scan the provider's models
    again for it. The answer is kept, until other price data (genai-prices' updater) is installed."""
    from genai_prices import data_snapshot

    lookups: list[str] = []
    find = data_snapshot.DataSnapshot.find_provider_model

    def counted(self: Any, model_ref: str, *args: Any) -> Any:
        lookups.append(model_ref)
        return find(self, model_ref, *args)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", counted)
    for _ in range(3):
        assert price("openai", "my-fine-tune", input_tokens=10).source == UNPRICED
    assert lookups == ["my-fine-tune"]
    updated = data_snapshot.DataSnapshot(data_snapshot.get_snapshot().providers, True)
    monkeypatch.setattr(data_snapshot, "_custom_snapshot", updated)
    assert price("openai", "my-fine-tune", input_tokens=10).source == UNPRICED
    assert lookups == ["my-fine-tune", "my-fine-tune"]  # new data: asked again
    assert price("openai", "gpt-4.1-mini", input_tokens=1_000_000).total_cost == d("0.4")


def test_inconsistent_counts_are_unpriced_not_an_error() -> None:
    assert price("openai", "gpt-4.1-mini", input_tokens=10, cached_input_tokens=20).source == UNPRICED


def test_a_free_provider_costs_exactly_zero() -> None:
    result = price_usage(Counts(5000, 500), provider="demo", model="echo", at=AT, free=True)
    assert (result.source, result.total_cost, result.unit_prices) == (FREE, Decimal(0), {})


def test_override_rates_split_cache_reads_and_writes() -> None:
    rates = Rates(input=d("3"), output=d("15"), cache_read=d("0.3"), cache_write=d("3.75"))
    counts = Counts(
        input_tokens=10_000, cached_input_tokens=4_000, cache_write_tokens=1_000, output_tokens=2_000
    )
    result = price_usage(counts, provider="openai", model="x", at=AT, override=Override(7, rates))
    assert result.source == "override:7"
    assert result.input_cost == d("0.01995")  # 5000 * 3 + 4000 * 0.3 + 1000 * 3.75, per million
    assert result.output_cost == d("0.03")
    assert result.unit_prices == {
        "input_mtok": "3",
        "cache_read_mtok": "0.3",
        "cache_write_mtok": "3.75",
        "output_mtok": "15",
    }


def test_override_without_cache_prices_charges_cached_tokens_as_input() -> None:
    counts = Counts(input_tokens=10_000, cached_input_tokens=4_000, output_tokens=0)
    result = price_usage(counts, provider="p", model="m", at=AT, override=Override(1, Rates(d("2"), d("8"))))
    assert result.input_cost == d("0.02")


def test_costs_are_quantized_to_ten_places() -> None:
    result = price("openai", "gpt-4.1-mini", input_tokens=1, output_tokens=1)  # $0.0000004 + $0.0000016
    assert result.total_cost == d("0.0000020000")
    assert result.total_cost.as_tuple().exponent == -10
    assert cost_string(result.total_cost) == "0.0000020000"
    tiny = price_usage(
        Counts(1, 0), provider="p", model="m", at=AT, override=Override(1, Rates(d("0.00003"), d("0")))
    )
    assert tiny.total_cost == d("0.0000000000")  # $0.00000000003 rounds to zero at ten places


# -- overrides from the database ------------------------------------------------------------------


@pytest.mark.django_db
def test_an_override_applies_from_its_valid_from_on() -> None:
    override = PriceOverride.objects.create(
        provider="openai", model="gpt-4.1-mini", valid_from=AT, input_per_mtok=d("1"), output_per_mtok=d("2")
    )
    counts = Counts(input_tokens=1_000_000, output_tokens=1_000_000)
    before = price_call(counts, "openai", "gpt-4.1-mini", AT - timedelta(seconds=1))
    after = price_call(counts, "openai", "gpt-4.1-mini", AT)
    assert (before.source, before.total_cost) == (SOURCE, d("2.0"))  # the library: $0.40 + $1.60
    assert (after.source, after.total_cost) == (f"override:{override.pk}", d("3"))


@pytest.mark.django_db
def test_the_latest_override_in_force_wins_and_prices_unknown_models() -> None:
    common = {"provider": "ollama", "model": "llama3", "output_per_mtok": d("0")}
    PriceOverride.objects.create(valid_from=AT - timedelta(days=10), input_per_mtok=d("1"), **common)
    newer = PriceOverride.objects.create(valid_from=AT - timedelta(days=1), input_per_mtok=d("2"), **common)
    PriceOverride.objects.create(valid_from=AT + timedelta(days=1), input_per_mtok=d("3"), **common)
    result = price_call(Counts(input_tokens=1_000_000), "ollama", "llama3", AT)
    assert (result.source, result.total_cost) == (f"override:{newer.pk}", d("2"))
    assert price_call(Counts(input_tokens=1), "ollama", "llama3", AT - timedelta(days=30)).source == UNPRICED


# -- snapshots: written with the row, changed only by re-pricing ------------------------------------------


@pytest.mark.django_db
def test_stored_costs_do_not_change_when_an_override_changes(user: Any) -> None:
    row = usage_row(user, input_tokens=1_000_000, output_tokens=0, at=AT)
    assert (row.price_source, row.total_cost, row.unit_prices["input_mtok"]) == (SOURCE, d("0.4"), "0.4")
    override = PriceOverride.objects.create(
        provider="openai",
        model="gpt-4.1-mini",
        valid_from=AT - timedelta(days=1),
        input_per_mtok=d("9"),
        output_per_mtok=d("9"),
    )
    row.refresh_from_db()
    assert (row.price_source, row.total_cost) == (SOURCE, d("0.4"))

    assert reprice(Usage.objects.all()) == 1
    row.refresh_from_db()
    assert (row.price_source, row.total_cost) == (f"override:{override.pk}", d("9"))
    assert row.unit_prices == {"input_mtok": "9", "output_mtok": "9"}
    repriced_at = row.priced_at
    assert repriced_at is not None and repriced_at > AT

    override.input_per_mtok = d("1")
    override.save()
    row.refresh_from_db()
    assert row.total_cost == d("9")  # still the snapshot taken by the re-price


@pytest.mark.django_db
def test_reprice_prices_rows_stored_before_costs_existed(user: Any) -> None:
    old = usage_row(user, priced=False)
    unknown = usage_row(user, "openai", "no-such-model")
    assert (old.price_source, old.total_cost) == ("", None)
    assert reprice(Usage.objects.filter(pk__in=[old.pk, unknown.pk])) == 2
    old.refresh_from_db()
    unknown.refresh_from_db()
    assert (old.price_source, old.total_cost) == (SOURCE, d("0.00056"))  # 1000 * 0.4 + 100 * 1.6, per M
    assert (unknown.price_source, unknown.total_cost) == (UNPRICED, None)


@pytest.mark.django_db
def test_reprice_reads_in_batches_with_bounded_queries(user: Any, django_assert_max_num_queries: Any) -> None:
    for _ in range(30):
        usage_row(user, priced=False)
    with django_assert_max_num_queries(8):
        assert reprice(Usage.objects.all()) == 30


# -- costs in the stream, the database and the API -------------------------------------------------------


def reply_chunks(user: Any, model: str, *script: Any, conversation: Any = None) -> list[dict[str, Any]]:
    ScriptedProvider.enqueue(script)
    reply = start_reply(user, ChatInput(conversation, "How much?", model))
    return replies.chunks(reply)


@pytest.mark.django_db(transaction=True)
def test_a_reply_is_priced_once_and_its_cost_sent_in_finish(user: Any, settings: Any, api: Any) -> None:
    settings.STREAMING = priced_streaming()
    usage = Counts(
        input_tokens=10_000, cached_input_tokens=6_000, cache_write_tokens=2_000, output_tokens=1_000
    )
    chunks = reply_chunks(user, "anthropic:claude-haiku-4-5", TextDelta("Ten"), usage, Finish())
    finish = chunks[-1]
    assert finish["type"] == "finish"
    assert finish["messageMetadata"]["cost"] == "0.0101000000"
    assert finish["messageMetadata"]["currency"] == "USD"

    row = Usage.objects.get()
    assert (row.provider, row.model, row.price_source) == ("anthropic", "claude-haiku-4-5", SOURCE)
    assert (row.input_cost, row.output_cost, row.total_cost) == (d("0.0051"), d("0.005"), d("0.0101"))
    assert row.priced_at == row.created_at

    conversation = Conversation.objects.get()
    detail = api.get(f"/api/conversations/{conversation.pk}").json()
    assert detail["cost"] == "0.0101000000"
    assert [m["cost"] for m in detail["messages"]] == [None, "0.0101000000"]
    assert api.get("/api/conversations").json()["conversations"][0]["cost"] == "0.0101000000"


@pytest.mark.django_db(transaction=True)
def test_a_conversation_costs_the_sum_of_its_replies(user: Any, settings: Any, api: Any) -> None:
    settings.STREAMING = priced_streaming()
    one_million = Counts(input_tokens=1_000_000, output_tokens=0)
    reply_chunks(user, "openai:gpt-4.1-mini", TextDelta("a"), one_million, Finish())
    conversation = Conversation.objects.get()
    reply_chunks(
        user, "gemini:gemini-2.5-flash", TextDelta("b"), one_million, Finish(), conversation=conversation.pk
    )
    other = reply_chunks(user, "openai:gpt-4.1-mini", TextDelta("c"), one_million, Finish())
    assert other[-1]["messageMetadata"]["cost"] == "0.4000000000"

    listed = {c["id"]: c["cost"] for c in api.get("/api/conversations").json()["conversations"]}
    assert listed[str(conversation.pk)] == "0.7000000000"  # $0.40 + $0.30
    assert sorted(listed.values()) == ["0.4000000000", "0.7000000000"]


@pytest.mark.django_db(transaction=True)
def test_the_conversation_list_costs_a_constant_number_of_queries(user: Any, api: Any) -> None:
    for index in range(12):
        conversation = Conversation.objects.create(owner=user, model="openai:gpt-4.1-mini", title=str(index))
        Usage.objects.filter(pk=usage_row(user).pk).update(conversation=conversation)
    with all_queries() as queries:  # (the API runs on the app's database threads)
        listed = api.get("/api/conversations").json()["conversations"]
    assert len(queries) == 3, queries  # the session, the user, the conversations with their cost
    assert len(listed) == 12
    assert {c["cost"] for c in listed} == {"0.0005600000"}


@pytest.mark.django_db(transaction=True)
def test_an_unknown_model_reply_is_unpriced(user: Any, settings: Any, api: Any) -> None:
    settings.STREAMING = priced_streaming()
    chunks = reply_chunks(user, "openai:no-such-model", TextDelta("?"), Counts(100, 10), Finish())
    assert chunks[-1]["messageMetadata"]["cost"] is None
    row = Usage.objects.get()
    assert (row.price_source, row.total_cost) == (UNPRICED, None)
    detail = api.get(f"/api/conversations/{row.conversation_id}").json()
    assert detail["cost"] is None
    assert detail["messages"][1]["cost"] is None
    assert detail["messages"][1]["usage"]["input_tokens"] == 100


@pytest.mark.django_db(transaction=True)
def test_the_demo_provider_is_free(user: Any) -> None:
    chunks = reply_chunks(user, "demo:echo")
    assert chunks[-1]["messageMetadata"]["cost"] == "0.0000000000"
    row = Usage.objects.get()
    assert (row.price_source, row.total_cost, row.estimated) == (FREE, Decimal(0), False)


@pytest.mark.django_db(transaction=True)
def test_a_stopped_reply_is_priced_on_its_estimated_usage(user: Any, settings: Any) -> None:
    settings.STREAMING = {**priced_streaming(), "DISCONNECT_GRACE_SECONDS": 0}
    ScriptedProvider.enqueue([TextDelta("x" * 400), Pause(0.3), Counts(1, 1), Finish()])
    reply = start_reply(user, ChatInput(None, "y" * 4000, "openai:gpt-4.1-mini"))
    batches = replies.batches(reply)
    for batch in batches:
        if any(chunk.get("type") == "text-delta" for chunk in batch):
            break
    batches.close()  # the client went away before the provider reported usage
    replies.settle()
    row = Usage.objects.get()
    assert row.estimated
    assert (row.input_tokens, row.output_tokens) == (1000, 100)
    assert row.total_cost == d("0.00056")
    assert timezone.now() - row.created_at < timedelta(minutes=1)
