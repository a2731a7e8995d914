"""The demo project's settings plus what the browser tests need, for servers started by ``tests.servers``.

The app is mounted under ``/chat/`` (the page must work under any prefix), static files are served by
the demo's WhiteNoise under every server kind, and a few test models join the demo's:

- ``paced:echo``: the demo reply at a steady, readable pace (partial text can be seen, and stopped);
- ``long:echo``: a reply of at least ``STREAMING_BROWSER_LONG_TOKENS`` tokens (default 5,000), fast;
- ``flaky:model``: fails after a few tokens (see ``tests.browser_providers``);
- ``hostile:model``: a reply full of HTML and links that would run script if rendered unsanitized;
- ``chunky:model``: the demo reply in four bursts, half a second apart;
- ``approver:model``: asks to run ``remember``, a tool that needs the user's approval.
- ``markdown:model``: a plan with a task list, a wide table and code in two languages;
- ``broken:model``: an error before the first word (a reply with no text).
"""

from __future__ import annotations

import os

from project.settings import *  # noqa: F403
from project.settings import STREAMING

ROOT_URLCONF = "tests.urls_browser"

STREAMING = {
    **STREAMING,
    "PROVIDERS": {
        **STREAMING["PROVIDERS"],
        "paced": {
            "BACKEND": "streaming.providers.demo.DemoProvider",
            "OPTIONS": {"tokens_per_second": float(os.environ.get("STREAMING_BROWSER_PACED_TPS", "25"))},
        },
        "long": {
            "BACKEND": "streaming.providers.demo.DemoProvider",
            "OPTIONS": {
                "tokens_per_second": float(os.environ.get("STREAMING_BROWSER_LONG_TPS", "1000")),
                "min_reply_tokens": int(os.environ.get("STREAMING_BROWSER_LONG_TOKENS", "5000")),
            },
        },
        "flaky": {"BACKEND": "tests.browser_providers.FlakyProvider"},
        "hostile": {"BACKEND": "tests.browser_providers.HostileProvider"},
        "chunky": {"BACKEND": "tests.browser_providers.ChunkyProvider"},
        "approver": {"BACKEND": "tests.browser_providers.ApprovalProvider"},
        "markdown": {"BACKEND": "tests.browser_providers.MarkdownProvider"},
        "broken": {"BACKEND": "tests.browser_providers.BrokenProvider"},
    },
    "MODELS": [
        *STREAMING["MODELS"],
        {"id": "paced:echo", "label": "Demo, paced", "reasoning": True},
        {"id": "long:echo", "label": "Demo, 5,000 tokens"},
        {"id": "flaky:model", "label": "Flaky"},
        {"id": "hostile:model", "label": "Hostile HTML"},
        {"id": "chunky:model", "label": "Chunky"},
        {"id": "approver:model", "label": "Asks before it acts"},
        {"id": "markdown:model", "label": "Markdown"},
        {"id": "broken:model", "label": "Broken"},
    ],
    # The demo project's tools for every model, and one that needs the user's approval.
    "TOOLS": {"*": STREAMING["TOOLS"], "approver:model": ["tests.example_tools.remember"]},
    "STOP_POLL_SECONDS": 0.05,
}
