"""Stream LLM replies to browsers over Server-Sent Events, with conversations, usage and costs stored.

``streaming.tool`` makes a function of your project a tool the model may call (``streaming.tools``);
it is imported when first used, so that importing the app imports nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streaming.tools import ToolError, tool

__all__ = ["ToolError", "tool"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from streaming import tools

        return getattr(tools, name)
    raise AttributeError(f"module 'streaming' has no attribute {name!r}")
