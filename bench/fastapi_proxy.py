"""The baseline: the minimal FastAPI streaming proxy most tutorials give, on the async OpenAI SDK.

``POST /api/chat`` with ``{"message": ..., "model": "openai:<model>"}`` (the app's request shape, so
the same load client drives both) calls ``AsyncOpenAI().chat.completions.create(stream=True)`` and
relays each chunk's text as ``data: {"content": ...}`` from a ``StreamingResponse``. No auth, no
database, no heartbeats, no stop: the cheapest relay of the common recipe, to compare the app with.

Run it with one uvicorn worker: ``OPENAI_BASE_URL=http://127.0.0.1:<port>/v1 python -m uvicorn
bench.fastapi_proxy:app --port <port>`` (``bench.scenarios`` does).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI
from pydantic import BaseModel

app = FastAPI()
client = AsyncOpenAI(
    base_url=os.environ.get("OPENAI_BASE_URL"), api_key=os.environ.get("OPENAI_API_KEY", "sk-bench")
)


class ChatBody(BaseModel):
    message: str
    model: str = "openai:gpt-4.1-mini"


@app.post("/api/chat")
async def chat(body: ChatBody) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        stream = await client.chat.completions.create(
            model=body.model.removeprefix("openai:"),
            messages=[{"role": "user", "content": body.message}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield f"data: {json.dumps({'content': chunk.choices[0].delta.content})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
