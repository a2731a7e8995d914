"""Build the demo project's ``STREAMING`` setting from the environment.

Each provider whose key is set is enabled with a few of its models; ``demo`` is always there.
``STREAMING_MODELS`` (comma-separated ``provider:model``) replaces the model list.
The demo provider's pace comes from ``STREAMING_DEMO_TOKENS_PER_SECOND`` (default 50) and
``STREAMING_DEMO_FIRST_TOKEN_DELAY`` (seconds, default 0); ``STREAMING_HEARTBEAT_SECONDS`` sets how
often a quiet stream sends a ``: ping`` (default 15), and ``STREAMING_STALE_AFTER_SECONDS`` how long a
reply may go untouched before it counts as interrupted (its process died; default 120);
``STREAMING_DATABASE_THREADS`` and ``STREAMING_DATABASE_IDLE_SECONDS`` size the app's database threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def streaming_setting(environ: Mapping[str, str]) -> dict[str, Any]:
    providers: dict[str, Any] = {
        "demo": {
            "BACKEND": "streaming.providers.demo.DemoProvider",
            "OPTIONS": {
                "tokens_per_second": float(environ.get("STREAMING_DEMO_TOKENS_PER_SECOND", "50")),
                "first_token_delay": float(environ.get("STREAMING_DEMO_FIRST_TOKEN_DELAY", "0")),
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
    setting: dict[str, Any] = {"PROVIDERS": providers, "MODELS": models}
    for key in ("HEARTBEAT_SECONDS", "STALE_AFTER_SECONDS", "DATABASE_THREADS", "DATABASE_IDLE_SECONDS"):
        value = environ.get(f"STREAMING_{key}")
        if value:
            setting[key] = float(value)
    grace = environ.get("STREAMING_DISCONNECT_GRACE_SECONDS")
    if grace:
        setting["DISCONNECT_GRACE_SECONDS"] = None if grace.strip().lower() == "none" else float(grace)
    budget = environ.get("STREAMING_MONTHLY_BUDGET_USD")
    if budget:
        setting["MONTHLY_BUDGET_USD"] = budget
    return setting
