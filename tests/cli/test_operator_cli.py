"""The operator's smaller surprises (issue 22), through the installed `publisher` command in a subprocess:
`--select` on an archived image, `--debug` versus `--log-level`, and Ctrl-C while the CLI is still starting."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Dict

import pytest

from tests.cli_output import stderr_events, verdict, verdict_event
from tests.conftest import BIN

pytestmark = pytest.mark.usefixtures("clean_env")


def run(ini: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "publisher"), "--config", str(ini), *args], capture_output=True, text=True, timeout=120
    )


def library(tmp_path: Path, count: int = 2) -> Path:
    from publisher_v2.cli.sample import main as make_sample

    assert make_sample([str(tmp_path / "lib"), "--count", str(count), "--seed", "5"]) == 0
    return tmp_path / "lib" / "publisher.ini"


def test_select_on_an_archived_image_says_it_was_posted_and_archived(tmp_path: Path) -> None:
    ini = library(tmp_path)
    first = run(ini)
    assert first.returncode == 0, first.stderr
    name = first.stdout.split()[1]
    selected = run(ini, "--select", name)
    assert selected.returncode == 1
    line = verdict(selected.stderr)
    assert line.startswith(f"publisher: Image {name} was posted on 20") and line.endswith(" UTC and is archived")
    assert verdict(run(ini, "--select", "never_there.jpg").stderr) == "publisher: Image not found: never_there.jpg"


def test_select_on_an_archived_image_that_failed_somewhere_names_the_retry(tmp_path: Path) -> None:
    ini = library(tmp_path)
    (ini.parent / "outbox").mkdir()
    (ini.parent / "outbox" / "email").write_text("a file where the platform's folder should be\n")
    first = run(ini)
    assert first.returncode == 3, first.stderr
    name = first.stdout.split()[1]
    line = verdict(run(ini, "--select", name).stderr)
    assert line.endswith(f" UTC and is archived; it failed on email: `publisher ledger retry {name}` sends those")


def levels(stderr: str) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for event in stderr_events(stderr):
        counts[event["level"]] = counts.get(event["level"], 0) + 1
    return counts


def test_debug_simulates_without_debug_logging_and_log_level_is_its_own_switch(tmp_path: Path) -> None:
    ini = library(tmp_path)
    simulated = run(ini, "--debug")  # a fresh ledger is created: its `ledger_migrated` event is at DEBUG
    assert simulated.returncode == 0, simulated.stderr
    assert simulated.stdout.startswith("Debug run (simulated, nothing posted): ")
    assert "DEBUG" not in levels(simulated.stderr) and levels(simulated.stderr)["INFO"] > 0

    (ini.parent / "state" / "ledger.sqlite").unlink()
    verbose = run(ini, "--debug", "--log-level", "debug")
    assert verbose.returncode == 0, verbose.stderr
    assert "ledger_migrated" in [e["message"] for e in stderr_events(verbose.stderr) if e["level"] == "DEBUG"]
    quiet = run(ini, "--log-level", "WARNING")  # a real run, only warnings and errors on stderr
    assert quiet.returncode == 0 and quiet.stdout.startswith("Published ")
    assert set(levels(quiet.stderr)) <= {"WARNING", "ERROR"}


@pytest.mark.slow
def test_ctrl_c_while_the_cli_starts_ends_with_the_interrupted_verdict(tmp_path: Path) -> None:
    """SIGINT at several moments of the first tenth of a second: while the interpreter imports the application
    (asyncio, pydantic, the adapters) and just after. Every one ends with the verdict event, never a traceback,
    and at least one lands during the imports (the verdict without the run's `ledger list` pointer)."""
    ini = library(tmp_path, count=1)
    verdicts = []
    for delay in (0.07, 0.09, 0.11):
        process = subprocess.Popen(
            [str(BIN / "publisher"), "--config", str(ini), "--dry-publish"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        assert "Traceback" not in err and process.returncode == 1, (delay, err[-2000:])
        event = verdict_event(err)  # every line an event, the verdict last
        assert event["message"] == "cli_interrupted" and out == "", (delay, event)
        verdicts.append(event["verdict"])
    assert "publisher: interrupted" in verdicts, verdicts  # the start-up path (publisher_v2.cli.console)
    assert {v for v in verdicts if v != "publisher: interrupted"} <= {
        f"publisher: interrupted; a post it left unfinished is listed by `publisher --config {ini} ledger list`"
    }


def test_going_live_reports_every_missing_setting_in_one_verdict(tmp_path: Path) -> None:
    """Issue 22.6: Dropbox, OpenAI and the live platforms with no secret set took four runs to learn."""
    ini = library(tmp_path)
    text = ini.read_text(encoding="utf-8")
    for old, new in (
        ("[Storage]\nbackend = local", "[Storage]\nbackend = dropbox\n[Dropbox]\nimage_folder = /Photos"),
        ("[AI]\nbackend = offline", "[AI]\nbackend = openai"),
        ("backend = outbox", "backend = live"),
        ("sender = publisher@example.com\nrecipient = photos@example.org", "smtp_server = smtp.example.com"),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    ini.write_text(text, encoding="utf-8")
    refused = run(ini)
    assert refused.returncode == 1 and refused.stdout == ""
    line = verdict(refused.stderr)
    assert line.startswith(f"publisher: error: {ini}: 8 settings to fix: [Storage] backend = dropbox needs the ")
    for missing in (
        "DROPBOX_APP_KEY, DROPBOX_APP_SECRET, DROPBOX_REFRESH_TOKEN;",
        "[AI] backend = openai needs the environment variable(s) OPENAI_API_KEY;",
        "TELEGRAM_BOT_TOKEN, TELEGRAM_CHANNEL_ID;",
        "[Content] instagram = true needs the environment variable(s) INSTA_PASSWORD;",
        "[Content] fetlife/email = true needs the environment variable(s) EMAIL_PASSWORD;",
        "[Email] sender: required when email publishing is enabled;",
        "[Email] recipient: required when email publishing is enabled;",
        "[Instagram] user_id: required when instagram publishing is enabled",
    ):
        assert missing in line, missing


def test_preflight_reports_every_folder_problem_at_once(tmp_path: Path) -> None:
    ini = library(tmp_path)
    text = ini.read_text(encoding="utf-8").replace("outbox_folder = outbox", "outbox_folder = publisher.ini/outbox")
    ini.write_text(text.replace("ledger_path = state/ledger.sqlite", "ledger_path = images"), encoding="utf-8")
    line = verdict(run(ini).stderr)
    assert line == (
        f"publisher: error: {ini}: 2 settings to fix: [Publishing] outbox_folder: {ini.parent}/publisher.ini/outbox"
        f" cannot be created: {ini} is not a folder; [State] ledger_path: {ini.parent}/images is a folder, not a file"
    )
