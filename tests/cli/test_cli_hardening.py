"""Issue 21 items 4-9 (non-web), through the installed `publisher` command in subprocesses: no credential of a
database URL in any output, terminal control characters shown escaped, stop signals handled like Ctrl-C,
tracebacks turned into one-line verdicts carrying the run's correlation id, bounded INI interpolation, and the
smaller holes of the ledger commands and the archive folder."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import pytest

from publisher_v2.ledger import PostLedger
from tests.cli_output import stderr_events, verdict_event
from tests.conftest import BIN, CORE_HELPERS

pytestmark = pytest.mark.usefixtures("clean_env")

HERE = CORE_HELPERS
CONTROLS = "\x1b]0;owned\x07\x08\x1b[2K\x9b1A"  # OSC title + BEL, BS, erase line, C1 CSI
EVIL_NAME = f"evil{CONTROLS}.jpg"


def cli(ini: Path, *args: str, env: Optional[Dict[str, str]] = None, runner: str = "") -> subprocess.CompletedProcess:
    """`publisher --config INI args…` (or the test helper `runner` around the same main), JSON events on stderr."""
    prefix = [sys.executable, str(HERE / runner)] if runner else [str(BIN / "publisher")]
    full_env = {**os.environ, "PUBLISHER_LOG_FORMAT": "json", **(env or {})}
    return subprocess.run(
        [*prefix, "--config", str(ini), *args], capture_output=True, text=True, timeout=120, env=full_env
    )


def library(tmp_path: Path, count: int = 2) -> Path:
    from publisher_v2.cli.sample import main as make_sample

    assert make_sample([str(tmp_path / "lib"), "--count", str(count), "--seed", "5"]) == 0
    return tmp_path / "lib" / "publisher.ini"


def ledger_of(ini: Path) -> PostLedger:
    return PostLedger(ini.parent / "state" / "ledger.sqlite")


def assert_no_raw_controls(text: str) -> None:
    raw = sorted({hex(ord(c)) for c in text if (ord(c) < 32 and c not in "\n") or 0x7F <= ord(c) <= 0x9F})
    assert not raw, f"raw control characters {raw} in {text!r}"


# -- 21.4: database URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:Pw3Secret#x@127.0.0.1/db",
        "postgresql://u:Pw3Secret?x@127.0.0.1/db",
        "postgresql://u:Pw3Secret/x@127.0.0.1/db",
        "postgresql://u:1234/Pw3Secret@127.0.0.1/db",
        "postgresql://u:Pw3[Secret@127.0.0.1/db",
    ],
)
def test_an_unreadable_database_url_is_one_verdict_naming_the_setting_and_quoting_nothing(
    tmp_path: Path, url: str
) -> None:
    ini = library(tmp_path)
    for args in (("ledger", "list"), ("ledger", "list", "--json"), ("migrate-to-postgres",), ()):
        done = cli(ini, *args, env={"DATABASE_URL": url})
        assert done.returncode == 1, done.stderr
        event = verdict_event(done.stderr)
        assert event["verdict"].startswith("publisher: error: environment DATABASE_URL: not a valid PostgreSQL URL")
        assert event.get("correlation_id")
        output = done.stdout + done.stderr
        assert "Traceback" not in output
        for piece in ("Pw3", "Secret", "1234"):
            assert piece not in output, piece


def test_ini_state_url_that_is_unreadable_names_the_file_and_key(tmp_path: Path) -> None:
    ini = library(tmp_path)
    text = ini.read_text().replace("[State]\n", "[State]\nurl = postgresql://u:Pw3Secret#x@127.0.0.1/db\n")
    ini.write_text(text)
    done = cli(ini, "ledger", "list")
    assert done.returncode == 1
    assert verdict_event(done.stderr)["verdict"].startswith(f"publisher: error: {ini}: [State] url: not a valid")
    assert "Pw3Secret" not in done.stdout + done.stderr


def test_no_password_of_a_database_url_in_any_output_of_the_ledger_commands(tmp_path: Path, pg_server: object) -> None:
    from tests.pg_server import PASSWORD, PASSWORD_USER

    ini = library(tmp_path)
    database = pg_server.new_database(owner=PASSWORD_USER)  # type: ignore[attr-defined]
    port = pg_server.port  # type: ignore[attr-defined]
    assert cli(ini, "--debug").returncode == 0  # leaves a SQLite ledger (and a row) to copy
    sqlite_ledger = ini.parent / "state" / "ledger.sqlite"
    with ledger_of(ini) as ledger:
        assert ledger.claim("ab" * 32, "held.jpg")
    urls = [
        f"postgresql://{PASSWORD_USER}@127.0.0.1:{port}/{database}?password={PASSWORD}&sslmode=disable",  # libpq
        f"postgresql://{PASSWORD_USER}@127.0.0.1:{port}/{database}?sslmode=disable&password={PASSWORD}&application_name=x",
        f"postgresql://{PASSWORD_USER}:{PASSWORD}@127.0.0.1:{port}/{database}",
    ]
    for url in urls:
        env = {"DATABASE_URL": url}
        migrated = cli(ini, "migrate-to-postgres", "--sqlite", str(sqlite_ledger), env=env)
        listed = cli(ini, "ledger", "list", env=env)
        as_json = cli(ini, "ledger", "list", "--json", env=env)
        for done in (migrated, listed, as_json):
            assert done.returncode == 0, done.stderr
            assert PASSWORD not in done.stdout + done.stderr
            assert "password=" not in done.stdout.lower()
        where = f"postgresql://{PASSWORD_USER}@127.0.0.1:{port}/{database}"
        assert where in listed.stdout and "held.jpg" in listed.stdout
        assert json.loads(as_json.stdout)["ledger"].startswith(where)
        assert f"into {where}" in migrated.stdout


def test_a_secret_in_an_image_name_is_not_printed_by_the_ledger_commands(tmp_path: Path) -> None:
    ini = library(tmp_path)
    key = "sk-proj-Qm7vXc2LpT9zRw4hYk8nBf3s"
    with ledger_of(ini) as ledger:
        assert ledger.claim("cd" * 32, f"leak-{key}.jpg")
        assert ledger.claim("ef" * 32, f"part-{key[3:20]}.jpg")  # 17 characters of it
    env = {"OPENAI_API_KEY": key}
    for args in (("ledger", "list"), ("ledger", "list", "--json")):
        done = cli(ini, *args, env=env)
        assert done.returncode == 0, done.stderr
        assert "leak-" in done.stdout and "part" in done.stdout
        assert key[:12] not in done.stdout and key[3:15] not in done.stdout and key[8:20] not in done.stdout


# -- 21.5: terminal control characters --------------------------------------------------------------------


def test_control_characters_in_an_image_name_are_shown_escaped_everywhere(tmp_path: Path) -> None:
    ini = library(tmp_path)
    images = ini.parent / "images"
    (images / EVIL_NAME).write_bytes(next(images.glob("*.jpg")).read_bytes() + b"\0")  # a content of its own
    published = cli(ini, "--select", EVIL_NAME)
    assert published.returncode == 0, published.stderr
    assert "evil\\x1b]0;owned\\x07\\x08\\x1b[2K\\x9b1A.jpg" in published.stdout
    assert_no_raw_controls(published.stdout)
    with ledger_of(ini) as ledger:
        assert ledger.claim("12" * 32, EVIL_NAME)
        assert ledger.claim("13" * 32, "a.jpg\nforged.jpg  1313  posted\r")
    for args in (("ledger", "list"), ("ledger", "list", "--json")):
        done = cli(ini, *args)
        assert_no_raw_controls(done.stdout)
        assert "evil" in done.stdout, (args, done.stdout, done.stderr)
        assert not any(line.startswith("forged") for line in done.stdout.splitlines())
    assert "a.jpg\\nforged.jpg  1313  posted\\r  " in cli(ini, "ledger", "list").stdout
    console = cli(ini, "--select", "nope" + CONTROLS, env={"PUBLISHER_LOG_FORMAT": "console"})
    assert console.returncode == 1 and "nope\\x1b]0;owned\\x07\\x08" in console.stderr
    assert_no_raw_controls(console.stderr.replace("\x1b[", "").replace("\x1b]", ""))  # not coloured: none at all
    assert "\x07" not in console.stderr and "\x08" not in console.stderr and "\x9b" not in console.stderr


@pytest.mark.parametrize("post_id", ["", "  ", "123\x1b[2K", "1\x07", "abc\x85"])
def test_mark_posted_refuses_an_empty_post_id_or_one_with_control_characters(tmp_path: Path, post_id: str) -> None:
    ini = library(tmp_path)
    with ledger_of(ini) as ledger:
        assert ledger.claim("34" * 32, "held.jpg")
    done = cli(ini, "ledger", "mark-posted", "held.jpg", "--force", "--platform", "telegram", "--post-id", post_id)
    assert done.returncode == 1
    event = verdict_event(done.stderr)
    assert "--post-id" in event["verdict"] and "control characters" in event["verdict"] and event["correlation_id"]
    assert_no_raw_controls(done.stderr)
    with ledger_of(ini) as ledger:
        entry = ledger.entry("34" * 32)
        assert entry is not None and entry.platforms == {}  # nothing recorded


def test_mark_posted_refuses_a_platform_that_does_not_exist_naming_the_known_ones(tmp_path: Path) -> None:
    ini = library(tmp_path)
    with ledger_of(ini) as ledger:
        assert ledger.claim("56" * 32, "held.jpg")
    done = cli(ini, "ledger", "mark-posted", "held.jpg", "--force", "--platform", "bogus")
    assert done.returncode == 1
    assert verdict_event(done.stderr)["verdict"] == (
        "publisher: error: --platform 'bogus': not a platform; expected one of telegram, instagram, email"
    )
    with ledger_of(ini) as ledger:
        entry = ledger.entry("56" * 32)
        assert entry is not None and entry.platforms == {} and entry.claim_owner == ledger_owner_of(ini, "56" * 32)


def ledger_owner_of(ini: Path, content_hash: str) -> str:
    with sqlite3.connect(ini.parent / "state" / "ledger.sqlite") as db:
        return db.execute("SELECT claim_owner FROM posted_images WHERE content_hash = ?", (content_hash,)).fetchone()[0]


def test_release_force_that_is_refused_changes_nothing(tmp_path: Path) -> None:
    ini = library(tmp_path)
    digest = "78" * 32
    with ledger_of(ini) as ledger:
        assert ledger.claim(digest, "half.jpg")
        ledger.mark_publishing(digest)
        assert ledger.begin_sending(digest, "telegram")
        ledger.record_outcome(digest, "telegram", True, "t-1", None)
        owner = ledger.owner
    before = ledger_owner_of(ini, digest)
    assert before == owner
    done = cli(ini, "ledger", "release", "half.jpg", "--force")
    assert done.returncode == 1
    assert "Cannot release half.jpg: posted on telegram" in verdict_event(done.stderr)["verdict"]
    assert ledger_owner_of(ini, digest) == owner  # the owner was not replaced


# -- 21.7: tracebacks -> verdicts; stop signals -----------------------------------------------------------


def test_a_huge_claim_ttl_is_refused_naming_the_key(tmp_path: Path) -> None:
    ini = library(tmp_path)
    ini.write_text(ini.read_text().replace("[State]\n", "[State]\nclaim_ttl_seconds = 100000000000000000000\n"))
    for args in ((), ("ledger", "list")):
        done = cli(ini, *args)
        assert done.returncode == 1
        line = verdict_event(done.stderr)["verdict"]
        assert f"{ini}: [State] claim_ttl_seconds: Input should be less than or equal to 31536000" in line


def test_migrate_from_a_corrupt_sqlite_file_is_one_verdict(tmp_path: Path) -> None:
    ini = library(tmp_path)
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 200)
    done = cli(ini, "migrate-to-postgres", "--sqlite", str(corrupt), env={"DATABASE_URL": "postgresql://u@127.0.0.1:1/d"})
    assert done.returncode == 1
    event = verdict_event(done.stderr)
    assert event["verdict"] == (
        f"publisher: error: {corrupt}: cannot read the SQLite ledger to copy: file is not a database"
    )
    assert event["correlation_id"] and "Traceback" not in done.stderr


def test_migrate_with_a_deeply_nested_posted_json_reports_it_corrupt(tmp_path: Path, pg_server: object) -> None:
    ini = library(tmp_path)
    assert cli(ini, "--debug").returncode == 0
    deep = tmp_path / "posted.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    url = pg_server.url(pg_server.new_database())  # type: ignore[attr-defined]
    done = cli(ini, "migrate-to-postgres", "--posted-json", str(deep), env={"DATABASE_URL": url})
    assert done.returncode == 1, done.stderr
    assert "corrupt, NOT imported (nested too deeply" in done.stdout
    assert not any("exception" in e for e in stderr_events(done.stderr))


def test_ledger_list_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    ini = library(tmp_path)
    with ledger_of(ini) as ledger:
        for n in range(3000):
            assert ledger.claim(f"{n:064x}", f"image_{n}.jpg")
    done = subprocess.run(
        ["bash", "-c", f"'{BIN / 'publisher'}' --config '{ini}' ledger list | head -3 >/dev/null;"
         " echo ${PIPESTATUS[0]}"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PUBLISHER_LOG_FORMAT="json"),
    )
    assert done.stderr == ""  # no traceback, no event: like other Unix tools
    assert done.stdout.strip() == str(128 + signal.SIGPIPE)


def _paused_run(ini: Path, pause: Path, **env: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "fault_runner.py"), "--config", str(ini)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PUBLISHER_LOG_FORMAT": "json", "PAUSE_BEFORE_ANALYSIS": str(pause), **env},
    )
    deadline = time.time() + 60
    while not (pause / "paused").exists():
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    return process


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_releases_the_claim_and_ends_with_the_interrupted_verdict(
    tmp_path: Path, signum: int
) -> None:
    ini = library(tmp_path)
    process = _paused_run(ini, tmp_path)
    with ledger_of(ini) as ledger:
        (held,) = ledger.unfinished()  # the paused run holds its claim
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    expected = 1 if signum == signal.SIGINT else 128 + signum
    assert process.returncode == expected, err
    event = verdict_event(err)
    assert event["message"] == "cli_interrupted"
    if signum != signal.SIGINT:
        assert event["verdict"].startswith(f"publisher: stopped by {signal.Signals(signum).name}; ")
    starts = [e for e in stderr_events(err) if e["message"] == "workflow_start"]
    assert starts and event["correlation_id"] == starts[0]["correlation_id"]
    with ledger_of(ini) as ledger:
        assert ledger.unfinished() == [] and ledger.entry(held.content_hash) is None  # released, not held an hour
    assert "Traceback" not in err and out == ""
    again = cli(ini)  # the image can be picked at once
    assert again.returncode == 0 and "Published" in again.stdout


def test_a_run_failing_by_exception_keeps_its_correlation_id_and_first_cause(tmp_path: Path) -> None:
    ini = library(tmp_path)
    done = cli(ini, runner="fault_runner.py", env={"FAIL_ANALYSIS": "first failure", "FAIL_RELEASE": "clean-up broke"})
    assert done.returncode == 1
    events = stderr_events(done.stderr)
    event = verdict_event(done.stderr)
    assert event["verdict"] == "publisher: error: first failure"
    starts = [e for e in events if e["message"] == "workflow_start"]
    assert event["correlation_id"] == starts[0]["correlation_id"]
    cleanup = [e for e in events if e["message"] == "workflow_cleanup_failed"]
    assert len(cleanup) == 1 and cleanup[0]["error"] == "clean-up broke"
    assert cleanup[0]["correlation_id"] == event["correlation_id"]


# -- 21.8 / 21.9 ------------------------------------------------------------------------------------------

UPSTREAM_BOMB = """[Dropbox]
image_folder = /Photos

