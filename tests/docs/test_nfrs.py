"""`docs_v2/nfrs.md` states the budgets `telemetry.yaml` really has, and the docs' links resolve."""

from __future__ import annotations

import re
from pathlib import Path

from autoinstrument.manifest import load_manifest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs_v2"
ROW = re.compile(r"^\|[^|]+\| `([a-z0-9_]+_ms)` \| (\d+) ms \|$", re.MULTILINE)
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def anchors(markdown: str) -> set:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_the_nfr_table_is_the_manifests_p95_budgets() -> None:
    table = {field: float(limit) for field, limit in ROW.findall((DOCS / "nfrs.md").read_text(encoding="utf-8"))}
    budgets = {b.field: b.limits for b in load_manifest(str(REPO / "telemetry.yaml")).budgets}
    assert table and {field: {"p95": limit} for field, limit in table.items()} == budgets


def test_every_relative_link_in_docs_v2_points_at_an_existing_file_and_heading() -> None:
    checked = 0
    for doc in sorted(DOCS.glob("*.md")):
        for target, anchor in LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            path = (doc.parent / target).resolve()
            assert path.exists(), f"{doc.name}: broken link {target}"
            if anchor:
                assert anchor[1:] in anchors(path.read_text(encoding="utf-8")), f"{doc.name}: {target}{anchor}"
            checked += 1
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for name in ("operator-guide.md", "manifest-reference.md", "nfrs.md", "examples.md", "benchmarks.md"):
        assert f"]({name})" in index
    assert checked >= 10
