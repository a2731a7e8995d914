"""The demo project reads every scalar ``STREAMING`` setting from ``STREAMING_<KEY>``, parsed by the type
of its default, and stops at start-up on a value it cannot read, naming the variable."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from project.environment import is_scalar, scalar_settings
from project.providers import streaming_setting
from streaming.conf import DEFAULTS, app_settings
from tests.servers import ROOT, outer_env

#: A value of each type, as an environment variable holds it, and what the setting becomes.
SAMPLES: dict[type, tuple[str, Any]] = {
    bool: ("yes", True),
    int: ("7", 7),
    float: ("2.5", 2.5),
    str: ("Answer in French.", "Answer in French."),
    type(None): ("12.50", "12.50"),
}


def test_every_scalar_setting_has_its_variable() -> None:
    scalars = {key: default for key, default in DEFAULTS.items() if is_scalar(default)}
    environ = {f"STREAMING_{key}": SAMPLES[type(default)][0] for key, default in scalars.items()}
    assert scalar_settings(environ) == {key: SAMPLES[type(default)][1] for key, default in scalars.items()}
    assert {"HEARTBEAT_SECONDS", "DATABASE_THREADS", "MONTHLY_BUDGET_USD", "SYSTEM_PROMPT"} <= set(scalars)
    assert not {"PROVIDERS", "MODELS", "FALLBACKS"} & set(scalars)


def test_a_key_added_to_the_defaults_later_is_read_by_the_type_of_its_default() -> None:
    later = {"DISCONNECT_GRACE_SECONDS": 30.0, "MAX_CONCURRENT_REPLIES": 4, "REPLIES_PER_MINUTE": 20}
    environ = {
        "STREAMING_DISCONNECT_GRACE_SECONDS": "0",
        "STREAMING_MAX_CONCURRENT_REPLIES": " 8 ",
        "STREAMING_REPLIES_PER_MINUTE": "None",
    }
    assert scalar_settings(environ, later) == {
        "DISCONNECT_GRACE_SECONDS": 0.0,
        "MAX_CONCURRENT_REPLIES": 8,
        "REPLIES_PER_MINUTE": None,  # "none", in any case: no limit
    }


def test_an_empty_variable_is_unset_and_text_is_taken_as_written() -> None:
    environ = {"STREAMING_HEARTBEAT_SECONDS": "", "STREAMING_SYSTEM_PROMPT": "none of your business"}
    assert scalar_settings(environ) == {"SYSTEM_PROMPT": "none of your business"}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("STREAMING_HEARTBEAT_SECONDS", "fast", "a number"),
        ("STREAMING_HEARTBEAT_SECONDS", "nan", "a number"),
        ("STREAMING_RETRY_ATTEMPTS", "2.5", "a whole number"),
        ("STREAMING_DEMO_TOKENS_PER_SECOND", "quick", "a number"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        streaming_setting({variable: value})
    assert str(raised.value).startswith(f"{variable}={value!r} is not valid: it takes {expected} (default ")


def test_a_bool_setting_reads_the_usual_words() -> None:
    assert scalar_settings({"STREAMING_X": "Off"}, {"X": True}) == {"X": False}
    with pytest.raises(ImproperlyConfigured, match="STREAMING_X='maybe' is not valid: it takes true or"):
        scalar_settings({"STREAMING_X": "maybe"}, {"X": True})


def test_the_demo_variables_keep_their_meaning() -> None:
    """Outside checks start the demo project with these: they must go on working as they always have."""
    setting = streaming_setting(
        {
            "STREAMING_DEMO_TOKENS_PER_SECOND": "400",
            "STREAMING_DEMO_FIRST_TOKEN_DELAY": "1.5",
            "STREAMING_MODELS": "demo:echo, openai:gpt-4.1-mini",
            "STREAMING_MONTHLY_BUDGET_USD": "12.50",
        }
    )
    assert setting["PROVIDERS"]["demo"]["OPTIONS"] == {"tokens_per_second": 400.0, "first_token_delay": 1.5}
    assert setting["MODELS"] == [
        {"id": "demo:echo", "label": "Demo (offline)", "reasoning": True},
        "openai:gpt-4.1-mini",
    ]
    with override_settings(STREAMING=setting):
        assert app_settings.monthly_budget_usd == Decimal("12.50")
    unset = streaming_setting({})
    assert unset["PROVIDERS"]["demo"]["OPTIONS"] == {"tokens_per_second": 50.0, "first_token_delay": 0.0}
    assert "MONTHLY_BUDGET_USD" not in unset


def test_the_demo_project_does_not_start_with_a_bad_value() -> None:
    env = {**outer_env(), "DJANGO_SETTINGS_MODULE": "project.settings", "STREAMING_STALE_AFTER_SECONDS": "2m"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured: STREAMING_STALE_AFTER_SECONDS='2m' is not valid" in done.stderr


def demo_cache_location(**variables: str) -> str:
    """Where the demo project's file cache (sessions included) lives under these variables."""
    env = {**outer_env(), **variables}
    code = "import project.settings as s; print(s.CACHES['default']['LOCATION'])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_the_demo_file_cache_is_private_to_the_project() -> None:
    """The file cache holds pickled sessions: in a shared, guessable /tmp directory another local user
    could read them, or plant a pickle the server would load."""
    location = Path(demo_cache_location(DATABASE_URL="postgres://demo@127.0.0.1:5432/demo"))
    assert not location.is_relative_to(tempfile.gettempdir())
    assert location.is_relative_to(ROOT)
    assert location == ROOT / ".django-cache"  # (Django's file cache makes its directory 0700)
    sqlite = demo_cache_location(SQLITE_PATH=str(ROOT / "demo.sqlite3"))
    assert sqlite == str(ROOT / "demo.sqlite3-cache")  # beside the database it serves, as before
