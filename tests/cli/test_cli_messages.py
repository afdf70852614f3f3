"""What `publisher` says on stdout and stderr matches what the run did, in every mode (issue 13).

Every test runs the real CLI on a real sample library; a refused configuration must leave no trace at all.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import List, Tuple

import pytest

from publisher_v2.cli.app import main
from publisher_v2.cli.run_summary import MAX_REASON, RunMode, first_reason, summarize
from publisher_v2.domain.models import PublishResult, WorkflowResult
from tests.cli_output import stderr_events, verdict, verdict_event
from tests.conftest import json_events

pytestmark = pytest.mark.usefixtures("clean_env")

PLATFORMS = ("telegram", "instagram", "email")
CID = r"\[correlation_id=[0-9a-f-]{36}\]"


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> Tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def set_keys(ini: Path, **values: str) -> None:
    """Rewrite `key = value` lines of the sample INI (every key given must exist in it)."""
    text = ini.read_text()
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, key
    ini.write_text(text)


def leftovers(ini: Path, *, state: bool = True) -> List[str]:
    """What a run may create next to the library: sidecars, outbox and (with `state`) the ledger's folder.

    A dry run reads the ledger (so it may create it); a refused configuration must not even do that.
    """
    root = ini.parent
    found = [str(p.relative_to(root)) for p in (root / "images").glob("*.txt")]
    found += [name for name in ("outbox", "state" if state else "") if name and (root / name).exists()]
    return found


def posted_names(ini: Path) -> List[str]:
    with sqlite3.connect(ini.parent / "state" / "ledger.sqlite") as db:
        return [row[0] for row in db.execute("SELECT image_name FROM posted_images")]


# -- every mode says what happened ---------------------------------------------------------------------------


def test_a_real_run_names_the_platforms_it_posted_to(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 0, err
    (name,) = posted_names(sample_library)
    assert re.fullmatch(rf"Published {re.escape(name)} to telegram, instagram, email; archived {CID}\n", out)


def test_debug_says_simulated_nothing_posted_and_never_published(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run_cli(capsys, "--config", str(sample_library), "--debug")
    assert code == 0, err
    assert "simulated, nothing posted" in out and "Published" not in out
    assert "telegram, instagram, email" in out
    assert not (sample_library.parent / "outbox").exists()


def test_dry_publish_says_what_it_would_publish_and_where(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run_cli(capsys, "--config", str(sample_library), "--dry-publish")
    assert code == 0, err
    started = next(e for e in json_events(err) if e["message"] == "workflow_complete")
    assert out.startswith(f"Would publish {started['image_name']} to telegram, instagram, email (dry run:")
    assert "Published" not in out and leftovers(sample_library, state=False) == []


def test_preview_prints_readable_values_not_python_reprs(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run_cli(capsys, "--config", str(sample_library), "--preview")
    assert code == 0, err
    assert "['" not in out and "{'" not in out and '{"' not in out and "True" not in out and "False" not in out
    tags = next(line for line in out.splitlines() if line.startswith("  tags: "))
    assert re.fullmatch(r"  tags: [^,\[\]']+(, [^,\[\]']+)+", tags), tags
    assert "  nsfw: no" in out.splitlines()
    assert "Email plan: caption in the subject, subject mode normal, confirmation to the sender: yes" in out
    assert out.rstrip().endswith(
        "would publish to telegram, instagram, email; nothing was written, posted, archived or recorded."
    )
    assert leftovers(sample_library, state=False) == []


def test_partial_success_names_each_failed_platform_and_its_first_reason(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    outbox = sample_library.parent / "outbox"
    outbox.mkdir()
    (outbox / "instagram").write_text("a file where the platform's folder should be\n")
    code, out, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 3, err  # posted, but not everywhere: its own exit status, and a verdict naming the retry
    (name,) = posted_names(sample_library)
    assert out.startswith(
        f"Published {name} to telegram, email; failed on instagram (Outbox write failed: [Errno 20] Not a directory: "
    )
    listing = f"publisher --config {sample_library} ledger list"
    assert str(outbox / "instagram") in out and out.rstrip().endswith("]")
    assert f"; archived; 1 post needs attention: run `{listing}` [correlation_id=" in out
    event = verdict_event(err)
    assert (event["message"], event["exit_code"]) == ("cli_partial_failure", 3)
    assert event["verdict"].startswith(f"publisher: posted {name} only partly: instagram: Outbox write failed: ")
    assert event["verdict"].endswith(
        f"; send the failed platforms again with `publisher --config {sample_library} ledger retry {name}`"
    )


def test_the_next_run_still_says_a_post_waits_for_the_operator(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    outbox = sample_library.parent / "outbox"
    outbox.mkdir()
    (outbox / "instagram").write_text("a file where the platform's folder should be\n")
    assert run_cli(capsys, "--config", str(sample_library))[0] == 3
    (outbox / "instagram").unlink()
    code, out, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 0, err  # this run posted everywhere; the earlier post still waits
    listing = f"publisher --config {sample_library} ledger list"
    assert re.fullmatch(
        rf"Published \S+ to telegram, instagram, email; archived; 1 post needs attention: run `{re.escape(listing)}`"
        rf" {CID}\n",
        out,
    )


def test_every_platform_failing_gives_the_first_cause_on_the_one_line_verdict(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    outbox = sample_library.parent / "outbox"
    outbox.mkdir()
    for platform in PLATFORMS:
        (outbox / platform).write_text("not a folder\n")
    code, out, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 1
    event = verdict_event(err)
    line = event["verdict"]
    assert line.startswith(
        "publisher: Every publisher failed: telegram: Outbox write failed: [Errno 20] Not a directory: "
    )
    assert str(outbox / "telegram") in line
    assert (event["message"], event["exit_code"]) == ("cli_failed", 1)
    assert f"[correlation_id={event['correlation_id']}]" in out  # the run's id, in the event and the summary
    assert out.startswith("Not published: ") and all(f"{p} (Outbox write failed: [Errno" in out for p in PLATFORMS)


def test_nothing_to_post_is_said_on_stdout_and_in_the_verdict(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    for image in (sample_library.parent / "images").iterdir():
        if image.is_file():
            image.unlink()
    code, out, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 1
    assert re.fullmatch(rf"Nothing posted: No images found {CID}\n", out)
    assert verdict(err) == "publisher: No images found"


# -- configuration that cannot lead to a publish is refused before any work ----------------------------------


def refused(capsys: pytest.CaptureFixture, ini: Path, *args: str) -> str:
    code, out, err = run_cli(capsys, "--config", str(ini), *args)
    assert code == 1 and out == ""
    event = verdict_event(err)
    assert stderr_events(err) == [event], "a refused configuration is ONE event, before any other"
    assert leftovers(ini) == [], "nothing may be selected, analysed, written or recorded"
    return str(event["verdict"])


def test_no_platform_enabled_is_refused_before_selection_or_analysis(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    set_keys(sample_library, telegram="false", instagram="false", email="false")
    line = refused(capsys, sample_library)
    assert line.startswith(f"publisher: error: {sample_library}: [Content] telegram, instagram, email: ")
    assert "no platform is enabled" in line


def test_no_platform_is_still_fine_for_a_dry_run_and_debug(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    set_keys(sample_library, telegram="false", instagram="false", email="false")
    code, out, _ = run_cli(capsys, "--config", str(sample_library), "--dry-publish")
    assert code == 0 and "to no platform (none is enabled)" in out
    code, out, _ = run_cli(capsys, "--config", str(sample_library), "--debug")
    assert code == 0 and "simulated, nothing posted" in out


def test_library_folder_that_is_a_file_is_refused_naming_section_and_key(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    set_keys(sample_library, image_folder="publisher.ini")
    line = refused(capsys, sample_library)
    assert line == f"publisher: error: {sample_library}: [Local] image_folder: {sample_library} is not a folder"


def test_outbox_under_a_file_is_refused_instead_of_failing_every_platform(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    set_keys(sample_library, outbox_folder="publisher.ini/outbox")
    line = refused(capsys, sample_library)
    assert line.startswith(f"publisher: error: {sample_library}: [Publishing] outbox_folder: ")
    assert f"{sample_library} is not a folder" in line


def test_ledger_path_that_is_a_folder_is_refused(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    set_keys(sample_library, ledger_path="images")
    line = refused(capsys, sample_library)
    assert line.startswith(f"publisher: error: {sample_library}: [State] ledger_path: ")
    assert line.endswith("is a folder, not a file")


def test_live_platform_without_its_secret_is_refused(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    # [Storage] has a `backend` key too, so this edit names the section.
    text = sample_library.read_text().replace("[Publishing]\nbackend = outbox", "[Publishing]\nbackend = live")
    assert "backend = live" in text
    sample_library.write_text(text)
    line = refused(capsys, sample_library)
    assert line == (  # every missing setting in one verdict (issue 22.6), not one per run
        f"publisher: error: {sample_library}: 5 settings to fix:"
        " [Content] telegram = true needs the environment variable(s) TELEGRAM_BOT_TOKEN, TELEGRAM_CHANNEL_ID;"
        " [Content] instagram = true needs the environment variable(s) INSTA_PASSWORD;"
        " [Content] fetlife/email = true needs the environment variable(s) EMAIL_PASSWORD;"
        " [Instagram] user_id: required when instagram publishing is enabled;"
        " [Content] instagram = true needs [Storage] backend = dropbox (Instagram fetches the image from a public URL)"
    )


# -- INI syntax errors name the line --------------------------------------------------------------------------


def test_unclosed_section_header_names_its_line(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    lines = sample_library.read_text().splitlines()
    number = lines.index("[Local]") + 1
    lines[number - 1] = "[Local"
    sample_library.write_text("\n".join(lines) + "\n")
    line = refused(capsys, sample_library)
    assert line == (
        f"publisher: error: {sample_library}:{number}: not a valid INI file: '[Local' is not a line of INI "
        "(an unclosed [Section] header)"
    )


def test_key_before_any_section_names_line_one(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    sample_library.write_text("backend = local\n" + sample_library.read_text())
    line = refused(capsys, sample_library)
    assert line == (
        f"publisher: error: {sample_library}:1: not a valid INI file: 'backend = local' comes before any "
        "[Section] header"
    )


def test_a_key_set_twice_names_the_second_line(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    lines = sample_library.read_text().splitlines()
    number = lines.index("telegram = true") + 2  # the second one, 1-based
    lines.insert(number - 1, "telegram = false")
    sample_library.write_text("\n".join(lines) + "\n")
    line = refused(capsys, sample_library)
    assert re.fullmatch(
        rf"publisher: error: {re.escape(str(sample_library))}:{number}: not a valid INI file: \[Content\] "
        r"telegram: the key is set twice",
        line,
    )


# -- the words themselves ----------------------------------------------------------------------------------


def test_a_secret_in_a_platform_error_is_redacted_on_both_lines() -> None:
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    result = WorkflowResult(
        success=False,
        image_name="a.jpg",
        error="Every publisher failed",
        publish_results={
            "telegram": PublishResult(False, "telegram", error=f"POST https://api.telegram.org/bot{token}/sendPhoto")
        },
        correlation_id="c0ffee00-0000-4000-8000-000000000000",
    )
    summary = summarize(result, RunMode(), ["telegram"])
    assert summary.stderr is not None and token not in summary.stdout + summary.stderr
    assert summary.stderr.startswith("Every publisher failed: telegram: POST https://api.telegram.org/bot")


def test_a_long_or_multi_line_reason_is_cut_to_its_first_line() -> None:
    assert first_reason("first line\n  Traceback: second") == "first line"
    assert first_reason("x" * 500) == "x" * (MAX_REASON - 1) + "…"
    assert first_reason(None) == first_reason("  \n") == "unknown error"
