"""Upstream's posted.json is imported into the ledger once, its marker in the ledger itself: valid, corrupt,
absent, repeated, raced by processes, on SQLite and on PostgreSQL (the same test bodies); the old marker file
of SQLite ledgers is moved in; `migrate-to-postgres` imports posted.json and reports it."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import random
import sqlite3
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from publisher_v2.ledger import PostLedger, open_ledger
from publisher_v2.ledger.schema import MIGRATIONS, SCHEMA_VERSION
from publisher_v2.ledger.upstream import (
    IMPORTED_NAME,
    MOVED_SUFFIX,
    SOURCE,
    UPSTREAM_RESULTS,
    import_posted_file,
    import_upstream_posted,
    is_upstream_posted,
    ledger_key,
    legacy_marker_path,
    upstream_posted_path,
)
from tests.conftest import BIN, json_events
from tests.ledger.conftest import logged, state_ini
from tests.pg_server import ledger_query


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_hashes(count: int, tag: str = "image") -> List[str]:
    return [hashlib.sha256(f"{tag} {i}".encode()).hexdigest() for i in range(count)]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An XDG cache folder of our own; returns where upstream's posted.json goes in it."""
    base = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(base))
    path = upstream_posted_path()
    assert path == base / "publisher_v2" / "posted.json"
    path.parent.mkdir(parents=True)
    return path


def import_rows(db: object) -> List[tuple]:
    return ledger_query(db, "SELECT source, hashes, imported, invalid FROM ledger_imports")


def marker_files(db: object) -> List[str]:
    """Files about upstream's import beside a SQLite ledger (PostgreSQL has no folder)."""
    if not isinstance(db, Path):
        return []
    return sorted(p.name for p in db.parent.iterdir() if "upstream" in p.name)


def test_default_path_is_under_home_cache_without_xdg() -> None:
    assert upstream_posted_path({}) == Path.home() / ".cache" / "publisher_v2" / "posted.json"
    assert upstream_posted_path({"XDG_CACHE_HOME": ""}) == Path.home() / ".cache" / "publisher_v2" / "posted.json"
    assert upstream_posted_path({"XDG_CACHE_HOME": "/x"}) == Path("/x/publisher_v2/posted.json")


