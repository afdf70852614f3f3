"""Upstream's posted.json is imported into the ledger once, on first use: valid, corrupt, absent, repeated."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from publisher_v2.utils.state import PostLedger
from publisher_v2.utils.upstream_state import (
    IMPORTED_NAME,
    import_upstream_posted,
    ledger_key,
    marker_path,
    upstream_posted_path,
)
from tests.conftest import BIN, json_events


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An XDG cache folder of our own; returns where upstream's posted.json goes in it."""
    base = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(base))
    path = upstream_posted_path()
    assert path == base / "publisher_v2" / "posted.json"
    path.parent.mkdir(parents=True)
    return path


def events(caplog: pytest.LogCaptureFixture) -> List[Dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]


def named(caplog: pytest.LogCaptureFixture, name: str) -> List[Dict]:
    return [e for e in events(caplog) if e["message"] == name]


def test_default_path_is_under_home_cache_without_xdg() -> None:
    assert upstream_posted_path({}) == Path.home() / ".cache" / "publisher_v2" / "posted.json"
    assert upstream_posted_path({"XDG_CACHE_HOME": ""}) == Path.home() / ".cache" / "publisher_v2" / "posted.json"
    assert upstream_posted_path({"XDG_CACHE_HOME": "/x"}) == Path("/x/publisher_v2/posted.json")


