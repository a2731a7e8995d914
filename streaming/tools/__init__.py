"""Tools: functions of the host project that the model may call (``@streaming.tool``).

``definition`` makes a tool of a typed function, ``registry`` says which tools each model is offered
(``STREAMING["TOOLS"]``), ``running`` runs the calls of a step.
"""

from __future__ import annotations

from streaming.tools.definition import Tool, ToolError, tool

__all__ = ["Tool", "ToolError", "tool"]
