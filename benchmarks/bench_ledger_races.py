"""Issue 11's reproductions, replayed against a real `uvicorn --workers 2` and real CLI processes; prints counts.

Each line of the issue names a count measured the way an operator would; this script measures the same counts:

1. 10 parallel admin `POST /api/images/<same file>/publish` → how many 200s, and posts per platform.
2. A CLI run and a web publish of the same image at the same moment, TRIES times → tries that posted twice.
3. Wrong admin passwords with a rotating `X-Forwarded-For`, after the budget is spent → extra attempts granted.

Run: `.venv/bin/python benchmarks/bench_ledger_races.py [--tries 10]` (about a minute). Counts, not timings: the
floor is the issue's own figure for the previous version (2 winners, 5 of 10, 15 of 15).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import httpx
from PIL import Image

BIN = Path(sys.executable).parent
PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def posts_per_platform(outbox: Path, image_name: str) -> Dict[str, int]:
    counts: Counter = Counter()
    for record in outbox.glob("*/*/post.json"):
        if json.loads(record.read_text(encoding="utf-8"))["image_name"] == image_name:
            counts[record.parent.parent.name] += 1
    return dict(counts)


def add_image(images: Path, index: int) -> str:
    name = f"race_{index:03d}.jpg"
    Image.new("RGB", (64, 48), (index * 37 % 256, index * 91 % 256, 50)).save(images / name, "JPEG")
    return name


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=10)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="ledger_races_"))
    subprocess.run([str(BIN / "publisher-sample"), str(root), "--count", "2"], check=True, capture_output=True)
    ini, images, outbox = root / "publisher.ini", root / "images", root / "outbox"
    # Posted images stay in the library, so a late contender meets the ledger, not a missing file.
    ini.write_text(ini.read_text(encoding="utf-8").replace("archive = true", "archive = false"), encoding="utf-8")
    port = free_port()
    env = dict(os.environ, CONFIG_PATH=str(ini), web_admin_pw=PASSWORD)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "publisher_v2.web.app:app", "--port", str(port), "--workers", "2",
         "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        admin = httpx.Client(base_url=base, timeout=120)
        assert admin.post("/api/admin/login", json={"password": PASSWORD}).status_code == 200

        def publish(name: str) -> int:
            with httpx.Client(base_url=base, timeout=120, cookies=admin.cookies) as own:
                return own.post(f"/api/images/{name}/publish").status_code

        # 1. ten parallel publishes of one file
        target = sorted(p.name for p in images.glob("*.jpg"))[0]
        with ThreadPoolExecutor(10) as pool:
            statuses = Counter(pool.map(publish, [target] * 10))
        print(f"1. 10 parallel web publishes of one image: statuses {dict(statuses)},"
              f" posts per platform {posts_per_platform(outbox, target)}")  # fmt: skip

        # 2. a CLI run and a web publish of the same (only unposted) image at the same moment
        for leftover in sorted(p.name for p in images.glob("*.jpg")):
            subprocess.run([str(BIN / "publisher"), "--config", str(ini), "--select", leftover], capture_output=True)
        doubled, web_answers = 0, Counter()
        for index in range(args.tries):
            name = add_image(images, index)
            cli = subprocess.Popen([str(BIN / "publisher"), "--config", str(ini)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(0.2 + 0.8 * index / max(1, args.tries - 1))  # spread over the CLI's start-up time
            web_answers[publish(name)] += 1
            cli.wait(120)
            doubled += any(n > 1 for n in posts_per_platform(outbox, name).values())
        print(
            f"2. CLI run + web publish of the same image at once: posted twice in {doubled} of {args.tries} tries"
            f" (web answers {dict(web_answers)}: 200 = the web won the claim, 409 = the CLI held or had posted it)"
        )

        # 3. rotating X-Forwarded-For after the budget of 10 wrong passwords
        granted = 0
        for attempt in range(25):
            with httpx.Client(base_url=base, timeout=30) as fresh:
                status = fresh.post(
                    "/api/admin/login",
                    json={"password": f"guess-{attempt}"},
                    headers={"X-Forwarded-For": f"203.0.113.{attempt + 1}"},
                ).status_code
            granted += attempt >= 10 and status != 429
        print(f"3. wrong passwords with a rotating X-Forwarded-For: {granted} of 15 extra attempts granted")
    finally:
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
