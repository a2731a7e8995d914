"""The offline demo provider: a deterministic markdown reply, a word at a time, with usage.

Options: ``tokens_per_second`` (default 50; 0 streams as fast as possible), ``min_reply_tokens``
(pad the reply with numbered paragraphs up to this many tokens, for long-reply tests) and
``first_token_delay`` (seconds of silence before the first token, like a model that thinks before it
answers: heartbeats and the first-token timeout can be watched at work).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Generator

from streaming.events import Event, Finish, ReasoningDelta, TextDelta, Usage, estimate_tokens
from streaming.providers.base import ChatRequest, Provider

_TOKEN = re.compile(r"\s*\S+")

REPLY = """Here is a streamed reply from the **demo** model.

You said: "{words}"

- It arrives one word at a time, like a real model's reply.
- Nothing leaves this machine and no API key is needed.
- Usage counts one token per word.

```python
def greet(name):
    return f"Hello, {{name}}!"
```

That is all for now."""

REASONING = "The user wrote {count} words. I will answer with a short markdown reply that quotes them."


def split_tokens(text: str) -> list[str]:
    """Words with the whitespace before them, so that joining the tokens gives the text back."""
    return _TOKEN.findall(text)


class DemoProvider(Provider):
    free = True

    def _script(self, request: ChatRequest) -> tuple[list[str], list[str], Usage]:
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        words = " ".join(last_user.split())
        text = REPLY.format(words=words)
        tokens = split_tokens(text)
        minimum = int(self.options.get("min_reply_tokens", 0))
        paragraph = 1
        while len(tokens) < minimum:
            tokens += split_tokens(f"\n\nParagraph {paragraph} adds more words to make a long reply.")
            paragraph += 1
        reasoning = split_tokens(REASONING.format(count=len(words.split()))) if request.reasoning else []
        usage = Usage(
            input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
            output_tokens=len(tokens) + len(reasoning),
            reasoning_tokens=len(reasoning),
        )
        return tokens, reasoning, usage

    def _delay(self) -> float:
        rate = float(self.options.get("tokens_per_second", 50))
        return 1.0 / rate if rate > 0 else 0.0

    def _first_token_delay(self) -> float:
        return max(0.0, float(self.options.get("first_token_delay", 0)))

    def stream(self, request: ChatRequest) -> Generator[Event, None, None]:
        tokens, reasoning, usage = self._script(request)
        delay = self._delay()
        if pause := self._first_token_delay():
            time.sleep(pause)
        for piece in reasoning:
            if delay:
                time.sleep(delay)
            yield ReasoningDelta(piece)
        for piece in tokens:
            if delay:
                time.sleep(delay)
            yield TextDelta(piece)
        yield usage
        yield Finish("stop")

    async def astream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        tokens, reasoning, usage = self._script(request)
        delay = self._delay()
        if pause := self._first_token_delay():
            await asyncio.sleep(pause)
        for piece in reasoning:
            if delay:
                await asyncio.sleep(delay)
            yield ReasoningDelta(piece)
        for piece in tokens:
            if delay:
                await asyncio.sleep(delay)
            yield TextDelta(piece)
        yield usage
        yield Finish("stop")
