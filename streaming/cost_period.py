"""The days a cost report covers: the last 7, 30 or 90 days in one click, or any range of dates.

The range comes from the query string (``?days=7`` or ``?start=2026-11-01&end=2026-11-30``), so a report can
be bookmarked and shared. Bad input never fails the page: the form says what is wrong and the report shows
the default period meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.utils import timezone

SHORTCUTS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 366  # a bar per day stays readable for a year
EARLIEST = date(2000, 1, 1)
LATEST = date(2999, 12, 31)


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days in the site's time zone, ``first`` to ``last`` included."""

    first: date
    last: date

    @classmethod
    def last_days(cls, days: int, today: date | None = None) -> Period:
        today = today or timezone.localdate()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def start(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.first, datetime.min.time()))

    @property
    def end(self) -> datetime:
        """The first moment after the period (exclusive)."""
        return timezone.make_aware(datetime.combine(self.last + timedelta(days=1), datetime.min.time()))

    def shortcut(self, today: date | None = None) -> int | None:
        """7, 30 or 90 when the period is that many days up to today."""
        today = today or timezone.localdate()
        count = len(self.days)
        return count if self.last == today and count in SHORTCUTS else None

    def query(self) -> str:
        """This period as a report's query string."""
        return urlencode({"start": self.first.isoformat(), "end": self.last.isoformat()})

    def usage_filter(self) -> dict[str, str]:
        """The usage list's query parameters for the same rows."""
        return {"created_at__gte": str(self.start), "created_at__lt": str(self.end)}


class DateInput(forms.DateInput):
    input_type = "date"


class PeriodForm(forms.Form):
    """``days`` (a shortcut) or ``start`` and ``end``; either date alone is completed sensibly."""

    days = forms.TypedChoiceField(
        choices=[(n, f"Last {n} days") for n in SHORTCUTS],
        coerce=int,
        required=False,
        error_messages={"invalid_choice": "Choose the last 7, 30 or 90 days, or dates."},
    )
    start = forms.DateField(label="From", required=False, widget=DateInput(format="%Y-%m-%d"))
    end = forms.DateField(label="To", required=False, widget=DateInput(format="%Y-%m-%d"))

    def __init__(self, data: Any, today: date | None = None) -> None:
        super().__init__(data)
        self.today = today or timezone.localdate()

    def _clean_day(self, name: str) -> date | None:
        value: date | None = self.cleaned_data.get(name)
        if value is not None and not EARLIEST <= value <= LATEST:
            raise forms.ValidationError(f"Enter a date from {EARLIEST:%Y} to {LATEST:%Y}.")
        return value

    def clean_start(self) -> date | None:
        return self._clean_day("start")

    def clean_end(self) -> date | None:
        return self._clean_day("end")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if self.errors or (start is None and end is None):
            return data
        if start is not None and end is not None and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        period = self._dates(start, end)
        if len(period.days) > MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        data["period"] = period
        return data

    def _dates(self, start: date | None, end: date | None) -> Period:
        if start is None:  # only an end: the 30 days up to it
            assert end is not None
            return Period(end - timedelta(days=DEFAULT_DAYS - 1), end)
        return Period(start, end or max(start, self.today))

    def period(self) -> Period:
        """The chosen period, or the default (the last 30 days) while the form has errors."""
        default = Period.last_days(DEFAULT_DAYS, self.today)
        if not self.is_valid():
            return default
        if "period" in self.cleaned_data:
            period: Period = self.cleaned_data["period"]
            return period
        days = self.cleaned_data.get("days")
        return Period.last_days(days, self.today) if days else default


def period_form(params: Any, today: date | None = None) -> PeriodForm:
    """The form of a report's query string; dates win over ``days`` when both are given."""
    data = {key: params.get(key, "") for key in ("days", "start", "end")}
    if data["start"] or data["end"]:
        data["days"] = ""
    return PeriodForm(data, today)
