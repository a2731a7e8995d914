"""The configured reply log backend (``STREAMING["REPLY_LOG"]``), made once per settings."""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from streaming.conf import app_settings
from streaming.replylog.base import RemoteTranscript, ReplyLog
from streaming.replylog.transcript import Slice, Transcript

__all__ = ["RemoteTranscript", "ReplyLog", "Slice", "Transcript", "reply_log"]

_backend: ReplyLog | None = None
_config: dict[str, Any] | None = None


def reply_log() -> ReplyLog:
    global _backend, _config
    if _backend is None:
        _config = app_settings.reply_log
        _backend = import_string(_config["BACKEND"])(_config.get("OPTIONS") or {})
    return _backend


@receiver(setting_changed)
def _forget_backend(*, setting: str, **kwargs: Any) -> None:
    """A new backend when ``REPLY_LOG`` changes (the transcripts of the old one go with it)."""
    global _backend
    if setting == "STREAMING" and _backend is not None and app_settings.reply_log != _config:
        _backend.close()
        _backend = None
