"""Never twice, never lost: uvicorn with two workers and CLI processes on one library, with kill -9s.

Everything is real: `publisher-sample` builds the library, `uvicorn --workers 2` serves it, `publisher` CLI
processes run beside it, some of them SIGKILLed at a random moment or right after a given stage (by the test
helper `tests/core/stage_killer.py`, which patches the stage in its own process only), and the interrupted
posts are completed through the operator command `publisher ledger`. The verdict is counted from the outbox
folders, the library folders and the ledger file.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Tuple

import httpx
import pytest
from PIL import Image

from publisher_v2.utils.images import dropbox_content_hash
from publisher_v2.web.auth import COOKIE_NAME
from tests.cli_output import verdict_lines
from tests.conftest import BIN, REPO_ROOT
from tests.pg_server import ledger_query
from tests.web.conftest import Server, stop_uvicorn

pytestmark = pytest.mark.slow

PASSWORD = "multi-worker-admin-password"
PLATFORMS = ("telegram", "instagram", "email")
STAGES = ("selection", "sidecar", "first_post", "recording", "archive")
KILLER = REPO_ROOT / "tests" / "core" / "stage_killer.py"
ROUNDS = int(os.environ.get("LEDGER_TRUTH_ROUNDS", "10"))  # each stage killed twice; 20+ for a deeper soak
#: The same test on PostgreSQL: fewer rounds (each stage is still killed once), to keep the suite's time modest.
PG_ROUNDS = int(os.environ.get("LEDGER_TRUTH_PG_ROUNDS", "5"))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# -- the library -----------------------------------------------------------------------------------------------


def build_library(root: Path, extra: int) -> Path:
    """`publisher-sample` (the README's command) plus `extra` small images, so 20 rounds do not run dry."""
    done = subprocess.run(
        [str(BIN / "publisher-sample"), str(root), "--count", "6", "--seed", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for index in range(extra):
        rng = random.Random(index)
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        image = Image.new("RGB", (80 + index % 7, 60), color)
        image.putpixel((index % 80, 0), (index % 256, 255 - index % 256, 7))  # every file has its own bytes
        image.save(root / "images" / f"extra_{index:03d}.jpg", "JPEG")
    return root / "publisher.ini"


def use_store(ini: Path, request: pytest.FixtureRequest) -> Tuple[object, int]:
    """(ledger location, rounds) for the test's store: the library's SQLite file, or a fresh PostgreSQL database
    set as `[State] url` in the INI, so the workers, the CLI runs and the operator command all share it."""
    if request.param == "sqlite":
        return ini.parent / "state" / "ledger.sqlite", ROUNDS
    server = request.getfixturevalue("pg_server")
    url = server.url(server.new_database())
    text = ini.read_text(encoding="utf-8")
    assert "[State]\n" in text
    ini.write_text(text.replace("[State]\n", f"[State]\nurl = {url}\n"), encoding="utf-8")
    return url, PG_ROUNDS


def image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def outbox_posts(outbox: Path) -> Dict[Tuple[str, str], List[str]]:
    """(platform, image name) → post ids, read from the finished post folders."""
    posts: Dict[Tuple[str, str], List[str]] = {}
    for platform in PLATFORMS:
        folder = outbox / platform
        if not folder.is_dir():
            continue
        for post in folder.iterdir():
            record = json.loads((post / "post.json").read_text(encoding="utf-8"))
            posts.setdefault((platform, record["image_name"]), []).append(post.name)
    return posts


# -- processes -------------------------------------------------------------------------------------------------


def cli(ini: Path, *args: str) -> List[str]:
    return [str(BIN / "publisher"), "--config", str(ini), *args]


def private_env(ini: Path) -> Dict[str, str]:
    """The environment with a temp dir of the library's own: killed runs leave their copies there, not in /tmp."""
    tmp = ini.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    return dict(os.environ, TMPDIR=str(tmp))


def run_cli(ini: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli(ini, *args), capture_output=True, text=True, timeout=120, cwd=str(REPO_ROOT), env=private_env(ini)
    )


def spawn(command: List[str], ini: Path) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=private_env(ini))


def events(stderr: str) -> List[dict]:
    """JSON log events; a run killed mid-line leaves a partial last line, which is skipped."""
    found = []
    for line in stderr.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return [e for e in found if isinstance(e, dict)]


@pytest.fixture
def servers(start_server: Callable[..., Server]) -> Callable[..., Server]:
    """Start uvicorn with `workers` worker processes (stopped at the end of the test)."""

    def start(env: Mapping[str, str], workers: int = 1) -> Server:
        return start_server(env, "--workers", str(workers), timeout=60)

    return start


@pytest.fixture
def store(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    """The ledger's store of a parametrised test (see `use_store`)."""
    return request


def admin_client(server: Server) -> httpx.Client:
    client = httpx.Client(base_url=server.base_url, timeout=60)
    assert client.post("/api/admin/login", json={"password": PASSWORD}).status_code == 200
    return client


# -- the operator ----------------------------------------------------------------------------------------------


def resolve_interrupted(ini: Path, outbox: Path) -> Counter:
    """Complete every interrupted post through `publisher ledger`, deciding unknown platforms as an operator
    would: look at the platform (here, the outbox) and mark it posted, or retry it. Returns what was done."""
    done: Counter = Counter()
    listing = run_cli(ini, "ledger", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    for entry in json.loads(listing.stdout)["unfinished"]:
        assert entry["owner_alive"] is False, entry  # every run of the round has ended
        image = entry["content_hash"][:16]
        if entry["status"] == "claimed":  # no platform was contacted: free it, or post it now (both are valid)
            action = "release" if int(entry["content_hash"][0], 16) % 2 else "retry"
            outcome = run_cli(ini, "ledger", action, image)
            assert outcome.returncode == 0, outcome.stderr
            done[f"claimed_{action}"] += 1
            continue
        posts = outbox_posts(outbox)
        unknown = [p for p, o in entry["platforms"].items() if o["state"] == "sending"]
        for platform in unknown:
            seen = posts.get((platform, entry["image_name"]))
            if seen:
                outcome = run_cli(ini, "ledger", "mark-posted", image, "--platform", platform, "--post-id", seen[0])
                assert outcome.returncode == 0, outcome.stderr
                done["unknown_marked_posted"] += 1
        retry_args = []
        for platform in unknown:
            if not posts.get((platform, entry["image_name"])):
                retry_args += ["--platform", platform]
                done["unknown_retried"] += 1
        current = json.loads(run_cli(ini, "ledger", "list", "--json").stdout)["unfinished"]
        if any(e["content_hash"] == entry["content_hash"] for e in current):
            outcome = run_cli(ini, "ledger", "retry", image, *retry_args)
            assert outcome.returncode == 0, outcome.stdout + outcome.stderr
            done["retried"] += 1
    after = run_cli(ini, "ledger", "list", "--json")
    assert json.loads(after.stdout)["unfinished"] == [], after.stdout
    return done


# -- the test --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
def test_workers_and_cli_runs_with_kills_post_each_image_once_and_lose_none(
    tmp_path: Path, servers: Callable[..., Server], store: pytest.FixtureRequest
) -> None:
    root = tmp_path / "library"
    ini = build_library(root, extra=5 * ROUNDS)  # up to five posts a round
    location, rounds = use_store(ini, store)
    images, archive, outbox = root / "images", root / "images" / "archive", root / "outbox"
    originals = {dropbox_content_hash(p): p.name for p in image_files(images)}
    server = servers({"CONFIG_PATH": str(ini), "web_admin_pw": PASSWORD, **private_env(ini)}, workers=2)
    client = admin_client(server)
    rng = random.Random(11)
    tally: Counter = Counter()
    started = time.monotonic()

    def publish(name: str) -> int:
        with httpx.Client(base_url=server.base_url, timeout=120, cookies=client.cookies) as own:
            response = own.post(f"/api/images/{name}/publish")
        assert response.status_code in (200, 404, 409), response.text
        if response.status_code == 409:
            assert response.json()["code"] in ("publish_in_progress", "already_posted")
        return response.status_code

    for round_no in range(rounds):
        names = [p.name for p in image_files(images)]
        same, other = rng.sample(names, 2)
        stage = STAGES[round_no % len(STAGES)]
        runs = {
            "stage_" + stage: spawn([sys.executable, str(KILLER), stage, "--config", str(ini)], ini),
            "plain": spawn(cli(ini), ini),
            "random_kill": spawn(cli(ini), ini),
        }
        victim = runs["random_kill"]
        timer = threading.Timer(
            rng.uniform(0.3, 2.0), lambda v=victim: v.poll() is None and v.send_signal(signal.SIGKILL)
        )
        timer.start()
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(publish, [same, same, same, other]))
        timer.join()
        for label, process in runs.items():
            out, err = process.communicate(timeout=120)
            assert process.returncode in (0, 1, -signal.SIGKILL), (label, out, err)
            if process.returncode == 1:
                assert len(verdict_lines(err)) == 1, err  # one line, no traceback
            tally[f"cli_{'killed' if process.returncode < 0 else process.returncode}"] += 1
            tally["next_run_completed"] += sum(e.get("message") == "ledger_completing_interrupted" for e in events(err))
        assert statuses[:3].count(200) <= 1, statuses  # parallel publishes of one image: one winner at most
        tally.update(f"web_{s}" for s in statuses)
        tally.update(resolve_interrupted(ini, outbox))

    next_run = run_cli(ini)  # the next ordinary run cleans staging folders left by killed runs
    assert next_run.returncode in (0, 1), next_run.stderr
    stop_uvicorn(server)

    posts = outbox_posts(outbox)
    posted_images = {name for _, name in posts}
    per_pair = Counter(len(posts.get((platform, name), [])) for name in posted_images for platform in PLATFORMS)
    double_posts = sum(n - 1 for n in per_pair.elements() if n > 1)
    missing_platform_posts = per_pair.get(0, 0)
    remaining = {dropbox_content_hash(p) for p in image_files(images)}
    archived = {dropbox_content_hash(p) for p in image_files(archive)} if archive.is_dir() else set()
    lost = [name for digest, name in originals.items() if digest not in remaining | archived]
    staging = sorted(p.name for p in (outbox / ".incoming").iterdir()) if (outbox / ".incoming").is_dir() else []
    staging += sorted(p.name for p in (root / "tmp").glob("publisher_v2_*"))  # the runs' image copies
    ledger_rows = dict(ledger_query(location, "SELECT image_name, status FROM posted_images"))
    archive_states = Counter(s for (s,) in ledger_query(location, "SELECT archive_state FROM posted_images"))
    unrecorded = sorted(name for name in posted_images if ledger_rows.get(name) != "posted")
    still_in_library = sorted(name for name in posted_images if (images / name).exists())

    print(
        f"\nledger truth ({store.param}): {rounds} rounds in {time.monotonic() - started:.0f}s;"
        f" images {len(originals)},"
        f" posted {len(posted_images)}, posts per (platform, image) {dict(sorted(per_pair.items()))},"
        f" double posts {double_posts}, missing platform posts {missing_platform_posts}, lost {len(lost)},"
        f" leftover staging {len(staging)}, unrecorded {len(unrecorded)}, posted but not archived"
        f" {len(still_in_library)}, archive states {dict(archive_states)}; {dict(sorted(tally.items()))}"
    )
    assert double_posts == 0 and set(per_pair) == {1}, per_pair
    assert lost == [] and staging == [] and unrecorded == [] and still_in_library == []
    assert tally["cli_killed"] >= rounds  # every round killed at least its staged run (when it had an image)
    assert tally["web_200"] > 0 and tally["web_409"] > 0


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
def test_logout_is_refused_by_every_worker_and_rotating_forwarded_for_buys_no_guesses(
    tmp_path: Path, servers: Callable[..., Server], store: pytest.FixtureRequest
) -> None:
    root = tmp_path / "library"
    ini = build_library(root, extra=0)
    use_store(ini, store)
    env = {"CONFIG_PATH": str(ini), "web_admin_pw": PASSWORD}
    front, other = servers(env, workers=2), servers(env, workers=1)  # two servers, one ledger file

    session = admin_client(front)
    cookie = session.cookies.get(COOKIE_NAME)
    assert cookie
    with httpx.Client(base_url=other.base_url, timeout=30, cookies={COOKIE_NAME: cookie}) as elsewhere:
        assert elsewhere.get("/api/admin/status").json()["admin"] is True
        assert session.post("/api/admin/logout").json()["admin"] is False
        assert elsewhere.get("/api/admin/status").json()["admin"] is False
        refused = elsewhere.post("/api/images/nosuch.jpg/analyze")
        assert (refused.status_code, refused.json()["code"]) == (403, "admin_required")
    for _ in range(6):  # fresh connections, so both workers of the front server answer some of them
        with httpx.Client(base_url=front.base_url, timeout=30, cookies={COOKIE_NAME: cookie}) as reused:
            assert reused.get("/api/admin/status").json()["admin"] is False

    # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: every attempt claims another client address.
    statuses = []
    for attempt in range(12):
        with httpx.Client(base_url=front.base_url, timeout=30) as fresh:
            statuses.append(
                fresh.post(
                    "/api/admin/login",
                    json={"password": f"guess-{attempt}"},
                    headers={"X-Forwarded-For": f"203.0.113.{attempt + 1}"},
                ).status_code
            )
    assert statuses == [401] * 10 + [429] * 2, statuses
    with httpx.Client(base_url=other.base_url, timeout=30) as right:  # another server, the right password
        locked = right.post(
            "/api/admin/login", json={"password": PASSWORD}, headers={"X-Forwarded-For": "198.51.100.7"}
        )
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
