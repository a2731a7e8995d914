"""The README and docs/ stay true to the code: every relative link leads to a file (and heading) that
exists, every key of the ``STREAMING`` setting is in the README's settings table and every scalar one's
environment variable in its table, and the README stays short enough to read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from project.environment import PREFIX, is_scalar
from streaming.conf import DEFAULTS
from tests.readme import README, section
from tests.servers import ROOT

PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_lead_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


def test_the_readme_is_short_enough_to_read() -> None:
    assert len(README.read_text().splitlines()) < 350


def test_every_setting_is_in_the_readmes_tables() -> None:
    configuration = section("## Configuration")
    first_cells = [row.split(" | ")[0] for row in configuration.splitlines() if row.startswith("| `")]
    variables_table = "\n".join(cell for cell in first_cells if cell.startswith(f"| `{PREFIX}"))
    settings_table = "\n".join(cell for cell in first_cells if not cell.startswith(f"| `{PREFIX}"))
    assert [key for key in DEFAULTS if f"`{key}`" not in settings_table] == []
    scalars = [key for key, default in DEFAULTS.items() if is_scalar(default)]
    assert [key for key in scalars if f"`{PREFIX}{key}`" not in variables_table] == []


def test_the_code_states_its_rules_instead_of_citing_a_spec() -> None:
    """The repository has no SPEC: a comment that cites a section of one tells a reader nothing."""
    sources = [p for folder in ("streaming", "project", "bench", "tests") for p in (ROOT / folder).rglob("*")]
    texts = [p for p in sources if p.suffix in (".py", ".js", ".html", ".css", ".md") and p.is_file()]
    citing = [str(p.relative_to(ROOT)) for p in texts if re.search(r"SPEC\s*§", p.read_text())]
    assert citing == []
