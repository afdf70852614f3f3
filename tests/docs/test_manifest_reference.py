"""`docs_v2/manifest-reference.md` says what the loader and `autoinstrument check` really say.

Every YAML block followed by a `text` block is loaded (or checked) and must give exactly that text; every YAML
block on its own must be a valid manifest that `autoinstrument check` passes. So the reference cannot drift
from the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

import pytest

from autoinstrument.check import render_line, run_check
from autoinstrument.manifest import ManifestError, load_manifest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs_v2" / "manifest-reference.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> List[Tuple[str, str, bool]]:
    """(language, body, directly after the previous block: nothing but blank lines between them)."""
    text = DOC.read_text(encoding="utf-8")
    out, end = [], None
    for m in FENCE.finditer(text):
        adjacent = end is not None and text[end : m.start()].strip() == ""
        out.append((m.group(1), m.group(2), adjacent))
        end = m.end()
    return out


def pairs() -> Tuple[List[Tuple[str, str]], List[str], List[str]]:
    """(yaml, expected text) pairs, YAML blocks that stand alone, and text blocks without YAML."""
    found = blocks()
    paired, alone, orphans = [], [], []
    i = 0
    while i < len(found):
        lang, body, _adjacent = found[i]
        following = found[i + 1] if i + 1 < len(found) else None
        if lang == "yaml" and following is not None and following[0] == "text" and following[2]:
            paired.append((body, following[1]))
            i += 2
            continue
        if lang == "yaml":
            alone.append(body)
        elif lang == "text":
            orphans.append(body)
        i += 1
    return paired, alone, orphans


PAIRS, ALONE, ORPHANS = pairs()


def test_the_reference_has_examples_for_every_kind_of_mistake() -> None:
    loader = [text for _yaml, text in PAIRS if text.startswith("telemetry.yaml:")]
    check = [text for _yaml, text in PAIRS if not text.startswith("telemetry.yaml:")]
    assert len(loader) >= 30 and len(check) >= 3 and len(ALONE) >= 5


@pytest.mark.parametrize("yaml_text, expected", PAIRS, ids=[f"example-{i}" for i in range(len(PAIRS))])
def test_each_documented_mistake_gives_exactly_the_documented_output(
    yaml_text: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("telemetry.yaml").write_text(yaml_text, encoding="utf-8")
    if expected.startswith("telemetry.yaml:"):
        with pytest.raises(ManifestError) as caught:
            load_manifest("telemetry.yaml")
        assert str(caught.value) + "\n" == expected
    else:
        report = run_check("telemetry.yaml")
        assert "".join(render_line(r) + "\n" for r in report.results) == expected


@pytest.mark.parametrize("yaml_text", ALONE, ids=[f"valid-{i}" for i in range(len(ALONE))])
def test_each_documented_manifest_is_valid_and_passes_check(
    yaml_text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("telemetry.yaml").write_text(yaml_text, encoding="utf-8")
    load_manifest("telemetry.yaml")
    report = run_check("telemetry.yaml")
    assert report.ok, [render_line(r) for r in report.results]


def test_the_unreadable_file_message_is_the_loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [orphan] = ORPHANS
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError) as caught:
        load_manifest("telemetry.yaml")
    assert str(caught.value) + "\n" == orphan
