"""Scenario (d): database queries per reply, in-process, as the test suite counts them.

``python -m bench.queries <upstream base URL> <tokens> [<tokens> ...]`` sets Django up with the test
suite's settings (``tests.settings``) on a fresh SQLite file, points the app's real OpenAI provider at
the bench upstream (``STREAMING`` overridden as ``tests/test_services.py`` does), and runs one full
reply per token count through Django's test ``Client`` (``POST /api/chat``, the WSGI path), counting
the queries of every thread (``tests.queries``: the app's database threads run most of them), after
one warm-up reply. It prints one JSON line: a row per count with the
number of queries and their kinds.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import orjson


def main(argv: list[str]) -> None:
    base_url, counts = argv[0], [int(n) for n in argv[1:]]
    with tempfile.TemporaryDirectory(prefix="bench-queries-") as workdir:
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        os.environ["SQLITE_PATH"] = str(Path(workdir) / "db.sqlite3")
        os.environ["OPENAI_API_KEY"] = "sk-bench"
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client
        from django.test.utils import override_settings

        from tests.queries import all_queries

        call_command("migrate", interactive=False, verbosity=0)
        user = get_user_model().objects.create_user("alice")
        models = [f"openai:bench-{n}-0" for n in [1, *counts]]
        provider = {"BACKEND": "streaming.providers.openai.OpenAIProvider", "OPTIONS": {"base_url": base_url}}
        streaming = {"PROVIDERS": {"openai": provider}, "MODELS": models, "HEARTBEAT_SECONDS": 60}
        rows = []
        with override_settings(STREAMING=streaming):
            client = Client()
            client.force_login(user)
            for model, tokens in zip(models, [1, *counts], strict=True):
                with all_queries() as captured:
                    response = client.post(
                        "/api/chat",
                        {"message": "Say something.", "model": model},
                        content_type="application/json",
                    )
                    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
                if model == models[0]:
                    continue  # the warm-up
                rows.append(
                    {
                        "name": f"{tokens} tokens",
                        "tokens": tokens,
                        "relayed": body.count(b"tok "),
                        "queries": len(captured),
                        "kinds": " ".join(f"{k}:{v}" for k, v in sorted(captured.kinds().items())),
                    }
                )
    print(orjson.dumps(rows).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
