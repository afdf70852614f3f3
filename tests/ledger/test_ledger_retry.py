"""`ledger retry` on a post that failed on one platform (issue 22.1): only the failed platforms are sent again,
from the archive, with the ledger's guarantees (one retry at a time, a posted platform never re-sent, a kill
mid-retry leaves an outcome the operator resolves). The installed CLI on a sample library with the outbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from publisher_v2.ledger import PostLedger
from tests.cli_output import verdict_lines
from tests.conftest import CORE_HELPERS

PUBLISHER = Path(sys.executable).with_name("publisher")
KILLER = CORE_HELPERS / "stage_killer.py"


def cli(ini: Path, *args: str, killer_stage: str = "") -> subprocess.CompletedProcess:
    prefix = [sys.executable, str(KILLER), killer_stage] if killer_stage else [str(PUBLISHER)]
    tmp = ini.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp))
    return subprocess.run([*prefix, "--config", str(ini), *args], capture_output=True, text=True, timeout=120, env=env)


def posts(outbox: Path, name: str) -> List[str]:
    """The platforms the outbox holds a post of `name` for, one entry per post."""
    found = [json.loads(p.read_text(encoding="utf-8")) for p in outbox.glob("*/*/post.json")]
    return sorted(p["platform"] for p in found if p["image_name"] == name)


@pytest.fixture
def partly_posted(tmp_path: Path) -> tuple:
    """A sample library whose first run posted to telegram and email, failed on instagram, and archived."""
    from publisher_v2.cli.sample import main as make_sample

    assert make_sample([str(tmp_path / "lib"), "--count", "2", "--seed", "5"]) == 0
    ini, outbox = tmp_path / "lib" / "publisher.ini", tmp_path / "lib" / "outbox"
    outbox.mkdir()
    (outbox / "instagram").write_text("a file where the platform's folder should be\n")
    first = cli(ini)
    assert first.returncode == 3, first.stderr
    name = first.stdout.split()[1]
    assert posts(outbox, name) == ["email", "telegram"]
    assert (tmp_path / "lib" / "images" / "archive" / name).is_file()
    (outbox / "instagram").unlink()
    return ini, outbox, name


@pytest.mark.slow
def test_a_platform_recorded_as_posted_is_never_named_for_a_retry(partly_posted: tuple) -> None:
    ini, outbox, name = partly_posted
    refused = cli(ini, "ledger", "retry", name, "--platform", "telegram")
    assert refused.returncode == 1
    (line,) = verdict_lines(refused.stderr)
    assert line.startswith(f"publisher: error: {name} is recorded as posted on telegram (id ")
    assert line.endswith("); never sent twice")
    assert posts(outbox, name) == ["email", "telegram"]


@pytest.mark.slow
def test_a_retry_killed_mid_send_leaves_an_unknown_outcome_that_nothing_re_sends_by_itself(
    partly_posted: tuple,
) -> None:
    ini, outbox, name = partly_posted
    killed = cli(ini, "ledger", "retry", name, killer_stage="first_post")  # instagram written, outcome not recorded
    assert killed.returncode == -9
    assert posts(outbox, name) == ["email", "instagram", "telegram"]
    (entry,) = json.loads(cli(ini, "ledger", "list", "--json").stdout)["unfinished"]
    assert entry["image_name"] == name and entry["platforms"]["instagram"]["state"] == "sending"

    ordinary = cli(ini)  # the next run posts the other image; it never re-sends the unknown one
    assert ordinary.returncode == 0, ordinary.stderr
    assert "; 1 post needs attention: run `publisher --config " in ordinary.stdout
    assert posts(outbox, name) == ["email", "instagram", "telegram"]

    again = cli(ini, "ledger", "retry", name)  # an unknown outcome is not sent until the operator says so
    assert f"{name}: still unfinished" in again.stdout and "UNKNOWN" in again.stdout
    assert posts(outbox, name) == ["email", "instagram", "telegram"]
    marked = cli(ini, "ledger", "mark-posted", name)  # the operator saw the instagram post
    assert marked.returncode == 0, marked.stderr
    assert f"{name}: finished (posted on email, instagram, telegram)" in marked.stdout
    listing = json.loads(cli(ini, "ledger", "list", "--json").stdout)
    assert listing["unfinished"] == [] and listing["failed_platforms"] == []
    assert posts(outbox, name) == ["email", "instagram", "telegram"]  # one post per platform, in the end


def test_only_one_of_two_retries_reopens_a_post(db: object) -> None:
    first, second = PostLedger(db), PostLedger(db)  # type: ignore[arg-type]
    assert first.claim("h" * 16, "a.jpg")
    first.mark_publishing("h" * 16)
    for platform, ok in (("telegram", True), ("email", False)):
        assert first.begin_sending("h" * 16, platform)
        first.record_outcome("h" * 16, platform, ok, "id" if ok else None, None if ok else "down")
    assert first.finish_post("h" * 16, "a.jpg", archive=False)
    assert [e.image_name for e in first.partly_failed(["email"])] == ["a.jpg"]
    assert first.partly_failed(["telegram"]) == []  # a failure on a platform switched off is not counted

    assert second.reopen_failed("h" * 16) and not first.reopen_failed("h" * 16)
    assert not first.begin_sending("h" * 16, "email")  # not the holder
    assert not second.begin_sending("h" * 16, "telegram")  # posted: never sent twice
    assert second.begin_sending("h" * 16, "email")
    assert not second.reopen_failed("h" * 16)  # an unknown outcome: nothing reopens it
    second.record_outcome("h" * 16, "email", True, "mail-1", None)
    assert second.finish_post("h" * 16, "a.jpg", archive=False)
    assert second.partly_failed() == [] and not second.reopen_failed("h" * 16)
    first.close()
    second.close()


@pytest.mark.slow
def test_retry_finds_an_image_the_archive_renamed_to_avoid_a_clash(tmp_path: Path) -> None:
    from PIL import Image

    from publisher_v2.cli.sample import main as make_sample

    assert make_sample([str(tmp_path / "lib"), "--count", "1", "--seed", "6"]) == 0
    ini, outbox, images = tmp_path / "lib" / "publisher.ini", tmp_path / "lib" / "outbox", tmp_path / "lib" / "images"
    (name,) = [p.name for p in images.iterdir() if p.suffix in (".jpg", ".png")]
    (images / "archive").mkdir()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(images / "archive" / name)  # an older, different image, same name
    outbox.mkdir()
    (outbox / "email").write_text("a file where the platform's folder should be\n")
    assert cli(ini).returncode == 3
    stem, suffix = Path(name).stem, Path(name).suffix
    assert (images / "archive" / f"{stem}_1{suffix}").is_file()  # archived under another name
    (outbox / "email").unlink()
    retried = cli(ini, "ledger", "retry", name)
    assert retried.returncode == 0, retried.stderr
    assert posts(outbox, name) == ["email", "instagram", "telegram"]
    (email,) = outbox.glob("email/*/post.json")
    sent = [p for p in email.parent.iterdir() if p.suffix == suffix]
    assert sent and sent[0].read_bytes() == (images / "archive" / f"{stem}_1{suffix}").read_bytes()
