"""axe-core in the browser tests: the pinned copy from the npm registry (``tests/js/package.json``, installed
by ``npm ci --prefix tests/js``), run inside a Playwright page; a test asserts no serious or critical finding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import require

AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def require_axe() -> None:
    """Skip without axe-core on a developer's machine; fail under CI, where .ci/run installs it."""
    require(AXE.exists(), f"axe-core is not installed at {AXE}: run `npm ci --prefix tests/js`")


def where(found: dict[str, Any]) -> list[Any]:
    return [node["target"] for node in found["nodes"][:4]]


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one readable line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{found['id']} ({found['impact']}): {found['help']} at {where(found)}"
        for found in result["violations"]
        if found["impact"] in BLOCKING
    ]
