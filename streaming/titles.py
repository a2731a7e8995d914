"""A conversation's title from its first message: plain text, short, cut at a word.

People paste markdown, HTML and code into a chat, and a title is read as plain text in a sidebar, a
window title and the admin: markup becomes the words it marks up (a link its text, an image its
description, a tag nothing), code fences go, and prose outside code blocks is preferred to the code
itself. The result is one line, cut at a word with an ellipsis.
"""

from __future__ import annotations

import html
import re

TITLE_LENGTH = 80

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n(.*?)(?:^ {0,3}\1[ \t]*$|\Z)", re.M | re.S)
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->", re.S)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
# A heading, a quote, a task, a bullet or a number at the start of a line.
_LINE_MARKER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+][ \t]+\[[ xX]\][ \t]+|[-*+][ \t]+|\d{1,9}[.)][ \t]+)", re.M
)
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$|^[ \t]*\|?[ \t]*:?-{3,}.*$", re.M)
_EMPHASIS = re.compile(r"(?<![\w*_~])(\*\*|__|~~|\*|_)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)


def make_title(text: str, limit: int = TITLE_LENGTH) -> str:
    """The plain-text title of a conversation whose first message is ``text`` (markdown, HTML, code)."""
    prose, code = _split_code(text)
    line = _plain(prose) or " ".join(code.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    if line[limit - 1] != " " and cut.rfind(" ") > limit // 2:
        cut = cut[: cut.rindex(" ")]  # a whole word, not the start of one (unless one word is most of it)
    return cut.rstrip(" ,;:.-") + "…"


def _split_code(text: str) -> tuple[str, str]:
    """The text outside fenced code blocks, and the code inside them."""
    code: list[str] = []

    def keep(match: re.Match[str]) -> str:
        code.append(match.group(2))
        return "\n"

    return _FENCE.sub(keep, text), "\n".join(code)


def _plain(markdown: str) -> str:
    text = _AUTOLINK.sub(r"\1", markdown)
    text = _TAG.sub(" ", _SCRIPT.sub(" ", text))
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)
    text = _RULE.sub(" ", text)
    text = _LINE_MARKER.sub("", text)
    text = text.replace("|", " ")
    text = _CODE_SPAN.sub(r"\2", text)
    for _level in range(3):  # (nested: ***both***, **_both_**)
        text = _EMPHASIS.sub(r"\2", text)
    return " ".join(html.unescape(text).split())
