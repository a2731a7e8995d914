"""How the admin writes money, counts, durations and rates, and the arithmetic of the cost report's charts
and percentiles: pure functions, no database."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from streaming.cost_charts import day_chart, nice_ceiling
from streaming.cost_report import percentile
from streaming.templatetags.streaming_costs import ms, percent, usd
from tests.costs import d


@pytest.mark.parametrize(
    ("amount", "written"),
    [
        ("0", "$0.00"),
        ("0.0018992", "$0.0019"),
        ("0.0185610000", "$0.0186"),
        ("0.4", "$0.40"),
        ("0.485", "$0.485"),
        ("0.9999", "$1.00"),
        ("1.005", "$1.01"),
        ("1234.5", "$1,234.50"),
        ("1234567.891", "$1,234,567.89"),
        ("0.0000000001", "$0.0000000001"),
        ("0.00000000001", "<$0.0000000001"),
        ("-0.25", "-$0.25"),
    ],
)
def test_the_money_format(amount: str, written: str) -> None:
    assert usd(Decimal(amount)) == written


def test_counts_durations_and_rates_for_people() -> None:
    assert usd(None) == "—"
    assert usd(None, "$0.00") == "$0.00"
    assert (ms(None), ms(1250), ms(12.4)) == ("—", "1,250 ms", "12 ms")
    assert [percent(*pair) for pair in [(0, 0), (0, 9), (1, 4), (1, 3), (1, 1000), (1, 30000), (5, 5)]] == [
        "—",
        "0%",
        "25%",
        "33.3%",
        "0.1%",
        "0.0033%",
        "100%",
    ]


def test_day_labels_stay_inside_the_chart() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(30)]
    chart = day_chart(days, {})
    assert chart.empty
    assert {bar.height for bar in chart.bars} == {0}
    wide = [label for label in chart.labels if label.wide]
    narrow = [label for label in chart.labels if label.narrow]
    assert 2 <= len(narrow) <= 4 < len(wide) <= 8
    last = chart.labels[-1]
    assert (last.text, last.x, last.anchor) == ("Nov 30", 100, "end")  # ends at the right edge, not past it
    assert all(0 <= label.x <= 100 for label in chart.labels)
    single = day_chart([date(2026, 11, 1)], {date(2026, 11, 1): (d("0.0019"), 1)})
    assert [(label.x, label.anchor) for label in single.labels] == [(50, "middle")]
    assert single.bars[0].height > 50
    assert single.ticks[0] == "$0.002"


def test_nice_ceilings() -> None:
    assert [nice_ceiling(Decimal(v)) for v in ("0", "0.8", "1", "1.2", "2.2", "3", "7", "0.013", "120")] == [
        Decimal(v) for v in ("1", "1", "1", "2", "2.5", "5", "10", "0.02", "200")
    ]


def test_percentiles_read_off_a_histogram() -> None:
    histogram = [(10, 50), (20, 45), (900, 5)]
    assert (percentile(histogram, 0.5), percentile(histogram, 0.95), percentile(histogram, 0.96)) == (
        10,
        20,
        900,
    )
    assert percentile([], 0.5) is None
    assert percentile([(7, 1)], 0.95) == 7
