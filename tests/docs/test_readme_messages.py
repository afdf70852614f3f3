"""The CLI output pasted in README.md and the operator guide is what the CLI prints today, line for line.

Each situation the README shows is produced for real on a sample library; both sides are normalised (image
names, correlation ids, the library's folder: they differ from run to run) and must match in both directions,
so the docs can neither show a message the CLI no longer prints nor miss one it does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, List, Set

import pytest

from publisher_v2.cli.app import main
from publisher_v2.cli.sample import main as make_sample
from tests.cli_output import verdict_lines
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.usefixtures("clean_env")

FENCE = re.compile(r"^```text\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def normalise(line: str) -> str:
    line = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", line)
    line = re.sub(r"sample_\d{3}_[a-z]+\.(jpg|png)", "<image>", line)
    return re.sub(r"[^\s':]*sample_library", "<lib>", line)


def readme_lines() -> Set[str]:
    """The CLI lines pasted in the README and the operator guide."""
    shown = []
    for doc in (REPO_ROOT / "README.md", REPO_ROOT / "docs_v2" / "operator-guide.md"):
        text = doc.read_text(encoding="utf-8")
        found = [b for b in FENCE.findall(text) if "[correlation_id=" in b or "publisher: error:" in b]
        assert found, f"{doc.name} shows what the CLI prints"
        shown += found
    return {normalise(x) for b in shown for x in b.splitlines() if x.strip() and not x.startswith("$ ")}


def edit(ini: Path, old: str, new: str) -> None:
    text = ini.read_text(encoding="utf-8")
    assert old in text, old
    ini.write_text(text.replace(old, new, 1), encoding="utf-8")


def blocked(platforms: List[str]) -> Callable[[Path], None]:
    def setup(ini: Path) -> None:
        (ini.parent / "outbox").mkdir()
        for platform in platforms:
            (ini.parent / "outbox" / platform).write_text("a file, not a folder\n")

    return setup


def all_posted(ini: Path) -> None:
    edit(ini, "archive = true", "archive = false")
    for _ in range(2):
        assert main(["--config", str(ini)]) == 0


def one_post_waiting(ini: Path) -> None:
    """A run that failed on instagram (exit 3), then instagram works again: the next run says a post waits."""
    blocked(["instagram"])(ini)
    assert main(["--config", str(ini)]) == 3
    (ini.parent / "outbox" / "instagram").unlink()


SITUATIONS = {
    "published": ([], None),
    "debug": (["--debug"], None),
    "dry run": (["--dry-publish"], None),
    "partial": ([], blocked(["instagram"])),
    "a post waits": ([], one_post_waiting),
    "every platform failed": ([], blocked(["telegram", "instagram", "email"])),
    "nothing new": ([], all_posted),
    "no platform": (
        [],
        lambda ini: [edit(ini, f"{p} = true", f"{p} = false") for p in ("telegram", "instagram", "email")],
    ),
    "library is a file": ([], lambda ini: edit(ini, "image_folder = images", "image_folder = publisher.ini")),
    "live without secret": (
        [],
        lambda ini: edit(ini, "[Publishing]\nbackend = outbox", "[Publishing]\nbackend = live"),
    ),
    "unclosed header": ([], lambda ini: edit(ini, "[Local]", "[Local")),
    "no header": ([], lambda ini: ini.write_text("backend = local\n" + ini.read_text())),
}


@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_what_the_readme_shows_is_what_the_cli_prints(
    situation: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args, setup = SITUATIONS[situation]
    assert make_sample([str(tmp_path / "sample_library"), "--count", "2", "--seed", "3"]) == 0
    ini = tmp_path / "sample_library" / "publisher.ini"
    if setup is not None:
        setup(ini)
    capsys.readouterr()
    main(["--config", str(ini), *args])
    out, err = capsys.readouterr()
    printed = [normalise(x) for x in out.splitlines()]
    printed += [normalise(x) for x in verdict_lines(err)]  # the docs show the verdict event's text
    assert printed, situation
    missing = [line for line in printed if line not in readme_lines()]
    assert missing == [], f"README.md does not show what the CLI prints for {situation}"


def test_the_readme_shows_nothing_the_cli_does_not_print(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    printed: Set[str] = set()
    for number, (args, setup) in enumerate(SITUATIONS.values()):
        assert make_sample([str(tmp_path / str(number) / "sample_library"), "--count", "2", "--seed", "3"]) == 0
        ini = tmp_path / str(number) / "sample_library" / "publisher.ini"
        if setup is not None:
            setup(ini)
        capsys.readouterr()
        main(["--config", str(ini), *args])
        out, err = capsys.readouterr()
        printed |= {normalise(x) for x in out.splitlines()}
        printed |= {normalise(x) for x in verdict_lines(err)}
    assert sorted(readme_lines() - printed) == []