[Content]
a = {a}
b = %(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s
c = %(b)s%(b)s%(b)s%(b)s%(b)s%(b)s%(b)s%(b)s%(b)s%(b)s
d = %(c)s%(c)s%(c)s%(c)s%(c)s%(c)s%(c)s%(c)s%(c)s%(c)s
e = %(d)s%(d)s%(d)s%(d)s%(d)s%(d)s%(d)s%(d)s%(d)s%(d)s
f = %(e)s%(e)s%(e)s%(e)s%(e)s%(e)s%(e)s%(e)s%(e)s%(e)s
hashtag_string = %(f)s%(f)s%(f)s%(f)s%(f)s%(f)s%(f)s%(f)s%(f)s%(f)s
"""


def test_an_upstream_ini_whose_values_expand_past_the_bound_is_refused_fast(tmp_path: Path) -> None:
    ini = tmp_path / "upstream.ini"
    ini.write_text(UPSTREAM_BOMB.format(a="x" * 100))  # 100 MB if expanded
    started = time.monotonic()
    done = cli(ini, "ledger", "list")
    assert time.monotonic() - started < 3.5  # interpreter start-up included; expanding took 4-7 s
    assert done.returncode == 1
    assert verdict_event(done.stderr)["verdict"] == (
        f"publisher: error: {ini}: [Content] d: its %(name)s references expand to more than 65536 characters;"
        " write %% for a literal %"
    )


def test_an_archive_folder_that_is_a_symlink_is_refused_naming_the_key(tmp_path: Path) -> None:
    ini = library(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = ini.parent / "images" / "archive"
    if archive.exists():
        archive.rmdir()
    archive.symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in (ini.parent / "images").glob("*.jpg"))
    done = cli(ini)
    assert done.returncode == 1
    assert verdict_event(done.stderr)["verdict"] == (
        f"publisher: error: {ini.resolve()}: [Local] archive: {archive} is a symbolic link; it must be a real folder"
    )
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (ini.parent / "images").glob("*.jpg")) == before



@pytest.mark.slow
def test_a_run_stopped_by_sigterm_after_a_post_leaves_it_to_the_operator_not_held_by_a_live_run(
    tmp_path: Path,
) -> None:
    ini = library(tmp_path)
    pause = tmp_path / "pause"
    pause.mkdir()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "pause_after_post.py"), "--config", str(ini)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PUBLISHER_LOG_FORMAT": "json", "PAUSE_DIR": str(pause)},
    )
    deadline = time.time() + 60
    while not (pause / "paused").exists():
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert verdict_event(err)["verdict"].startswith("publisher: stopped by SIGTERM; ")
    (entry,) = json.loads(cli(ini, "ledger", "list", "--json").stdout)["unfinished"]
    assert entry["status"] == "publishing" and entry["owner_alive"] is False  # not "held by a live run"
    unknown = [p for p, o in entry["platforms"].items() if o["state"] == "sending"]
    assert unknown  # the post that was made is not forgotten: the operator decides
    marked = cli(ini, "ledger", "mark-posted", entry["image_name"])  # no --force needed: its run is gone
    assert marked.returncode == 0, marked.stderr
