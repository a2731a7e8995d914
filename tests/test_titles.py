"""A conversation's title is plain text from its first message: what a person reads in the sidebar, not
the markdown, HTML or code fences they pasted."""

from __future__ import annotations

import pytest

from streaming.titles import make_title


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("# How do I **stream** replies in `Django`?", "How do I stream replies in Django?"),
        ("<b>Hi</b> <script>alert(1)</script><style>p{}</style> there", "Hi there"),
        ("```python\nprint(1)\n```\nWhy does this fail?", "Why does this fail?"),
        ("```\nonly code here\n```", "only code here"),
        ("- [ ] buy milk\n- [x] walk the dog", "buy milk walk the dog"),
        ("See [the docs](https://example.com), ![a cat](cat.png) &amp; more", "See the docs, a cat & more"),
        ("snake_case, *em*, __strong__, ~~gone~~ and ***both***", "snake_case, em, strong, gone and both"),
        ("> quoted text\n\n---\n\n1. first step", "quoted text first step"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "a b 1 2"),
        ("Is a < b and c > d?", "Is a < b and c > d?"),
        ("<https://example.com/page>", "https://example.com/page"),
        ("  How do   I stream\nreplies?  ", "How do I stream replies?"),
    ],
)
def test_markup_becomes_plain_text(message: str, title: str) -> None:
    assert make_title(message) == title


def test_a_long_title_is_cut_at_a_word() -> None:
    title = make_title("Explain why " + "the quick brown fox jumps over the lazy dog " * 4)
    assert len(title) <= 80 and title.endswith("…")
    assert title[:-1].split()[-1] in {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"}


def test_one_long_word_is_cut_inside_it() -> None:
    title = make_title("Why? " + "x" * 200)
    assert len(title) == 80 and title.startswith("Why? xxx") and title.endswith("…")
