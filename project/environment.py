"""Every scalar ``STREAMING`` setting from an environment variable ``STREAMING_<KEY>``, so that a deployment
is configured without code.

Which keys, and how each value is read, come from the defaults in ``streaming.conf.DEFAULTS``: a key
added there later is picked up without a change here. A value is parsed by the type of its key's
default: a whole number, a number, ``true``/``false``, or text (a key whose default is None takes the
text, which the app parses itself: ``MONTHLY_BUDGET_USD=12.50``). ``none`` means None (no limit, or
the setting's "off") for every key whose default is not text; an empty variable counts as unset. A
value that does not parse stops the start with ``ImproperlyConfigured`` naming the variable.
Settings that are not scalars (``PROVIDERS``, ``MODELS``, ``FALLBACKS``) are not read this way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from streaming.conf import DEFAULTS

PREFIX = "STREAMING_"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def is_scalar(default: Any) -> bool:
    return default is None or isinstance(default, bool | int | float | str)


def scalar_settings(environ: Mapping[str, str], defaults: Mapping[str, Any] = DEFAULTS) -> dict[str, Any]:
    """The scalar settings that ``environ`` sets, parsed by the type of their defaults."""
    found = {}
    for key, default in defaults.items():
        name = PREFIX + key
        text = environ.get(name, "")
        if is_scalar(default) and text.strip():
            found[key] = parse(name, text, default)
    return found


def parse(name: str, text: str, default: Any, *, none_allowed: bool = True) -> Any:
    """``text``, the value of the variable ``name``, read as a value of the type of ``default``."""
    if isinstance(default, str):
        return text
    value = text.strip()
    if none_allowed and value.lower() == "none":
        return None
    if default is None:
        return value
    if isinstance(default, bool):
        if value.lower() in TRUE + FALSE:
            return value.lower() in TRUE
        expected = "true or false"
    elif isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            expected = "a whole number"
    else:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
        expected = "a number"
    alternative = ", or none" if none_allowed else ""
    raise ImproperlyConfigured(
        f"{name}={text!r} is not valid: it takes {expected} (default {default!r}){alternative}."
    )
