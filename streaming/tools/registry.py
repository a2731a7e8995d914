"""Which tools each model is offered: ``STREAMING["TOOLS"]``, read once per setting.

``TOOLS`` is a list of dotted paths (every model gets them) or a dict from a model id, or ``"*"`` for
every model, to such a list; a model gets the tools of ``"*"`` and those of its own id. A path names a
``@streaming.tool`` or a plain typed function. A path that cannot be imported or described is left out
here (a reply still streams) and reported by the system check ``streaming.E008``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from streaming.conf import app_settings
from streaming.providers.base import ToolSpec
from streaming.tools.definition import Tool, as_tool

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: dict[str, Tool | None] = {}  # dotted path -> its tool, or None when it cannot be used


def load(path: str) -> Tool:
    """The tool at ``path``, described (its schema made): ImportError, TypeError and pydantic's errors
    say why it cannot be used."""
    found = as_tool(import_string(path))
    found.parameters()
    return found


def _cached(path: str) -> Tool | None:
    with _lock:
        if path in _loaded:
            return _loaded[path]
    try:
        found: Tool | None = load(path)
    except Exception:
        logger.warning("streaming: the tool %s cannot be used (see `manage.py check`)", path, exc_info=True)
        found = None
    with _lock:
        _loaded[path] = found
    return found


def tools_for(model_id: str) -> list[Tool]:
    """The tools offered to ``model_id``, each once, in the order the setting lists them."""
    try:
        configured = app_settings.tools
    except ImproperlyConfigured:
        return []
    paths = [*configured.get("*", []), *configured.get(model_id, [])]
    tools: dict[str, Tool] = {}
    for path in dict.fromkeys(paths):
        found = _cached(path)
        if found is not None:
            tools.setdefault(found.name, found)
    return list(tools.values())


def specs(tools: list[Tool]) -> list[ToolSpec]:
    """The tools as the model is offered them."""
    return [ToolSpec(t.name, t.description, t.parameters()) for t in tools]


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "STREAMING":
        with _lock:
            _loaded.clear()
