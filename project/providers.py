"""Build the demo project's ``STREAMING`` setting from the environment.

Each provider whose key is set is enabled with a few of its models; ``demo`` is always there.
``STREAMING_MODELS`` (comma-separated ``provider:model``) replaces the model list. The demo provider's
pace comes from ``STREAMING_DEMO_TOKENS_PER_SECOND`` (default 50) and ``STREAMING_DEMO_FIRST_TOKEN_DELAY``
(seconds, default 0). Every scalar setting comes from ``STREAMING_<KEY>`` (``project.environment``):
``STREAMING_HEARTBEAT_SECONDS=5``, ``STREAMING_MONTHLY_BUDGET_USD=20``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from project.environment import parse, scalar_settings

PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {
        "keys": ("OPENAI_API_KEY",),
        "BACKEND": "streaming.providers.openai.OpenAIProvider",
        "MODELS": [
            {"id": "openai:gpt-4.1-mini", "label": "GPT-4.1 mini"},
            {"id": "openai:gpt-5-mini", "label": "GPT-5 mini", "reasoning": True},
        ],
    },
    "anthropic": {
        "keys": ("ANTHROPIC_API_KEY",),
        "BACKEND": "streaming.providers.anthropic.AnthropicProvider",
        "MODELS": [{"id": "anthropic:claude-haiku-4-5", "label": "Claude Haiku 4.5", "reasoning": True}],
    },
    "gemini": {
        "keys": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        "BACKEND": "streaming.providers.gemini.GeminiProvider",
        "MODELS": [{"id": "gemini:gemini-2.5-flash", "label": "Gemini 2.5 Flash", "reasoning": True}],
    },
}

DEMO_MODEL = {"id": "demo:echo", "label": "Demo (offline)", "reasoning": True}
#: The demo project's example tools, offered to every model it configures (project.tools).
TOOLS = ["project.tools.current_time", "project.tools.search_conversations"]


def streaming_setting(environ: Mapping[str, str]) -> dict[str, Any]:
    providers: dict[str, Any] = {
        "demo": {
            "BACKEND": "streaming.providers.demo.DemoProvider",
            "OPTIONS": {
                "tokens_per_second": demo_option(environ, "STREAMING_DEMO_TOKENS_PER_SECOND", 50.0),
                "first_token_delay": demo_option(environ, "STREAMING_DEMO_FIRST_TOKEN_DELAY", 0.0),
            },
        }
    }
    models: list[Any] = []
    for name, entry in PROVIDERS.items():
        if any(environ.get(key) for key in entry["keys"]):
            providers[name] = {"BACKEND": entry["BACKEND"], "OPTIONS": {}}
            models += entry["MODELS"]
    models.append(DEMO_MODEL)
    override = [m.strip() for m in environ.get("STREAMING_MODELS", "").split(",") if m.strip()]
    if override:
        labelled = {m["id"]: m for m in models}
        models = [labelled.get(model_id, model_id) for model_id in override]
    setting = {"PROVIDERS": providers, "MODELS": models, "TOOLS": TOOLS, **scalar_settings(environ)}
    if environ.get("REDIS_URL"):  # replies readable through every process: a reload may reach another
        setting["REPLY_LOG"] = {
            "BACKEND": "streaming.replylog.redis.RedisReplyLog",
            "OPTIONS": {"URL": environ["REDIS_URL"]},
        }
    return setting


def demo_option(environ: Mapping[str, str], name: str, default: float) -> float:
    """A number of the demo provider's ``OPTIONS``; a bad value names its variable, as the settings' do."""
    text = environ.get(name, "")
    return float(parse(name, text, default, none_allowed=False)) if text.strip() else default