def test_valid_file_in_the_object_form_is_imported_once(
    db: object, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hashes = fake_hashes(5)
    cache.write_text(json.dumps({"hashes": hashes + [hashes[0].upper(), "not-a-hash", 12]}))
    with open_ledger(db) as ledger:
        assert ledger.posted_count() == 5
        for h in hashes:
            row = ledger.get(ledger_key(h))
            assert row is not None and row["status"] == "posted" and row["image_name"] == IMPORTED_NAME
            entry = ledger.entry(ledger_key(h))
            assert entry is not None and entry.posted_platforms == ["upstream"]
    [event] = logged(caplog, "upstream_state_imported")
    assert (event["hashes"], event["imported"], event["already_known"], event["invalid"]) == (5, 5, 0, 2)
    assert not [e for e in logged(caplog) if e["message"] == "ledger_post_recorded"]  # one event, not one per row
    assert import_rows(db) == [(SOURCE, 5, 5, 2)]  # the marker is in the database ...
    assert marker_files(db) == []  # ... and nowhere else
    # Opened again, even with a longer file: imported once only.
    cache.write_text(json.dumps(hashes + [hashlib.sha256(b"later").hexdigest()]))
    with open_ledger(db) as ledger:
        assert ledger.posted_count() == 5
        assert import_upstream_posted(ledger) is None
        again = import_posted_file(ledger)
        assert again.status == "already_imported" and again.record is not None and again.record.imported == 5
    assert len(logged(caplog, "upstream_state_imported")) == 1


def test_a_row_already_in_the_ledger_is_left_as_it_is(db: object, cache: Path) -> None:
    h, other = fake_hashes(2, "posted by both")
    with open_ledger(db) as ledger:  # nothing to import yet
        ledger.record_post(ledger_key(h), "mine.jpg", {"telegram": {"success": True, "post_id": "42"}})
        assert ledger.claim(ledger_key(other), "claimed.jpg")
    cache.write_text(json.dumps([h, other]))
    with open_ledger(db) as ledger:
        row = ledger.get(ledger_key(h))
        assert row is not None and row["image_name"] == "mine.jpg"
        entry = ledger.entry(ledger_key(h))
        assert entry is not None and entry.platforms["telegram"].post_id == "42" and "upstream" not in entry.platforms
        claimed = ledger.get(ledger_key(other))
        assert claimed is not None and claimed["status"] == "claimed"  # a run holds it: not ours to change
    assert import_rows(db) == [(SOURCE, 2, 0, 0)]


@pytest.mark.parametrize("content", [b"not json {", b'{"other": []}', b'"a string"', b"\xff\xfe not utf-8"])
def test_a_corrupt_file_is_reported_and_skipped_never_fatal(
    db: object, cache: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    cache.write_bytes(content)
    with open_ledger(db) as ledger:
        assert ledger.posted_count() == 0
        assert ledger.claim("a" * 64, "x.jpg") is True  # the ledger works
    [event] = logged(caplog, "upstream_state_corrupt")
    assert event["level"] == "WARNING" and event["path"] == str(cache) and event["error"]
    assert import_rows(db) == []  # not marked: tried again next time
    # Fixed later: imported then.
    cache.write_text(json.dumps([hashlib.sha256(b"fixed").hexdigest()]))
    with open_ledger(db) as ledger:
        assert ledger.posted_count() == 1
    assert len(logged(caplog, "upstream_state_imported")) == 1
    assert import_rows(db) == [(SOURCE, 1, 1, 0)]


def test_an_absent_file_changes_nothing_and_logs_nothing(
    db: object, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with open_ledger(db) as ledger:
        assert ledger.posted_count() == 0
        assert ledger.import_record(SOURCE) is None
        assert import_posted_file(ledger).status == "absent"
    assert import_rows(db) == []
    assert not [e for e in logged(caplog) if e["message"].startswith("upstream_state")]


def test_the_database_decides_between_two_importers_that_both_saw_no_import(db: object) -> None:
    """Both checked before either wrote (the window a file lock or a process lock used to cover): the
    import record's primary key lets the first commit win; the second changes nothing."""
    hashes = fake_hashes(50)
    first, second = PostLedger(db), PostLedger(db)
    assert first.import_record(SOURCE) is None and second.import_record(SOURCE) is None
    keys = [ledger_key(h) for h in hashes]
    won = first.record_import(SOURCE, "/a/posted.json", hashes, keys, UPSTREAM_RESULTS, image_name=IMPORTED_NAME)
    lost = second.record_import(
        SOURCE, "/b/posted.json", hashes + fake_hashes(3, "more"), keys, UPSTREAM_RESULTS, image_name=IMPORTED_NAME
    )
    assert (won.new, won.imported, lost.new, lost.path, lost.hashes) == (True, 50, False, "/a/posted.json", 50)
    assert second.posted_count() == 50
    assert ledger_query(db, "SELECT COUNT(*) FROM upstream_hashes") == [(50,)]
    assert ledger_query(db, "SELECT COUNT(*) FROM platform_posts") == [(50,)]


def _race_import(location: str, posted: str, barrier: Any, out: Any) -> None:
    try:
        target: object = Path(location) if not location.startswith("postgresql") else location
        ledger = PostLedger(target)  # type: ignore[arg-type]
        ledger.schema_version()  # connected and migrated before the start line
        barrier.wait(30)
        outcome = import_posted_file(ledger, Path(posted))
        out.put((outcome.status, outcome.record.imported if outcome.record else None))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put((f"error: {type(exc).__name__}: {exc}", None))


@pytest.mark.slow
def test_processes_racing_to_import_import_once(db: object, tmp_path: Path) -> None:
    hashes = fake_hashes(3000)
    posted = tmp_path / "posted.json"
    posted.write_text(json.dumps(hashes))
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_race_import, args=(str(db), str(posted), barrier, out)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        results: List[Tuple[str, Any]] = [out.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    assert sorted(results) == [("already_imported", 3000)] * 3 + [("imported", 3000)], results
    assert PostLedger(db).posted_count() == 3000
    assert import_rows(db) == [(SOURCE, 3000, 3000, 0)]
    assert ledger_query(db, "SELECT COUNT(*) FROM platform_posts") == [(3000,)]


def test_upstream_hashes_are_recognised_by_every_instance(db: object, cache: Path) -> None:
    """The hash of an image over 4 MiB cannot be mapped to a ledger key: the ledger keeps upstream's hashes."""
    big = fake_hashes(1, "a big image")[0]
    cache.write_text(json.dumps([big]))
    with open_ledger(db) as importer:
        assert is_upstream_posted(importer, big)
    with open_ledger(db) as other:  # another process, maybe on another host
        assert is_upstream_posted(other, big) and is_upstream_posted(other, big.upper())
        assert not is_upstream_posted(other, fake_hashes(1, "never posted")[0])


def _run_cli(ini: Path, env: Dict[str, str]) -> Tuple[int, List[dict]]:
    out = subprocess.run([str(BIN / "publisher"), "--config", str(ini)], env=env, capture_output=True, text=True,
                         timeout=120)
    return out.returncode, json_events(out.stderr)


def _library_ledger(db: object, sample_library: Path, env: Dict[str, str]) -> object:
    """The ledger a CLI run on `sample_library` uses on the store under test (DATABASE_URL for PostgreSQL)."""
    if isinstance(db, str):
        env["DATABASE_URL"] = db
        return db
    return sample_library.parent / "state" / "ledger.sqlite"


@pytest.mark.slow
def test_the_cli_skips_every_image_upstream_posted(
    db: object, sample_library: Path, cache: Path, clean_env: Dict
) -> None:
    """A real `publisher` run over a library where upstream posted all images but one picks that one."""
    images = sorted(p for p in (sample_library.parent / "images").iterdir() if p.is_file() and p.suffix != ".txt")
    assert len(images) == 8 and all(p.stat().st_size <= 4 * 1024 * 1024 for p in images)
    left = images[3]
    cache.write_text(json.dumps(sorted(sha256_of(p) for p in images if p != left)))  # upstream's own format
    env = {**clean_env, "XDG_CACHE_HOME": str(cache.parent.parent)}
    ledger = _library_ledger(db, sample_library, env)
    code, lines = _run_cli(sample_library, env)
    assert code == 0, lines[-3:]
    imported = [e for e in lines if e["message"] == "upstream_state_imported"]
    assert len(imported) == 1 and imported[0]["hashes"] == 7 and imported[0]["imported"] == 7
    assert imported[0]["level"] == "INFO" and imported[0]["path"] == str(cache)
    assert not [e for e in lines if e["message"] == "ledger_post_recorded" and e.get("image_name") == IMPORTED_NAME]
    done = [e for e in lines if e["message"] == "workflow_complete"]
    assert done and done[-1]["image_name"] == left.name and done[-1]["success"] is True
    # A second run: nothing left to post, and no second import.
    code, lines = _run_cli(sample_library, env)
    assert code == 1
    assert not [e for e in lines if e["message"].startswith("upstream_state")]
    assert import_rows(ledger) == [(SOURCE, 7, 7, 0)]


@pytest.mark.slow
def test_an_image_over_4_mib_posted_by_upstream_is_recognised_once_downloaded(
    db: object, sample_library: Path, cache: Path, clean_env: Dict
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
    location = _library_ledger(db, sample_library, env)
    (first, first_events), (second, second_events) = [_run_cli(sample_library, env) for _ in range(2)]
    assert first == 0 and [e["image_name"] for e in first_events if e["message"] == "workflow_complete"] == [
        "small.jpg"
    ]
    assert second == 1  # nothing new: big.png was posted by upstream
    skipped = [e for e in first_events + second_events if e["message"] == "image_skipped_posted_by_upstream"]
    assert [e["image_name"] for e in skipped] == ["big.png"]
    assert (images / "big.png").is_file()  # never published, so never archived
    with open_ledger(location) as ledger:  # type: ignore[arg-type]
        for name in ("big.png", "small.jpg"):
            assert [entry.status for entry in ledger.find(name)] == ["posted"], name


# -- the marker file of earlier versions (SQLite only: PostgreSQL never had one) --------------------------------


def write_v2_ledger_with_old_import(path: Path, hashes: List[str], marker: object) -> None:
    """A ledger exactly as the previous version left it after importing `hashes`: schema version 2, the
    imported rows, and the marker file beside it (`marker` as its JSON, or raw text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as raw:
        for version, step in MIGRATIONS:
            if version <= 2:
                step(raw)
        raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        raw.execute("INSERT INTO schema_version (version) VALUES (2)")
        for h in hashes:
            raw.execute(
                "INSERT INTO posted_images (content_hash, image_name, status, posted_at, results)"
                " VALUES (?, ?, 'posted', '2026-11-30T10:00:00.000000+00:00', ?)",
                (ledger_key(h), IMPORTED_NAME, json.dumps(UPSTREAM_RESULTS)),
            )
    text = marker if isinstance(marker, str) else json.dumps(marker)
    legacy_marker_path(path).write_text(text, encoding="utf-8")  # type: ignore[union-attr]


def test_an_old_marker_file_is_moved_into_the_ledger_and_nothing_is_imported_twice(
    db_file: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hashes = fake_hashes(4)
    marker = legacy_marker_path(db_file)
    assert marker is not None and marker.name == "ledger.sqlite.upstream-import.json"
    summary = {"source": str(cache), "hashes": 4, "imported": 4, "invalid": 1, "sha256": hashes}
    write_v2_ledger_with_old_import(db_file, hashes, summary)
    later = fake_hashes(1, "added to posted.json after the import")[0]
    cache.write_text(json.dumps(hashes + [later]))  # a longer file: the old import must still count as done
    with open_ledger(db_file) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION == 5
        assert ledger.posted_count() == 4 and ledger.get(ledger_key(later)) is None
        assert all(is_upstream_posted(ledger, h) for h in hashes)  # the hashes of big images survive the move
        record = ledger.import_record(SOURCE)
        assert record is not None and (record.path, record.hashes, record.imported, record.invalid) == (
            str(cache), 4, 4, 1
        )
    assert not marker.exists() and marker.with_name(marker.name + MOVED_SUFFIX).is_file()
    [moved] = logged(caplog, "upstream_state_marker_moved")
    assert moved["hashes"] == 4 and moved["moved_to"].endswith(".upstream-import.json.moved")
    assert not logged(caplog, "upstream_state_imported")
    with open_ledger(db_file) as ledger:  # opened again: the ledger's record decides, nothing is read or logged
        assert ledger.posted_count() == 4
    assert len([e for e in logged(caplog) if e["message"].startswith("upstream_state")]) == 1


def _open_ledger(path: str, barrier: Any, out: Any) -> None:
    try:
        barrier.wait(30)
        with open_ledger(Path(path)) as ledger:
            out.put(ledger.posted_count())
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(f"error: {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_processes_opening_an_old_ledger_with_its_marker_together_move_it_once(db_file: Path, cache: Path) -> None:
    hashes = fake_hashes(200)
    summary = {"source": str(cache), "hashes": 200, "imported": 200, "invalid": 0, "sha256": hashes}
    write_v2_ledger_with_old_import(db_file, hashes, summary)
    cache.write_text(json.dumps(hashes + fake_hashes(5, "later")))
    ctx = multiprocessing.get_context("spawn")
    workers = 3
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_open_ledger, args=(str(db_file), barrier, out)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        results = [out.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    assert results == [200] * workers, results  # the 5 later hashes were never imported
    assert import_rows(db_file) == [(SOURCE, 200, 200, 0)]
    assert ledger_query(db_file, "SELECT COUNT(*) FROM upstream_hashes") == [(200,)]
    assert marker_files(db_file) == ["ledger.sqlite.upstream-import.json.moved"]


def test_an_unreadable_old_marker_is_reported_and_posted_json_imported_without_duplicates(
    db_file: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty marker is what the old code left when it died between creating the file and writing it."""
    caplog.set_level(logging.DEBUG)
    hashes = fake_hashes(3)
    write_v2_ledger_with_old_import(db_file, hashes[:2], "")
    cache.write_text(json.dumps(hashes))
    with open_ledger(db_file) as ledger:
        assert ledger.posted_count() == 3
        assert all(is_upstream_posted(ledger, h) for h in hashes)
    assert [e["path"] for e in logged(caplog, "upstream_state_marker_unreadable")] == [str(legacy_marker_path(db_file))]
    [event] = logged(caplog, "upstream_state_imported")
    assert (event["imported"], event["already_known"]) == (1, 2)
    assert ledger_query(db_file, "SELECT COUNT(*) FROM platform_posts WHERE platform = 'upstream'") == [(1,)]
    assert not legacy_marker_path(db_file).exists()  # type: ignore[union-attr]


# -- migrate-to-postgres imports posted.json too (PostgreSQL is its target) --------------------------------------


def _migrate(ini: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "publisher"), "--config", str(ini), "migrate-to-postgres", *extra],
                          capture_output=True, text=True, timeout=60)


def test_migrate_to_postgres_imports_posted_json_once_and_says_so(tmp_path: Path, cache: Path, pg_server: Any) -> None:
    url = pg_server.url(pg_server.new_database())
    hashes = fake_hashes(3)
    with open_ledger(tmp_path / "state" / "ledger.sqlite") as old:  # its own post of the first upstream image
        old.record_post(ledger_key(hashes[0]), "a.jpg", {"telegram": {"success": True, "post_id": "t-1"}})
    ini = state_ini(tmp_path, f"url = {url}")
    cache.write_text("[not json")  # corrupt: reported, not imported, tried again
    broken = _migrate(ini)
    assert broken.returncode == 1, broken.stderr
    assert f"Upstream posted.json {cache}: corrupt, NOT imported (JSONDecodeError" in broken.stdout
    assert "images: 1 copied" in broken.stdout
    cache.write_text(json.dumps(hashes + ["nonsense"]))
    first, second = _migrate(ini), _migrate(ini)
    assert [first.returncode, second.returncode] == [0, 0], [first.stderr, second.stderr]
    assert "images: 0 copied, 1 already there (kept)" in first.stdout
    assert (
        f"Upstream posted.json {cache}: 3 hashes: 2 imported, 1 already present, 1 invalid entries skipped"
        in first.stdout
    )
    assert "Upstream posted.json: already imported on " in second.stdout
    assert (
        f"from {cache} (3 hashes: 2 imported, 1 already present, 1 invalid entries skipped); nothing imported now"
        in second.stdout
    )
    with PostLedger(url) as ledger:
        assert ledger.posted_count() == 3
        entry = ledger.entry(ledger_key(hashes[0]))
        assert entry is not None and entry.posted_platforms == ["telegram"]  # the copied row, kept
        assert all(ledger.upstream_posted(h) for h in hashes)
    assert import_rows(url) == [(SOURCE, 3, 2, 1)]
    assert ledger_query(tmp_path / "state" / "ledger.sqlite", "SELECT COUNT(*) FROM ledger_imports") == [(0,)]


def test_migrate_to_postgres_carries_an_import_the_sqlite_ledger_made(
    tmp_path: Path, cache: Path, pg_server: Any
) -> None:
    """posted.json imported into SQLite by an earlier version (marker file) is not imported again in PostgreSQL;
    the hashes of big images come along."""
    url = pg_server.url(pg_server.new_database())
    hashes = fake_hashes(2)
    sqlite_path = tmp_path / "state" / "ledger.sqlite"
    summary = {"source": str(cache), "hashes": 2, "imported": 2, "invalid": 0, "sha256": hashes}
    write_v2_ledger_with_old_import(sqlite_path, hashes, summary)
    cache.write_text(json.dumps(hashes + fake_hashes(1, "later")))
    done = _migrate(state_ini(tmp_path, f"url = {url}"))
    assert done.returncode == 0, done.stderr
    assert "images: 2 copied, 0 already there (kept)" in done.stdout
    assert "upstream import records: 1 copied" in done.stdout
    assert "Upstream posted.json: already imported on 2" in done.stdout and "(2 hashes: 2 imported" in done.stdout
    with open_ledger(url) as ledger:
        assert ledger.posted_count() == 2 and all(is_upstream_posted(ledger, h) for h in hashes)
    assert not legacy_marker_path(sqlite_path).exists()  # type: ignore[union-attr]
