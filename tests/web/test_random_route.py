"""`GET /api/images/random` through a real uvicorn offers only what the ledger does not hold, as the CLI picks.

The README's web block re-runs `publisher-sample`, which re-creates images that were posted and archived, with
the same bytes. The page must not offer them: Analyze would write a sidecar and Publish would answer 409.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Callable

import httpx
import pytest

from publisher_v2.ledger import PostLedger
from publisher_v2.utils.images import dropbox_content_hash
from tests.conftest import BIN
from tests.web.conftest import ADMIN_PASSWORD, Server, make_library

pytestmark = pytest.mark.slow


def cli(ini: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "publisher"), "--config", str(ini), *args], capture_output=True, text=True, timeout=120
    )


def test_random_never_offers_an_image_the_ledger_holds_as_posted(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    lib = make_library(tmp_path / "lib", ["alpha.jpg", "bravo.jpg", "charlie.png", "delta.jpg"])
    done = cli(lib.ini, "--select", "alpha.jpg")  # posted by the CLI and archived
    assert done.returncode == 0, done.stderr
    assert (lib.archive / "alpha.jpg").is_file() and not (lib.images / "alpha.jpg").exists()
    shutil.copy(lib.archive / "alpha.jpg", lib.images / "alpha_again.jpg")  # what a re-run of the sample does
    with open(lib.images / "bravo.jpg", "rb") as stream:  # and one recorded as posted by another route
        bravo = dropbox_content_hash(stream)
    with PostLedger(lib.ledger) as ledger:
        ledger.record_post(bravo, "bravo.jpg", {"telegram": {"success": True, "post_id": "t-1"}})

    server = start_server({"CONFIG_PATH": str(lib.ini), "web_admin_pw": ADMIN_PASSWORD})
    offered = Counter(
        httpx.get(server.base_url + "/api/images/random", timeout=10).json()["filename"] for _ in range(40)
    )
    assert set(offered) == {"charlie.png", "delta.jpg"}, offered  # both fresh ones come up; no posted one

    for name in ("charlie.png", "delta.jpg"):  # once they are posted too, nothing is left to offer
        assert cli(lib.ini, "--select", name).returncode == 0
    empty = httpx.get(server.base_url + "/api/images/random", timeout=10)
    assert empty.status_code == 404 and empty.json()["code"] == "no_images"
    assert sorted(lib.names()) == ["alpha_again.jpg", "bravo.jpg"]  # still in the folder, just not offered