def test_the_cli_skips_every_image_upstream_posted(sample_library: Path, cache: Path, clean_env: Dict) -> None:
    """A real `publisher` run over a library where upstream posted all images but one picks that one."""
    images = sorted(p for p in (sample_library.parent / "images").iterdir() if p.is_file() and p.suffix != ".txt")
    assert len(images) == 8 and all(p.stat().st_size <= 4 * 1024 * 1024 for p in images)
    left = images[3]
    cache.write_text(json.dumps(sorted(sha256_of(p) for p in images if p != left)))  # upstream's own format
    env = {**clean_env, "XDG_CACHE_HOME": str(cache.parent.parent)}
    out = subprocess.run(
        [str(BIN / "publisher"), "--config", str(sample_library)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = json_events(out.stderr)
    imported = [e for e in lines if e["message"] == "upstream_state_imported"]
    assert len(imported) == 1 and imported[0]["hashes"] == 7 and imported[0]["imported"] == 7
    assert imported[0]["level"] == "INFO" and imported[0]["path"] == str(cache)
    assert not [e for e in lines if e["message"] == "ledger_post_recorded" and e.get("image_name") == IMPORTED_NAME]
    done = [e for e in lines if e["message"] == "workflow_complete"]
    assert done and done[-1]["image_name"] == left.name and done[-1]["success"] is True
    # A second run: nothing left to post, and no second import.
    again = subprocess.run(
        [str(BIN / "publisher"), "--config", str(sample_library)], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 1
    assert not [e for e in json_events(again.stderr) if e["message"].startswith("upstream_state")]


def test_valid_file_in_the_object_form_is_imported_once(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hashes = [hashlib.sha256(f"image {i}".encode()).hexdigest() for i in range(5)]
    cache.write_text(json.dumps({"hashes": hashes + [hashes[0].upper(), "not-a-hash", 12]}))
    ledger_path = tmp_path / "state" / "ledger.sqlite"
    with PostLedger(ledger_path) as ledger:
        assert ledger.posted_count() == 5
        for h in hashes:
            row = ledger.get(ledger_key(h))
            assert row is not None and row["status"] == "posted" and row["image_name"] == IMPORTED_NAME
    [event] = named(caplog, "upstream_state_imported")
    assert (event["hashes"], event["imported"], event["already_known"], event["invalid"]) == (5, 5, 0, 2)
    assert json.loads(marker_path(ledger_path).read_text())["imported"] == 5
    # Opened again, even with a longer file: imported once only.
    cache.write_text(json.dumps(hashes + [hashlib.sha256(b"later").hexdigest()]))
    with PostLedger(ledger_path) as ledger:
        assert ledger.posted_count() == 5
    assert import_upstream_posted(PostLedger(ledger_path)) is None
    assert len(named(caplog, "upstream_state_imported")) == 1


def test_a_row_already_in_the_ledger_is_left_as_it_is(tmp_path: Path, cache: Path) -> None:
    h = hashlib.sha256(b"posted by both").hexdigest()
    ledger_path = tmp_path / "ledger.sqlite"
    with PostLedger(ledger_path) as ledger:  # nothing to import yet
        ledger.record_post(ledger_key(h), "mine.jpg", {"telegram": {"success": True, "post_id": "42"}})
    marker_path(ledger_path).unlink(missing_ok=True)
    cache.write_text(json.dumps([h]))
    with PostLedger(ledger_path) as ledger:
        row = ledger.get(ledger_key(h))
        assert row is not None and row["image_name"] == "mine.jpg"
    assert json.loads(marker_path(ledger_path).read_text())["imported"] == 0


@pytest.mark.parametrize("content", [b"not json {", b'{"other": []}', b'"a string"', b"\xff\xfe not utf-8"])
def test_a_corrupt_file_is_reported_and_skipped_never_fatal(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    cache.write_bytes(content)
    ledger_path = tmp_path / "ledger.sqlite"
    with PostLedger(ledger_path) as ledger:
        assert ledger.posted_count() == 0
        assert ledger.claim("a" * 64, "x.jpg") is True  # the ledger works
    [event] = named(caplog, "upstream_state_corrupt")
    assert event["level"] == "WARNING" and event["path"] == str(cache) and event["error"]
    assert not marker_path(ledger_path).exists()
    # Fixed later: imported then.
    cache.write_text(json.dumps([hashlib.sha256(b"fixed").hexdigest()]))
    with PostLedger(ledger_path) as ledger:
        assert ledger.posted_count() == 1
    assert len(named(caplog, "upstream_state_imported")) == 1


def test_an_absent_file_changes_nothing_and_logs_nothing(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ledger_path = tmp_path / "ledger.sqlite"
    with PostLedger(ledger_path) as ledger:
        assert ledger.posted_count() == 0
    assert not marker_path(ledger_path).exists()
    assert not [e for e in events(caplog) if e["message"].startswith("upstream_state")]


def test_an_image_over_4_mib_posted_by_upstream_is_recognised_once_downloaded(
    sample_library: Path, cache: Path, clean_env: Dict
) -> None:
    """Its ledger key cannot be derived from upstream's SHA-256, so the run recognises it by its bytes."""
    from PIL import Image

    images = sample_library.parent / "images"
    for path in list(images.iterdir()):
        if path.is_file():
            path.unlink()
    noise = random.Random(7).randbytes(1300 * 1300 * 3)  # incompressible: a PNG over 4 MiB
    Image.frombytes("RGB", (1300, 1300), noise).save(images / "big.png")
    big = images / "big.png"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(images / "small.jpg")
    assert big.stat().st_size > 4 * 1024 * 1024
    cache.write_text(json.dumps([sha256_of(big)]))
    env = {**clean_env, "XDG_CACHE_HOME": str(cache.parent.parent)}
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [str(BIN / "publisher"), "--config", str(sample_library)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        runs.append((out.returncode, json_events(out.stderr)))
    (first, first_events), (second, second_events) = runs
    assert first == 0 and [e["image_name"] for e in first_events if e["message"] == "workflow_complete"] == [
        "small.jpg"
    ]
    assert second == 1  # nothing new: big.png was posted by upstream
    skipped = [e for e in first_events + second_events if e["message"] == "image_skipped_posted_by_upstream"]
    assert [e["image_name"] for e in skipped] == ["big.png"]
    assert (images / "big.png").is_file()  # never published, so never archived
    with PostLedger(sample_library.parent / "state" / "ledger.sqlite") as ledger:
        assert {row["image_name"] for row in ledger.rows() if row["status"] == "posted"} >= {"big.png", "small.jpg"}
