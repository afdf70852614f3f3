"""The page in a real headless browser: hostile filenames and captions render as text, never as markup.

Needs Debian's `chromium` (optional: `apt-get install -y chromium`); skipped when it is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from tests.web.conftest import Server, make_library

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed"),
]

HOSTILE_NAME = "<img src=x onerror=alert(1)>.jpg"
HOSTILE_CAPTION = '<script>alert("caption")</script><b>bold</b>'


def rendered_dom(url: str, width: int = 390) -> str:
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--window-size={width},900",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_hostile_filename_and_caption_are_shown_as_text(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    library = make_library(tmp_path / "hostile", names=[HOSTILE_NAME])
    sidecar = library.images / (Path(HOSTILE_NAME).stem + ".txt")
    sidecar.write_text(f"{HOSTILE_CAPTION}\n\n# ---\n# image_file: x\n", encoding="utf-8")
    server = start_server({"CONFIG_PATH": str(library.ini), "web_admin_pw": "pw-browser"})

    dom = rendered_dom(server.base_url + "/")

    assert '<p id="filename" class="filename">&lt;img src=x onerror=alert(1)&gt;.jpg</p>' in dom
    assert '&lt;script&gt;alert("caption")&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;' in dom
    assert "<b>bold</b>" not in dom and 'src="x"' not in dom
    assert dom.count("<img") == 1  # only the page's own image element exists
    assert "Showing &lt;img src=x" in dom  # the activity panel, as text too
