"""The provider registry: one instance per configured name, built from ``STREAMING["PROVIDERS"]``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from streaming.conf import app_settings
from streaming.providers.base import ChatMessage, ChatRequest, Provider

__all__ = ["ChatMessage", "ChatRequest", "Provider", "get_provider", "load_configured"]

logger = logging.getLogger(__name__)
_instances: dict[str, Provider] = {}


def get_provider(name: str) -> Provider:
    """The configured provider called ``name``; KeyError if there is none."""
    try:
        return _instances[name]
    except KeyError:
        pass
    config: dict[str, Any] = app_settings.providers[name]
    backend = import_string(config["BACKEND"])
    instance: Provider = backend(name, config.get("OPTIONS") or {})
    _instances[name] = instance
    return instance


def load_configured() -> None:
    """Make every configured provider now, and so import its SDK: at start-up (``AppConfig.ready``), not
    on an ASGI worker's event loop at its first reply, where an import of a second or more would stall
    every stream. A backend that cannot be made is left to the system check (``streaming.E001``)."""
    for name in app_settings.providers:
        try:
            get_provider(name)
        except Exception:
            logger.debug("streaming: provider %r could not be made at start-up", name, exc_info=True)


@receiver(setting_changed)
def _forget_providers(*, setting: str, **kwargs: Any) -> None:
    if setting == "STREAMING":
        _instances.clear()
