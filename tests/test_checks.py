"""System checks for the STREAMING setting, each with its stable id."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.checks import check_streaming_settings

DEMO = {"BACKEND": "streaming.providers.demo.DemoProvider"}


def ids(settings: Any, streaming: dict[str, Any]) -> list[str]:
    settings.STREAMING = streaming
    return [str(message.id) for message in check_streaming_settings()]


def test_the_test_settings_are_clean(settings: Any) -> None:
    assert check_streaming_settings() == []


@pytest.mark.parametrize(
    "backend", ["streaming.providers.nope.Missing", "streaming.conf.StreamingSettings", None]
)
def test_e001_unusable_backend(settings: Any, backend: Any) -> None:
    messages_ids = ids(settings, {"PROVIDERS": {"demo": {"BACKEND": backend}}, "MODELS": ["demo:echo"]})
    assert messages_ids == ["streaming.E001"]


@pytest.mark.parametrize("entry", ["no-colon", ":model", "demo:", "demo:two words", {"label": "no id"}])
def test_e002_malformed_model_id(settings: Any, entry: Any) -> None:
    assert ids(settings, {"PROVIDERS": {"demo": DEMO}, "MODELS": [entry]}) == ["streaming.E002"]


def test_e003_model_of_an_unknown_provider(settings: Any) -> None:
    assert ids(settings, {"PROVIDERS": {"demo": DEMO}, "MODELS": ["mystery:model"]}) == ["streaming.E003"]


def test_w004_provider_without_its_key_names_the_variable(settings: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("STREAMING_TEST_KEY", raising=False)
    provider = {
        "BACKEND": "streaming.providers.demo.DemoProvider",
        "OPTIONS": {"api_key_env": "STREAMING_TEST_KEY"},
    }
    settings.STREAMING = {"PROVIDERS": {"demo": provider}, "MODELS": ["demo:echo"]}
    [warning] = check_streaming_settings()
    assert warning.id == "streaming.W004"
    assert "STREAMING_TEST_KEY" in str(warning.hint)

    monkeypatch.setenv("STREAMING_TEST_KEY", "set")
    assert check_streaming_settings() == []


def test_w004_not_for_a_local_server_that_needs_no_key(settings: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    local = {"base_url": "http://127.0.0.1:11434/v1", "require_api_key": False}
    ollama = {"BACKEND": "streaming.providers.openai.OpenAIProvider", "OPTIONS": local}
    vllm = {
        "BACKEND": "streaming.providers.openai.OpenAIProvider",
        "OPTIONS": {"api_key_env": "VLLM_API_KEY", "require_api_key": False},
    }
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    models = ["ollama:llama3.2", "vllm:Qwen/Qwen3-8B"]
    assert ids(settings, {"PROVIDERS": {"ollama": ollama, "vllm": vllm}, "MODELS": models}) == []
    # The same server with a key required (the default) is warned about.
    del local["require_api_key"]
    assert ids(settings, {"PROVIDERS": {"ollama": ollama}, "MODELS": ["ollama:llama3.2"]}) == [
        "streaming.W004"
    ]


def test_e005_default_or_fallback_outside_the_allowlist(settings: Any) -> None:
    streaming = {
        "PROVIDERS": {"demo": DEMO},
        "MODELS": ["demo:echo"],
        "DEFAULT_MODEL": "demo:other",
        "FALLBACKS": {"demo:echo": ["demo:missing"]},
    }
    assert ids(settings, streaming) == ["streaming.E005", "streaming.E005"]


@pytest.mark.parametrize("budget", ["ten dollars", "-5", "NaN", "Infinity"])
def test_e006_malformed_budget(settings: Any, budget: str) -> None:
    streaming = {"PROVIDERS": {"demo": DEMO}, "MODELS": ["demo:echo"], "MONTHLY_BUDGET_USD": budget}
    assert ids(settings, streaming) == ["streaming.E006"]


@pytest.mark.parametrize("budget", ["25", "7.50", 0, None, ""])
def test_a_budget_in_dollars_passes(settings: Any, budget: Any) -> None:
    streaming = {"PROVIDERS": {"demo": DEMO}, "MODELS": ["demo:echo"], "MONTHLY_BUDGET_USD": budget}
    assert ids(settings, streaming) == []
