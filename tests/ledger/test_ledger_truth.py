"""The ledger as the one truth: schema migration, per-platform outcomes, re-posts, take-over, and the stores
shared by web workers (login attempts, admin sessions). Real SQLite files, real processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import socket
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger import PostLedger
from publisher_v2.ledger.records import ImageAlreadyPosted, ImageBusy
from publisher_v2.ledger.schema import MIGRATIONS, SCHEMA_VERSION
from publisher_v2.services.publishers.outbox import INCOMING, OutboxPublisher
from publisher_v2.utils.images import dropbox_content_hash
from publisher_v2.web.sessions import SessionStore
from tests.cli_output import verdict_lines
from tests.conftest import CORE_HELPERS
from tests.ledger.conftest import FakeClock
from tests.pg_server import ledger_query

V1_SCHEMA = """
CREATE TABLE posted_images (
    content_hash TEXT PRIMARY KEY,
    image_name   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('claimed', 'publishing', 'posted', 'rejected')),
    claim_owner  TEXT,
    claimed_at   TEXT,
    posted_at    TEXT,
    results      TEXT,
    reason       TEXT
)
"""




def write_v1_ledger(path: Path) -> None:
    """A ledger file exactly as the previous version left it (no schema_version, one table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as raw:
        raw.execute(V1_SCHEMA)
        results = {
            "telegram": {"success": True, "post_id": "t-1", "error": None},
            "email": {"success": False, "post_id": None, "error": "smtp down"},
        }
        raw.executemany(
            "INSERT INTO posted_images VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("h-posted", "a.jpg", "posted", "old", None, "2024-01-02T00:00:00+00:00", json.dumps(results), None),
                ("h-publishing", "b.jpg", "publishing", "old", "2024-01-03T00:00:00+00:00", None, None, None),
                ("h-rejected", "c.jpg", "rejected", "old", None, None, None, "not an image"),
            ],
        )



def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_previous_version_ledger_migrates_and_keeps_every_row(db_file: Path) -> None:
    db = db_file
    write_v1_ledger(db)
    ledger = PostLedger(db)
    assert ledger.schema_version() == SCHEMA_VERSION == 5
    assert ledger.known_hashes() == {"h-posted", "h-publishing", "h-rejected"}
    posted = ledger.entry("h-posted")
    assert posted is not None and posted.status == "posted" and posted.attempt == 1
    assert {p: (o.state, o.post_id) for p, o in posted.platforms.items()} == {
        "telegram": ("posted", "t-1"),
        "email": ("failed", None),
    }
    assert posted.archive_state is None  # unknown for old rows: not listed as unfinished
    assert [e.content_hash for e in ledger.unfinished()] == ["h-publishing"]
    ledger.close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def _open_and_count(path: str, queue: multiprocessing.Queue[int]) -> None:
    with PostLedger(Path(path)) as ledger:
        queue.put(len(ledger.entry("h-posted").platforms))  # type: ignore[union-attr]


