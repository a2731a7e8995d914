"""The README's sections and code blocks, for the tests that run them as written (so that the README
cannot drift from what works)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.servers import ROOT

README = ROOT / "README.md"


@dataclass(frozen=True)
class Block:
    language: str
    code: str


def section(heading: str, text: str | None = None) -> str:
    """The text under the heading ``heading`` (``"## Add it to your project"``), up to the next heading
    of the same or a higher level."""
    text = README.read_text() if text is None else text
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    headings = re.compile(rf"^#{{1,{len(level)}}} ", re.M).finditer(text, start)
    end = next((m.start() for m in headings if not _in_fence(text, m.start())), len(text))
    return text[start:end]


def _in_fence(text: str, at: int) -> bool:
    return text[:at].count("\n```") % 2 == 1


def code_blocks(heading: str) -> list[Block]:
    """The fenced code blocks of a section, in order."""
    found = re.findall(r"^```(\w*)\n(.*?)^```$", section(heading), re.M | re.S)
    return [Block(language, code) for language, code in found]
