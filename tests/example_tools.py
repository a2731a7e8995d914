"""Tools for the tests: each shows one way a tool can behave (see tests/test_tools.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Literal

import streaming
from streaming.models import Conversation

#: Set when ``wait_forever`` starts, and when it is cancelled.
started = threading.Event()
cancelled = threading.Event()
#: The threads and times each call of ``slow`` ran in: parallel calls overlap.
runs: list[tuple[str, float, float]] = []


@streaming.tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@streaming.tool
def slow(name: str, seconds: float) -> str:
    """Wait, then say the name."""
    began = time.monotonic()
    time.sleep(seconds)
    runs.append((name, began, time.monotonic()))
    return name


@streaming.tool
async def shout(text: str) -> str:
    """Say it louder (an async tool)."""
    await asyncio.sleep(0)
    return text.upper()


@streaming.tool
def broken(path: str) -> str:
    """A tool that fails."""
    raise FileNotFoundError(f"no such file: {path}")


@streaming.tool
def refuses() -> str:
    """A tool that says why it cannot help."""
    raise streaming.ToolError("The order 42 does not exist.")


@streaming.tool(timeout=0.3)
async def wait_forever() -> str:
    """Never answers (it is cancelled at its timeout, or by a stop)."""
    started.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancelled.set()
        raise
    return "never"


@streaming.tool(timeout=30)
async def wait_long() -> str:
    """Answers after a minute (a stop ends it first)."""
    started.set()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        cancelled.set()
        raise
    return "late"


@streaming.tool
def huge() -> str:
    """An output past the size limit."""
    return "x" * 100_000


@streaming.tool
def my_titles(user: Any) -> list[str]:
    """The requesting user's conversation titles."""
    return list(Conversation.objects.filter(owner=user).order_by("title").values_list("title", flat=True))


@streaming.tool(needs_approval=True)
def send_email(to: str, subject: str) -> str:
    """Send an email (asks the user first)."""
    sent.append((to, subject))
    return f"sent to {to}"


sent: list[tuple[str, str]] = []


# The tools that the vendors' recorded streams call (tests/fixtures/provider-streams).


@streaming.tool
def get_weather(location: str) -> dict[str, Any]:
    """The weather in a place."""
    return {"location": location, "forecast": "sunny", "celsius": 21}


@streaming.tool
def weather(location: str) -> dict[str, Any]:
    """The weather in a place (Gemini's recorded call names it so)."""
    return {"location": location, "forecast": "foggy", "celsius": 14}


@streaming.tool
def GetWeatherArgs(city: str, country: str, units: Literal["c", "f"] = "c") -> str:
    """The temperature for the given country/city combo (OpenAI's recorded call names it so)."""
    return f"12 degrees {units} in {city}, {country}"


@streaming.tool
def get_stock_price(ticker: str, exchange: str) -> dict[str, Any]:
    """The latest price of a ticker."""
    return {"ticker": ticker, "exchange": exchange, "price": 123.45}


@streaming.tool(needs_approval=True)
def remember(note: str) -> str:
    """Keep a note (asks the user first)."""
    return f"noted {note!r}"
