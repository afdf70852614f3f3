"""The dedup ledger: claims, their lifecycle and TTL, and exactly-one-winner races between real processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Dict, List

import pytest

from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger import PostLedger
from tests.ledger.conftest import FakeClock


def test_ledger_creates_parent_folder_and_uses_wal(db_file: Path) -> None:
    db = db_file
    ledger = PostLedger(db)
    assert ledger.known_hashes() == set()
    assert db.is_file()
    assert ledger.journal_mode() == "wal"
    with sqlite3.connect(db) as raw:  # the mode is persistent: any other connection sees it too
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ledger.close()


def test_claim_is_exclusive_and_known_to_everyone(db: Path) -> None:
    first, second = PostLedger(db), PostLedger(db)
    assert first.claim("h1", "a.jpg") is True
    assert second.claim("h1", "a.jpg") is False
    assert first.claim("h1", "a.jpg") is False  # a live claim is not re-granted, not even to its holder
    assert "h1" in second.known_hashes()
    row = second.get("h1")
    assert row is not None
    assert (row["status"], row["image_name"], row["claim_owner"]) == ("claimed", "a.jpg", first.owner)


def test_stale_claim_is_retaken_after_ttl(db: Path, clock: FakeClock) -> None:
    crashed = PostLedger(db, claim_ttl_seconds=60, clock=clock)
    later = PostLedger(db, claim_ttl_seconds=60, clock=clock)
    assert crashed.claim("h1", "a.jpg")
    clock.advance(59)
    assert "h1" in later.known_hashes()
    assert later.claim("h1", "a.jpg") is False
    clock.advance(2)
    assert "h1" not in later.known_hashes()
    assert later.claim("h1", "a.jpg") is True
    assert later.get("h1")["claim_owner"] == later.owner  # type: ignore[index]
    assert crashed.release("h1") is False  # the crashed run's claim is gone; it cannot drop the new one
    with pytest.raises(StorageError, match="no longer held"):
        crashed.mark_publishing("h1")  # nor publish on it


def test_publishing_row_is_never_retaken_whatever_its_age(db: Path, clock: FakeClock) -> None:
    crashed = PostLedger(db, claim_ttl_seconds=60, clock=clock)
    assert crashed.claim("h1", "a.jpg")
    crashed.mark_publishing("h1")
    clock.advance(365 * 24 * 3600)
    other = PostLedger(db, claim_ttl_seconds=60, clock=clock)
    assert "h1" in other.known_hashes()
    assert other.claim("h1", "a.jpg") is False
    assert other.get("h1")["status"] == "publishing"  # type: ignore[index]


def test_release_only_by_the_owner_and_only_while_claimed(db: Path) -> None:
    owner, stranger = PostLedger(db), PostLedger(db)
    assert owner.claim("h1", "a.jpg")
    assert stranger.release("h1") is False
    assert owner.get("h1") is not None
    owner.mark_publishing("h1")
    assert owner.release("h1") is False  # once publishing, release must not forget it
    assert owner.get("h1")["status"] == "publishing"  # type: ignore[index]
    assert owner.claim("h2", "b.jpg")
    assert owner.release("h2") is True
    assert owner.get("h2") is None
    assert stranger.claim("h2", "b.jpg") is True


def test_abandon_only_by_the_owner_and_only_while_publishing(db: Path) -> None:
    owner, stranger = PostLedger(db), PostLedger(db)
    assert owner.claim("h1", "a.jpg")
    assert owner.abandon("h1") is False  # still only claimed
    owner.mark_publishing("h1")
    assert stranger.abandon("h1") is False
    assert owner.abandon("h1") is True
    assert owner.get("h1") is None
    assert "h1" not in stranger.known_hashes()


def test_mark_publishing_needs_our_claim(db: Path) -> None:
    owner, stranger = PostLedger(db), PostLedger(db)
    with pytest.raises(StorageError, match="no longer held"):
        owner.mark_publishing("never-claimed")
    assert owner.claim("h1", "a.jpg")
    with pytest.raises(StorageError):
        stranger.mark_publishing("h1")
    assert owner.get("h1")["status"] == "claimed"  # type: ignore[index]


def test_record_post_after_claim_keeps_results_and_time(db: Path, clock: FakeClock) -> None:
    ledger = PostLedger(db, clock=clock)
    assert ledger.claim("h1", "a.jpg")
    ledger.mark_publishing("h1")
    results: Dict[str, Dict[str, object]] = {
        "telegram": {"success": True, "post_id": "42", "error": None},
        "email": {"success": False, "post_id": None, "error": "smtp down"},
    }
    ledger.record_post("h1", "a.jpg", results)
    row = ledger.get("h1")
    assert row is not None
    assert row["status"] == "posted"
    assert row["results"] == results
    assert row["posted_at"] == "2024-05-01T12:00:00.000000+00:00"
    assert ledger.posted_count() == 1
    assert ledger.abandon("h1") is False  # a posted row is never dropped
    assert ledger.claim("h1", "a.jpg") is False


def test_record_post_without_claim_for_select(db: Path) -> None:
    ledger = PostLedger(db)
    ledger.record_post("h9", "chosen.jpg", {"outbox": {"success": True, "post_id": "x", "error": None}})
    assert ledger.get("h9")["status"] == "posted"  # type: ignore[index]
    assert "h9" in PostLedger(db).known_hashes()
    assert PostLedger(db).claim("h9", "chosen.jpg") is False


def test_record_post_over_someone_elses_claim_stops_their_publish(db: Path) -> None:
    racer, selector = PostLedger(db), PostLedger(db)
    assert racer.claim("h1", "a.jpg")
    selector.record_post("h1", "a.jpg", {})
    with pytest.raises(StorageError):
        racer.mark_publishing("h1")
    assert racer.release("h1") is False
    assert racer.get("h1")["status"] == "posted"  # type: ignore[index]


def test_rejected_images_are_skipped_but_never_downgrade_a_post(db: Path) -> None:
    ledger = PostLedger(db)
    assert ledger.claim("bad", "broken.jpg")
    ledger.mark_rejected("bad", "broken.jpg", "cannot be decoded")
    row = ledger.get("bad")
    assert row is not None
    assert (row["status"], row["reason"]) == ("rejected", "cannot be decoded")
    assert "bad" in ledger.known_hashes()
    assert ledger.claim("bad", "broken.jpg") is False
    ledger.record_post("good", "good.jpg", {})
    ledger.mark_rejected("good", "good.jpg", "late complaint")
    assert ledger.get("good")["status"] == "posted"  # type: ignore[index]
    assert ledger.claim("busy", "busy.jpg")
    ledger.mark_publishing("busy")
    ledger.mark_rejected("busy", "busy.jpg", "late complaint")
    assert ledger.get("busy")["status"] == "publishing"  # type: ignore[index]
    assert ledger.posted_count() == 1


def test_a_broken_ledger_file_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="ledger.sqlite"):
        PostLedger(path).known_hashes()


def test_one_instance_is_safe_from_many_threads(db: Path) -> None:
    ledger = PostLedger(db)
    wins: List[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for i in range(50):
            if ledger.claim(f"h{i}", f"{i}.jpg"):
                with lock:
                    wins.append(f"h{i}")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == sorted(f"h{i}" for i in range(50))


def _race_worker(path: str, rounds: int, barrier: object, out: object) -> None:
    """Child process: open the (fresh) ledger and claim the same hashes as its siblings, in lockstep."""
    try:
        barrier.wait(30)  # type: ignore[attr-defined]
        ledger = PostLedger(path)
        won = []
        for i in range(rounds):
            barrier.wait(30)  # type: ignore[attr-defined]
            if ledger.claim(f"hash-{i}", f"img{i}.jpg"):
                won.append(i)
        ledger.close()
        out.put(won)  # type: ignore[attr-defined]
    except BaseException as exc:
        out.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]
        raise


@pytest.mark.slow
def test_processes_racing_for_the_same_hashes_each_get_exactly_one_winner(db: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers, rounds = 3, 150
    barrier = ctx.Barrier(workers)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(str(db), rounds, barrier, out), daemon=True)
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    try:
        results = [out.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    errors = [r for r in results if isinstance(r, str)]
    assert errors == [], errors  # the first connections race to create the file and switch it to WAL, too
    winners = [i for won in results for i in won]
    assert sorted(winners) == list(range(rounds)), "every hash has exactly one winner"
    assert PostLedger(db).known_hashes() == {f"hash-{i}" for i in range(rounds)}
