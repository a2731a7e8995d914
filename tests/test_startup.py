"""At start-up (``django.setup()``), the app makes its configured providers, and so imports their SDKs:
an SDK imported by the first reply instead would freeze an ASGI worker's event loop for a second or
more, every stream of it included. Nothing else happens: no network, no SDK of a provider not configured."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import ROOT, outer_env

PROBE = """
import sys
import django
django.setup()
from streaming.providers import _instances
print(sorted(_instances), *(name in sys.modules for name in ("openai", "anthropic", "google.genai")))
"""


def started(**variables: str) -> str:
    env = {**outer_env(), "DJANGO_SETTINGS_MODULE": "project.settings", **variables}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_sdks_of_configured_providers_are_imported_at_start_up() -> None:
    every = started(OPENAI_API_KEY="sk-x", ANTHROPIC_API_KEY="sk-x", GEMINI_API_KEY="x")
    assert every == "['anthropic', 'demo', 'gemini', 'openai'] True True True"


def test_an_sdk_whose_provider_is_not_configured_is_not_imported() -> None:
    assert started(ANTHROPIC_API_KEY="sk-x") == "['anthropic', 'demo'] False True False"


def test_a_backend_that_cannot_be_imported_is_left_to_the_system_check() -> None:
    """(``streaming.E001`` reports it, with the checks; start-up goes on.)"""
    configure = (
        "from django.conf import settings\nimport tests.settings as base\n"
        "names = {name: getattr(base, name) for name in dir(base) if name.isupper()}\n"
        "names['STREAMING'] = {'PROVIDERS': {'x': {'BACKEND': 'no.such.Provider'}}, 'MODELS': ['x:y']}\n"
        "settings.configure(**names)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", configure + PROBE], cwd=ROOT, env=outer_env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "[] False False False"), done.stderr
