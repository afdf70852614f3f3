"""The `publisher` command end to end on the embedded defaults, including every bad input of the issue."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest

from publisher_v2.cli.app import main
from tests.cli_output import stderr_events, verdict, verdict_event
from tests.conftest import BIN, json_events

pytestmark = pytest.mark.usefixtures("clean_env")


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> Tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def images_of(ini: Path) -> List[str]:
    return sorted(
        p.name for p in (ini.parent / "images").iterdir() if p.is_file() and not p.name.endswith(".txt")
    )


def outbox_posts(ini: Path, platform: str) -> List[dict]:
    folder = ini.parent / "outbox" / platform
    if not folder.exists():
        return []
    return [json.loads((d / "post.json").read_text()) for d in sorted(folder.iterdir()) if d.is_dir()]


def ledger_rows(ini: Path) -> List[tuple]:
    with sqlite3.connect(ini.parent / "state" / "ledger.sqlite") as db:
        return db.execute("SELECT image_name, status FROM posted_images").fetchall()


def test_run_publishes_one_image_archives_it_and_logs_one_correlation_id(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    before = images_of(sample_library)
    code, out, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 0, err
    events = json_events(err)
    cids = {e.get("correlation_id") for e in events if e["logger"].startswith("publisher_v2")}
    assert len(cids) == 1 and None not in cids
    done = next(e for e in events if e["message"] == "workflow_complete")
    name = done["image_name"]
    assert done["archived"] is True
    assert name not in images_of(sample_library)
    assert (sample_library.parent / "images" / "archive" / name).is_file()
    assert (sample_library.parent / "images" / "archive" / (Path(name).stem + ".txt")).is_file()
    for platform in ("telegram", "instagram", "email"):
        posts = outbox_posts(sample_library, platform)
        assert [p["image_name"] for p in posts] == [name]
    assert ledger_rows(sample_library) == [(name, "posted")]
    assert f"Published {name}" in out and cids.pop() in out
    assert len(images_of(sample_library)) == len(before) - 1


def test_second_run_picks_a_different_image(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    names = []
    for _ in range(2):
        code, _, err = run_cli(capsys, "--config", str(sample_library))
        assert code == 0, err
        names.append(next(e for e in json_events(err) if e["message"] == "workflow_complete")["image_name"])
    assert names[0] != names[1]
    assert sorted(r[0] for r in ledger_rows(sample_library)) == sorted(names)


def test_post_is_recorded_even_when_archiving_is_off(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    text = sample_library.read_text().replace("archive = true", "archive = false")
    assert "archive = false" in text
    sample_library.write_text(text)
    seen = set()
    for _ in range(3):
        code, _, err = run_cli(capsys, "--config", str(sample_library))
        assert code == 0, err
        done = next(e for e in json_events(err) if e["message"] == "workflow_complete")
        assert done["archived"] is False
        seen.add(done["image_name"])
    assert len(seen) == 3, "an unarchived image was posted twice"
    assert len(images_of(sample_library)) == 8


def test_missing_config_is_one_line_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(capsys, "--config", str(tmp_path / "absent.ini"))
    assert code == 1
    event = verdict_event(err)
    assert stderr_events(err) == [event]  # the one line
    assert event["message"] == "cli_failed" and event["exit_code"] == 1
    assert event["verdict"] == f"publisher: error: {tmp_path / 'absent.ini'}: configuration file not found"


def test_unknown_section_value_names_key(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    text = sample_library.read_text()
    assert "[Email]" in text
    sample_library.write_text(text.replace("[Email]", "[Email]\ncaption_target = sideways", 1))
    code, _, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 1
    line = verdict(err)
    assert "[Email] caption_target" in line and "sideways" in line and "Traceback" not in err


def test_empty_library_says_no_images_found(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    for image in (sample_library.parent / "images").iterdir():
        if image.is_file():
            image.unlink()
    code, _, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 1
    assert verdict(err) == "publisher: No images found"


def test_library_path_that_does_not_exist_is_one_clear_line(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    sample_library.write_text(
        sample_library.read_text().replace("image_folder = images", "image_folder = nowhere")
    )
    code, _, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 1
    last = verdict(err)
    assert last.startswith("publisher: error:") and "nowhere" in last
    assert "Traceback" not in err


def test_every_image_posted_says_no_new_images(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    text = sample_library.read_text().replace("archive = true", "archive = false")
    sample_library.write_text(text)
    for _ in range(8):
        assert run_cli(capsys, "--config", str(sample_library))[0] == 0
    code, _, err = run_cli(capsys, "--config", str(sample_library))
    assert code == 1
    assert verdict(err) == "publisher: No new images to post"
    assert len(outbox_posts(sample_library, "telegram")) == 8


def test_select_of_missing_name_fails_clearly(sample_library: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(capsys, "--config", str(sample_library), "--select", "ghost.jpg")
    assert code == 1
    assert verdict(err) == "publisher: Image not found: ghost.jpg"
    assert outbox_posts(sample_library, "telegram") == []


def test_select_posts_that_image_even_if_posted_before(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    sample_library.write_text(sample_library.read_text().replace("archive = true", "archive = false"))
    name = images_of(sample_library)[3]
    for _ in range(2):
        code, _, err = run_cli(capsys, "--config", str(sample_library), "--select", name)
        assert code == 0, err
    assert [p["image_name"] for p in outbox_posts(sample_library, "email")] == [name, name]
    assert ledger_rows(sample_library) == [(name, "posted")]


def test_corrupt_image_is_skipped_with_a_warning_and_the_run_continues(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = sample_library.parent / "images"
    keep = images_of(sample_library)[0]
    for name in images_of(sample_library)[1:]:
        (folder / name).unlink()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    results = []
    for _ in range(2):
        code, _, err = run_cli(capsys, "--config", str(sample_library))
        results.append((code, json_events(err)))
    published = [
        next(e for e in ev if e["message"] == "workflow_complete")["image_name"]
        for c, ev in results
        if c == 0
    ]
    assert published == [keep], "the good image is published exactly once"
    warnings = [e for _, ev in results for e in ev if e["message"] == "image_skipped_corrupt"]
    assert (
        len(warnings) == 1 and warnings[0]["image_name"] == "broken.jpg" and warnings[0]["level"] == "WARNING"
    )
    assert (folder / "broken.jpg").exists(), "a corrupt image is never deleted"


def test_dry_publish_writes_publishes_archives_and_records_nothing(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    before = images_of(sample_library)
    code, out, err = run_cli(capsys, "--config", str(sample_library), "--dry-publish")
    assert code == 0, err
    assert images_of(sample_library) == before
    assert not list((sample_library.parent / "images").glob("*.txt"))
    assert not (sample_library.parent / "outbox").exists()
    assert ledger_rows(sample_library) == []
    assert "dry run" in out


def test_preview_prints_a_report_and_has_no_side_effects(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    before = images_of(sample_library)
    code, out, err = run_cli(capsys, "--config", str(sample_library), "--preview")
    assert code == 0, err
    for heading in (
        "Image:",
        "Analysis:",
        "Caption:",
        "SD caption:",
        "Sidecar:",
        "Platforms:",
        "Email plan:",
    ):
        assert heading in out
    assert "telegram:" in out and "instagram:" in out
    assert images_of(sample_library) == before
    assert not (sample_library.parent / "outbox").exists()
    assert ledger_rows(sample_library) == []
    assert json_events(err) == [] or all(e["level"] != "INFO" for e in json_events(err))


def test_debug_simulates_success_without_side_effects(
    sample_library: Path, capsys: pytest.CaptureFixture
) -> None:
    before = images_of(sample_library)
    code, _, err = run_cli(capsys, "--config", str(sample_library), "--debug")
    assert code == 0, err
    assert images_of(sample_library) == before
    assert not (sample_library.parent / "outbox").exists()
    assert any(e["message"] == "debug_mode_simulated" for e in json_events(err))


@pytest.mark.slow
def test_console_script_and_module_entry_points(sample_library: Path, clean_env: dict) -> None:
    for command in ([str(BIN / "publisher")], [str(BIN / "python"), "-m", "publisher_v2"]):
        proc = subprocess.run(
            [*command, "--config", str(sample_library)],
            capture_output=True,
            text=True,
            env=clean_env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert json_events(proc.stderr), "logs are JSON lines on stderr"
        assert proc.stdout.startswith("Published ")


@pytest.mark.slow
def test_two_concurrent_runs_never_publish_the_same_image(sample_library: Path, clean_env: dict) -> None:
    sample_library.write_text(sample_library.read_text().replace("archive = true", "archive = false"))
    for _ in range(3):
        procs = [
            subprocess.Popen(
                [str(BIN / "publisher"), "--config", str(sample_library)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=clean_env,
            )
            for _ in range(2)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    names = [p["image_name"] for p in outbox_posts(sample_library, "telegram")]
    assert len(names) == 6
    assert len(set(names)) == 6, f"an image was published twice: {names}"
