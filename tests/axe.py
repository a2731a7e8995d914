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


#: Colours as the page paints them, and their WCAG contrast against what is behind them.
CONTRAST = """
(el) => {
  const rgb = (text) => (text.match(/[0-9.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => [r, g, b].map((c) => {
    c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)];
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  };
  const behind = (node) => {
    for (let at = node.parentElement; at; at = at.parentElement) {
      const colour = rgb(getComputedStyle(at).backgroundColor);
      if (colour.length === 3 || colour[3] > 0) return colour;
    }
    return rgb(getComputedStyle(document.body).backgroundColor);
  };
  const style = getComputedStyle(el);
  const own = rgb(style.backgroundColor);
  const ground = own.length === 3 || own[3] > 0 ? own : behind(el);
  const paint = el instanceof SVGElement ? rgb(style.fill) : rgb(style.color);
  return ratio(paint.slice(0, 3), ground.slice(0, 3));
}
"""