def test_processes_opening_an_old_ledger_together_migrate_it_once(db_file: Path) -> None:
    db = db_file
    write_v1_ledger(db)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    processes = [ctx.Process(target=_open_and_count, args=(str(db), queue)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert sorted(queue.get(timeout=5) for _ in processes) == [2, 2, 2, 2]
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT COUNT(*) FROM platform_posts").fetchone() == (2,)
        assert raw.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (1,)


def test_a_ledger_newer_than_the_program_is_refused_naming_the_file(db: Path) -> None:
    with PostLedger(db) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
    ledger_query(db, "UPDATE schema_version SET version = 99")
    with pytest.raises(StorageError, match=re.escape(str(db))):
        PostLedger(db).known_hashes()


def test_each_platform_is_sending_before_its_call_then_posted_or_failed(db: Path) -> None:
    ledger, other = PostLedger(db), PostLedger(db)
    assert ledger.claim("h", "a.jpg")
    assert not ledger.begin_sending("h", "telegram")  # not publishing yet: nothing may be sent
    ledger.mark_publishing("h")
    assert not other.begin_sending("h", "telegram")  # only the holder sends
    assert ledger.begin_sending("h", "telegram") and ledger.begin_sending("h", "email")
    assert not ledger.begin_sending("h", "telegram")  # 'sending' is never sent again
    ledger.record_outcome("h", "telegram", True, "t-9", None)
    ledger.record_outcome("h", "email", False, None, "smtp down")
    assert not ledger.begin_sending("h", "telegram")  # 'posted' is never sent again
    entry = ledger.entry("h")
    assert entry is not None
    assert {p: o.state for p, o in entry.platforms.items()} == {"telegram": "posted", "email": "failed"}
    assert ledger.begin_sending("h", "email")  # a failure may be retried
    assert not ledger.finish_post("h", "a.jpg", archive=True)  # email is unknown again
    ledger.record_outcome("h", "email", True, "e-1", None)
    assert ledger.finish_post("h", "a.jpg", archive=True)
    row = ledger.get("h")
    assert row is not None and row["status"] == "posted" and row["archive_state"] == "pending"
    assert row["results"]["telegram"] == {"success": True, "post_id": "t-9", "error": None}
    ledger.mark_archived("h")
    assert ledger.unfinished() == []


def test_nothing_posted_or_unknown_is_ever_released(db: Path) -> None:
    ledger = PostLedger(db)
    assert ledger.claim("h", "a.jpg")
    ledger.mark_publishing("h")
    assert ledger.begin_sending("h", "telegram")
    assert not ledger.abandon("h") and not ledger.release_unposted("h")  # unknown outcome
    ledger.record_outcome("h", "telegram", True, "t", None)
    assert not ledger.abandon("h") and not ledger.release_unposted("h")  # posted
    assert "h" in ledger.known_hashes()
    assert ledger.claim("x", "x.jpg")
    ledger.mark_publishing("x")
    assert ledger.begin_sending("x", "email")
    ledger.record_outcome("x", "email", False, None, "down")
    assert ledger.abandon("x")  # every platform failed: the image may be picked again
    assert ledger.get("x") is None


def test_selected_images_are_claimed_and_reposts_are_explicit(db: Path) -> None:
    first, second = PostLedger(db), PostLedger(db)
    assert first.claim_selected("h", "a.jpg", allow_repost=True) is False  # a fresh claim, not a re-post
    with pytest.raises(ImageBusy, match="being published"):
        second.claim_selected("h", "a.jpg", allow_repost=True)
    first.mark_publishing("h")
    assert first.begin_sending("h", "telegram")
    first.record_outcome("h", "telegram", True, "t-1", None)
    assert first.finish_post("h", "a.jpg", archive=False)
    posted_at = first.get("h")["posted_at"]  # type: ignore[index]
    when = posted_at[:10] + " " + posted_at[11:19] + " UTC"
    with pytest.raises(ImageAlreadyPosted, match=f"a.jpg was already posted on {when}") as refused:
        second.claim_selected("h", "a.jpg", allow_repost=False)
    assert refused.value.posted_at == posted_at
    assert second.claim_selected("h", "a.jpg", allow_repost=True) is True  # --select's bypass: attempt 2
    entry = second.entry("h")
    assert entry is not None and (entry.status, entry.attempt, entry.platforms) == ("claimed", 2, {})
    second.mark_publishing("h")
    assert second.abandon("h")  # nothing sent in attempt 2: back to the posted attempt 1
    entry = second.entry("h")
    assert entry is not None and (entry.status, entry.attempt) == ("posted", 1)
    assert entry.platforms["telegram"].post_id == "t-1"


def test_a_stale_repost_claim_never_lets_auto_selection_post_a_posted_image(db: Path, clock: FakeClock) -> None:
    first = PostLedger(db, claim_ttl_seconds=60, clock=clock)
    assert first.claim("h", "a.jpg")
    first.mark_publishing("h")
    assert first.begin_sending("h", "telegram")
    first.record_outcome("h", "telegram", True, "t-1", None)
    assert first.finish_post("h", "a.jpg", archive=False)
    reposter = PostLedger(db, claim_ttl_seconds=60, clock=clock)
    assert reposter.claim_selected("h", "a.jpg", allow_repost=True) is True  # --select, then the run dies
    clock.advance(3600)
    auto = PostLedger(db, claim_ttl_seconds=60, clock=clock)
    assert "h" in auto.known_hashes()
    assert auto.claim("h", "a.jpg") is False
    with pytest.raises(ImageAlreadyPosted):
        auto.claim_selected("h", "a.jpg", allow_repost=False)  # the web route
    assert auto.claim_selected("h", "a.jpg", allow_repost=True) is True  # another --select retakes it, loudly


def test_take_over_needs_the_expected_owner_and_staleness_knows_dead_local_runs(db: Path) -> None:
    crashed, operator, rival = PostLedger(db), PostLedger(db), PostLedger(db)
    crashed.owner = f"{socket.gethostname()}:{dead_pid()}:deadbeef"
    assert crashed.claim("h", "a.jpg")
    crashed.mark_publishing("h")
    entry = operator.entry("h")
    assert entry is not None and operator.is_stale(entry)
    assert operator.take_over("h", entry.claim_owner)
    assert not rival.take_over("h", entry.claim_owner)  # the owner changed: a second operator loses
    live = PostLedger(db)
    assert live.claim("k", "k.jpg")
    live_entry = operator.entry("k")
    assert live_entry is not None and not operator.is_stale(live_entry)  # our own pid is alive


def test_staging_left_by_dead_runs_is_removed_when_a_publisher_starts(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    incoming = outbox / INCOMING
    dead = incoming / f"post_{dead_pid()}-telegram_abc"
    live = incoming / f"post_{os.getpid()}-email_def"
    other = incoming / "post_12_looks_like_a_pid"  # not our naming: never touched
    for folder in (dead, live, other):
        folder.mkdir(parents=True)
        (folder / "post.json").write_text("{}", encoding="utf-8")
    ini = tmp_path / "p.ini"
    ini.write_text("[Local]\nimage_folder = images\n", encoding="utf-8")
    (tmp_path / "images").mkdir()
    OutboxPublisher("telegram", outbox, load_application_config(ini))
    assert sorted(p.name for p in incoming.iterdir()) == sorted([live.name, other.name])


def test_session_store_is_shared_between_instances(db: Path) -> None:
    one, two = SessionStore(db), SessionStore(db)
    now = datetime.now(timezone.utc)
    one.open_session("session-a", now + timedelta(minutes=5))
    assert two.session_live("session-a") and not two.session_live("session-b")
    stored = ledger_query(db, "SELECT * FROM admin_sessions")  # only a digest is stored, never the session id
    assert len(stored) == 1 and "session-a" not in str(stored)
    assert two.close_session("session-a") and not one.session_live("session-a")
    assert one.admit_attempt(("account", "client:1.2.3.4"), now - timedelta(minutes=1), limit=5)[0]
    assert two.admit_attempt(("account", "client:5.6.7.8"), now - timedelta(minutes=1), limit=5)[0]
    assert one.failures_since("account", now - timedelta(minutes=1))[0] == 2
    assert two.failures_since("client:1.2.3.4", now - timedelta(minutes=1))[0] == 1


def test_a_version_4_ledger_loses_the_unread_revoked_sessions_table_and_nothing_else(db_file: Path) -> None:
    db_file.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_file) as raw:
        for _, step in MIGRATIONS[:4]:
            step(raw)
        raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        raw.execute("INSERT INTO schema_version (version) VALUES (4)")
        raw.execute("INSERT INTO revoked_sessions (token_hash, expires_at) VALUES ('x', '2099-01-01')")
        raw.execute("INSERT INTO admin_sessions (session_hash, expires_at) VALUES ('y', '2099-01-01')")
        raw.execute("INSERT INTO posted_images (content_hash, image_name, status) VALUES ('h', 'a.jpg', 'posted')")
    with PostLedger(db_file) as ledger:
        assert ledger.schema_version() == 5
        assert ledger.known_hashes() == {"h"}
    tables = {row[0] for row in ledger_query(db_file, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "revoked_sessions" not in tables and {"posted_images", "admin_sessions", "login_failures"} <= tables
    assert ledger_query(db_file, "SELECT session_hash FROM admin_sessions") == [("y",)]


def _cli(ini: Path, *args: str, killer_stage: str = "") -> subprocess.CompletedProcess:
    prefix = (
        [sys.executable, str(CORE_HELPERS / "stage_killer.py"), killer_stage]
        if killer_stage
        else [str(Path(sys.executable).with_name("publisher"))]
    )
    tmp = ini.parent / "tmp"  # killed runs leave their image copies here, not in the shared temp dir
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp))
    return subprocess.run([*prefix, "--config", str(ini), *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
def test_the_operator_command_completes_a_run_killed_after_its_first_post(tmp_path: Path) -> None:
    from publisher_v2.cli.sample import main as make_sample

    assert make_sample([str(tmp_path / "lib"), "--count", "1", "--seed", "3"]) == 0
    ini, outbox = tmp_path / "lib" / "publisher.ini", tmp_path / "lib" / "outbox"
    assert _cli(ini, killer_stage="first_post").returncode == -9
    listing = json.loads(_cli(ini, "ledger", "list", "--json").stdout)
    (entry,) = listing["unfinished"]
    assert entry["status"] == "publishing" and entry["owner_alive"] is False
    assert {o["state"] for o in entry["platforms"].values()} == {"sending"}  # all three outcomes unknown
    assert "UNKNOWN" in _cli(ini, "ledger", "list").stdout

    refused = _cli(ini, "ledger", "release", entry["image_name"])
    assert refused.returncode == 1 and len(verdict_lines(refused.stderr)) == 1 and "unknown on" in refused.stderr
    leftover = ini.parent / "tmp" / f"publisher_v2_{dead_pid()}-copies"  # a killed run's image copies
    leftover.mkdir()
    ordinary = _cli(ini)
    assert not leftover.exists()
    assert ordinary.returncode == 1  # an ordinary run never re-sends it (the only image is taken) but says so
    reported = [
        e for e in map(json.loads, ordinary.stderr.splitlines()[:-1]) if e["message"] == "ledger_unfinished_posts"
    ]
    assert reported and reported[0]["count"] == 1 and reported[0]["unknown_platforms"] == 3

    seen = {p.parent.parent.name: p.parent.name for p in outbox.glob("*/*/post.json")}
    assert seen  # the killed run wrote at least its first post
    for platform, post_id in seen.items():
        marked = _cli(
            ini, "ledger", "mark-posted", entry["content_hash"][:12], "--platform", platform, "--post-id", post_id
        )
        assert marked.returncode == 0, marked.stderr
    rest = [a for p in sorted(set(listing["platforms"]) - set(seen)) for a in ("--platform", p)]
    retried = _cli(ini, "ledger", "retry", entry["image_name"], *rest)
    assert retried.returncode == 0, retried.stderr
    assert "finished (posted on email, instagram, telegram)" in retried.stdout
    per_platform = sorted(p.parent.parent.name for p in outbox.glob("*/*/post.json"))
    assert per_platform == ["email", "instagram", "telegram"]  # exactly one post each
    assert json.loads(_cli(ini, "ledger", "list", "--json").stdout)["unfinished"] == []
    assert (tmp_path / "lib" / "images" / "archive" / entry["image_name"]).is_file()
    assert not (outbox / INCOMING).exists() or list((outbox / INCOMING).iterdir()) == []  # staging cleaned


@pytest.mark.slow
def test_the_operator_command_leaves_a_live_runs_post_alone_without_force(tmp_path: Path) -> None:
    from publisher_v2.cli.sample import main as make_sample

    assert make_sample([str(tmp_path / "lib"), "--count", "1", "--seed", "3"]) == 0
    ini = tmp_path / "lib" / "publisher.ini"
    ledger = PostLedger(tmp_path / "lib" / "state" / "ledger.sqlite")
    assert ledger.claim("0123456789abcdef", "live.jpg")  # held by this (living) test process
    refused = _cli(ini, "ledger", "release", "live.jpg")
    assert refused.returncode == 1
    assert verdict_lines(refused.stderr) == [
        f"publisher: error: live.jpg is held by a live run ({ledger.owner}, since"
        f" {ledger.get('0123456789abcdef')['claimed_at']}); wait for it, or use --force if that run is gone"  # type: ignore[index]
    ]
    forced = _cli(ini, "ledger", "release", "0123456789ab", "--force")
    assert forced.returncode == 0 and "Released live.jpg" in forced.stdout
    assert ledger.get("0123456789abcdef") is None


def test_local_storage_treats_a_symlink_out_of_the_library_as_absent(tmp_path: Path) -> None:
    import asyncio

    from PIL import Image

    from publisher_v2.services.storage.local import LocalStorage

    library, outside = tmp_path / "library", tmp_path / "outside"
    library.mkdir()
    outside.mkdir()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(outside / "secret.jpg")
    Image.new("RGB", (8, 8), (1, 1, 1)).save(library / "real.jpg")
    (library / "escape.jpg").symlink_to(outside / "secret.jpg")
    (library / "real.txt").symlink_to(outside / "notes.txt")
    (outside / "notes.txt").write_text("outside text", encoding="utf-8")
    storage = LocalStorage(library)

    async def probe() -> None:
        assert [e.name for e in await storage.list_images()] == ["real.jpg"]
        assert await storage.get_image("escape.jpg") is None
        for action in (storage.download_image, storage.archive_image, storage.get_file_metadata):
            with pytest.raises(StorageError, match="Image not found"):
                await action("escape.jpg")
        assert await storage.read_sidecar_text("real.jpg") is None  # a sidecar link out is not read either

    asyncio.run(probe())
    assert (outside / "secret.jpg").is_file() and (library / "escape.jpg").is_symlink()


@pytest.mark.slow
def test_a_later_run_completes_interrupted_posts_that_need_no_decision(tmp_path: Path) -> None:
    from publisher_v2.cli.sample import main as make_sample

    assert make_sample([str(tmp_path / "lib"), "--count", "3", "--seed", "4"]) == 0
    ini, lib = tmp_path / "lib" / "publisher.ini", tmp_path / "lib"
    assert _cli(ini, killer_stage="recording").returncode == -9  # posted everywhere, not archived
    recorded = json.loads(_cli(ini, "ledger", "list", "--json").stdout)["unfinished"]
    assert [(e["status"], e["archive_state"]) for e in recorded] == [("posted", "pending")]
    # A run that died after telegram answered and before the others were called: nothing is unknown.
    crashed = PostLedger(lib / "state" / "ledger.sqlite")
    crashed.owner = f"{socket.gethostname()}:{dead_pid()}:0ddba11"
    name = sorted(p.name for p in (lib / "images").glob("*.jpg") if p.name != recorded[0]["image_name"])[0]
    digest = dropbox_content_hash(lib / "images" / name)
    assert crashed.claim(digest, name)
    crashed.mark_publishing(digest)
    assert crashed.begin_sending(digest, "telegram")
    crashed.record_outcome(digest, "telegram", True, "t-earlier", None)

    later = _cli(ini)
    assert later.returncode == 0, later.stderr
    completing = [
        e for e in map(json.loads, later.stderr.splitlines()) if e["message"] == "ledger_completing_interrupted"
    ]
    assert sorted(e["image_name"] for e in completing) == sorted([recorded[0]["image_name"], name])
    posts = [json.loads(p.read_text(encoding="utf-8")) for p in (lib / "outbox").glob("*/*/post.json")]
    assert sorted(p["platform"] for p in posts if p["image_name"] == name) == ["email", "instagram"]  # not telegram
    assert json.loads(_cli(ini, "ledger", "list", "--json").stdout)["unfinished"] == []
    assert (lib / "images" / "archive" / name).is_file()
    assert (lib / "images" / "archive" / recorded[0]["image_name"]).is_file()
    entry = crashed.entry(digest)
    assert entry is not None and entry.platforms["telegram"].post_id == "t-earlier"
