"""Usage rows as CSV, streamed: rows are read with a database cursor in chunks and written as they come,
so an export of a million rows never holds them in memory.

Under ASGI, Django would buffer a sync iterator whole (``StreamingHttpResponse.__aiter__`` lists it),
so an ASGI request gets an async iterator that pulls one chunk at a time on the request's thread.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Generator
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from streaming.models import Usage

CHUNK_ROWS = 2000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

COLUMNS: list[tuple[str, str]] = [
    ("id", "id"),
    ("created_at", "created_at"),
    ("user", "user__{username}"),
    ("user_id", "user_id"),
    ("provider", "provider"),
    ("model", "model"),
    ("input_tokens", "input_tokens"),
    ("cached_input_tokens", "cached_input_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("output_tokens", "output_tokens"),
    ("reasoning_tokens", "reasoning_tokens"),
    ("estimated", "estimated"),
    ("price_source", "price_source"),
    ("input_cost_usd", "input_cost"),
    ("output_cost_usd", "output_cost"),
    ("total_cost_usd", "total_cost"),
    ("conversation_id", "conversation_id"),
    ("message_id", "message_id"),
    ("ttft_ms", "ttft_ms"),
    ("duration_ms", "duration_ms"),
]


class _Line:
    """A file-like object for csv.writer that hands back each written line."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"  # a zero cost comes back from SQLite as 0E-10, which spreadsheets read as text
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value  # a spreadsheet must not run a username like "=HYPERLINK(...)"
    return value


def csv_lines(queryset: QuerySet[Usage]) -> Generator[str, None, None]:
    username = get_user_model().USERNAME_FIELD
    fields = [source.format(username=username) for _, source in COLUMNS]
    writer = csv.writer(_Line())
    yield writer.writerow([name for name, _ in COLUMNS])
    batch: list[str] = []
    for values in queryset.values_list(*fields).iterator(chunk_size=CHUNK_ROWS):
        batch.append(writer.writerow([_cell(value) for value in values]))
        if len(batch) >= CHUNK_ROWS:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


async def _pull(lines: Generator[str, None, None]) -> AsyncIterator[str]:
    take = sync_to_async(lambda: next(lines, None), thread_sensitive=True)
    try:
        while (chunk := await take()) is not None:
            yield chunk
    finally:
        await sync_to_async(lines.close, thread_sensitive=True)()


def csv_response(request: HttpRequest, queryset: QuerySet[Usage]) -> StreamingHttpResponse:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    lines = csv_lines(queryset)
    content = _pull(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{stamp}.csv"'
    return response
