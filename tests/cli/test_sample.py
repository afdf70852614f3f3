"""`publisher-sample`: a real, varied, reproducible library and an INI that the real CLI runs end to end."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest
from PIL import Image

from publisher_v2.cli.app import main as publisher_main
from publisher_v2.cli.sample import main as sample_main
from publisher_v2.config.loader import load_application_config
from publisher_v2.domain.captions import parse_sidecar_text
from tests.cli_output import stderr_events, verdict, verdict_event
from tests.conftest import BIN, json_events


def make(root: Path, *args: str) -> List[str]:
    lines: List[str] = []
    assert sample_main([str(root), *args], out=lines.append) == 0
    return lines


def digests(folder: Path) -> Dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def test_sample_creates_varied_real_images_and_an_ini(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    lines = make(root, "--count", "10", "--seed", "5")
    images = sorted((root / "images").iterdir())
    assert len(images) == 10
    formats, orientations, makes, modes = set(), set(), set(), set()
    for path in images:
        with Image.open(path) as image:
            image.load()
            formats.add(image.format)
            modes.add(image.mode)
            w, h = image.size
            orientations.add("landscape" if w > h else "portrait" if h > w else "square")
            make_tag = image.getexif().get(0x010F)
            if make_tag:
                makes.add(make_tag)
    assert formats == {"JPEG", "PNG"} and orientations == {"landscape", "portrait", "square"}
    assert len(makes) >= 2 and "RGBA" in modes
    assert sum(p.suffix == ".jpg" for p in images) > sum(p.suffix == ".png" for p in images)
    ini = root / "publisher.ini"
    assert lines[-1] == f"Next: publisher --config {ini}"
    assert any(str(ini) in line for line in lines)


def test_sample_ini_loads_on_the_embedded_defaults_with_paths_beside_it(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make(root, "--count", "1")
    config = load_application_config(root / "publisher.ini")
    assert config.storage.backend == "local" and config.ai.backend == "offline"
    assert config.publishing.backend == "outbox"
    assert Path(config.local.image_folder) == root / "images" and config.local.archive == "archive"
    assert Path(config.publishing.outbox_folder) == root / "outbox"
    assert Path(config.state.ledger_path) == root / "state" / "ledger.sqlite"
    assert config.enabled_platforms() == ["telegram", "instagram", "email"]
    assert config.content.hashtag_string == "#photography #sample" and config.content.archive is True
    assert config.captionfile.extended_metadata_enabled is True
    assert config.captionfile.artist_alias == "Sample Artist"
    assert config.email.sender and config.email.recipient


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    make(tmp_path / "a", "--count", "3", "--seed", "9")
    make(tmp_path / "b", "--count", "3", "--seed", "9")
    make(tmp_path / "c", "--count", "3", "--seed", "10")
    a, b, c = (digests(tmp_path / x / "images") for x in "abc")
    assert a == b
    assert set(a.values()).isdisjoint(c.values())
    assert (tmp_path / "a" / "publisher.ini").read_bytes() == (tmp_path / "b" / "publisher.ini").read_bytes()


def test_a_bigger_count_keeps_the_first_images_identical(tmp_path: Path) -> None:
    make(tmp_path / "small", "--count", "2", "--seed", "2")
    make(tmp_path / "big", "--count", "4", "--seed", "2")
    small, big = digests(tmp_path / "small" / "images"), digests(tmp_path / "big" / "images")
    assert all(big[name] == digest for name, digest in small.items())


def test_rerunning_keeps_existing_files_unless_forced(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make(root, "--count", "4", "--seed", "1")
    first = sorted((root / "images").iterdir())[0]
    first.write_bytes(b"the operator's own photo")
    (root / "publisher.ini").write_text("[Content]\ntelegram = false\n", encoding="utf-8")
    lines = make(root, "--count", "4", "--seed", "1")
    assert first.read_bytes() == b"the operator's own photo"
    assert (root / "publisher.ini").read_text(encoding="utf-8") == "[Content]\ntelegram = false\n"
    assert "0 images written, 4 kept" in lines[0] and "kept the existing file" in lines[1]
    make(root, "--count", "4", "--seed", "1", "--force")
    assert first.read_bytes() != b"the operator's own photo"
    assert "[Storage]" in (root / "publisher.ini").read_text(encoding="utf-8")


@pytest.mark.parametrize("count", ["0", "-3", "many"])
def test_a_bad_count_is_a_usage_error(tmp_path: Path, count: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        sample_main([str(tmp_path), "--count", count])
    assert exc.value.code == 2
    assert not (tmp_path / "images").exists()
    event = verdict_event(capsys.readouterr().err)  # one event, not argparse's two plain lines
    assert (event["message"], event["exit_code"]) == ("cli_usage_error", 2)
    assert event["verdict"].startswith("publisher-sample: error: argument --count: ")
    assert event["usage"].startswith("usage: publisher-sample ")


def test_an_unwritable_target_fails_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    assert sample_main([str(blocker), "--count", "1"], out=lambda line: None) == 1
    err = capsys.readouterr().err
    assert verdict(err).startswith("publisher-sample: error:") and len(stderr_events(err)) == 1


# -- the whole CLI on a sample library -------------------------------------------------------------------


def outbox_posts(root: Path, platform: str) -> List[dict]:
    folder = root / "outbox" / platform
    if not folder.exists():
        return []
    return [json.loads((d / "post.json").read_text(encoding="utf-8")) for d in sorted(folder.iterdir())]


@pytest.mark.usefixtures("clean_env")
def test_publisher_runs_end_to_end_on_a_sample_library(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "lib"
    make(root, "--count", "5", "--seed", "3")
    ini = str(root / "publisher.ini")
    images = root / "images"
    names = {p.name for p in images.iterdir() if p.is_file()}

    assert publisher_main(["--config", ini, "--preview"]) == 0
    report = capsys.readouterr().out
    assert "Preview only" in report and "instagram:" in report and "Email plan" in report
    assert {p.name for p in images.iterdir() if p.is_file()} == names and not (root / "outbox").exists()

    published = []
    for _ in range(2):
        assert publisher_main(["--config", ini]) == 0
        out, err = capsys.readouterr()
        done = next(e for e in json_events(err) if e["message"] == "workflow_complete")
        assert done["archived"] is True and f"Published {done['image_name']}" in out
        published.append(done["image_name"])
        events = {e["message"] for e in json_events(err)}
        assert {"vision_analysis_complete", "caption_generated", "sidecar_upload_complete"} <= events
    assert len(set(published)) == 2 and set(published) <= names

    for name in published:
        sidecar = images / "archive" / (Path(name).stem + ".txt")
        sd_caption, meta = parse_sidecar_text(sidecar.read_text(encoding="utf-8"))
        assert sd_caption and sd_caption.endswith("photograph") and meta is not None
        assert meta["image_file"] == name and meta["artist_alias"] == "Sample Artist" and meta["tags"]
        assert (images / "archive" / name).is_file() and not (images / name).exists()
    for platform in ("telegram", "instagram", "email"):
        posts = outbox_posts(root, platform)
        assert sorted(p["image_name"] for p in posts) == sorted(published)
        assert all("#sample" in p["caption"] or platform == "email" for p in posts)
    assert all("#" not in p["caption"] for p in outbox_posts(root, "email"))


@pytest.mark.usefixtures("clean_env")
def test_the_readme_commands_work_as_console_scripts(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    made = subprocess.run(
        [str(BIN / "publisher-sample"), str(root), "--count", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    command = made.stdout.strip().splitlines()[-1].removeprefix("Next: ").split()
    assert command[0] == "publisher"
    ran = subprocess.run([str(BIN / command[0]), *command[1:]], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("Published sample_")
    archived = sorted(p.suffix for p in (root / "images" / "archive").glob("sample_*"))
    assert len(archived) == 2 and ".txt" in archived  # one image and its sidecar
