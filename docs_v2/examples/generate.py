"""Regenerate `docs_v2/examples.md` from a REAL run: the CLI and the web app, with PUBLISHER_AUTOINSTRUMENT=1.

Why generated: example log lines written by hand drift from what the code emits. This script runs the real
entry points in subprocesses (the `.pth` start-up hook is what turns telemetry on, so it must be a fresh
interpreter), captures their stderr JSON lines, replaces the values that change from run to run with
placeholders, and writes the Markdown. `tests/docs/test_examples.py` runs `render()` again and fails when the
committed file differs, so the examples cannot drift.

    .venv/bin/python docs_v2/examples/generate.py          # rewrite docs_v2/examples.md
    .venv/bin/python docs_v2/examples/generate.py --check  # exit 1 (and show a diff) when it is stale

What is normalised (everything else is shown exactly as logged): `timestamp` → `<timestamp>`, every integer
`*_ms` value → `<ms>`, every UUID → `<uuid-N>` (numbered by first appearance), `content_hash` → `<sha256>`,
a sidecar `size` → `<bytes>`,
outbox post ids → `<post-id>`, the temporary library folder → `<library>`, the repository → `<repo>`, the wrapt
version and implementation. Events that parallel publishers emit in a nondeterministic order are grouped per
platform (in the order the platforms are configured), each platform's own events keeping their order.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUTPUT = REPO / "docs_v2" / "examples.md"
SEED, COUNT = "7", "4"
PASSWORD = "change-me"
PLATFORMS = ("telegram", "instagram", "email")  # the sample INI's order

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_POST_ID = re.compile(r"\d{8}T\d{6,}Z_[A-Za-z0-9_.-]+?_[0-9a-f]{8}")
MARK = "##request "

# The web driver runs in its own interpreter (PUBLISHER_AUTOINSTRUMENT=1 acts at start-up). It imports the
# app exactly as uvicorn does (`publisher_v2.web.app:app`) and marks the end of each request on stderr.
WEB_DRIVER = r"""
import json, sys
from fastapi.testclient import TestClient
from publisher_v2.web.app import app

name, password, mark = sys.argv[1], sys.argv[2], sys.argv[3]
requests = [
    ("GET", "/api/images/random", {"X-Request-ID": "demo-random-1"}, None),
    ("POST", "/api/admin/login", {}, {"password": password}),
    ("POST", "/api/images/" + name + "/analyze", {"X-Request-ID": "demo-analyze-1"}, None),
    ("POST", "/api/images/" + name + "/publish", {"X-Request-ID": "demo-publish-1"}, None),
    ("POST", "/api/images/missing.jpg/analyze", {}, None),
]
with TestClient(app) as client:
    for method, url, headers, body in requests:
        response = client.request(method, url, headers=headers, json=body)
        info = [method, url, dict(headers), response.status_code, response.headers.get("x-correlation-id")]
        sys.stderr.write(mark + json.dumps(info) + "\n")
        sys.stderr.flush()
"""


# ---------------------------------------------------------------------------------------------- running


def _env(**extra: str) -> Dict[str, str]:
    """A clean environment: none of the caller's app or telemetry settings leak into the example."""
    drop = ("PUBLISHER_", "CONFIG_PATH", "ENV_PATH", "WEB_", "web_admin_pw")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env["PUBLISHER_AUTOINSTRUMENT"] = "1"
    env["PUBLISHER_TELEMETRY_MANIFEST"] = str(REPO / "telemetry.yaml")
    env.update(extra)
    return env


def _run(args: Sequence[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _library(root: Path) -> Tuple[Path, List[str]]:
    """A fresh sample library (fixed seed) and its image names, sorted."""
    _run(
        [
            sys.executable,
            "-c",
            "import sys; from publisher_v2.cli.sample import main; sys.exit(main(sys.argv[1:]))",
            "--count",
            COUNT,
            "--seed",
            SEED,
            str(root),
        ],
        cwd=root.parent,
        PUBLISHER_AUTOINSTRUMENT="0",
    )
    names = sorted(p.name for p in (root / "images").iterdir() if p.is_file())
    return root, names


def _events(stderr: str) -> List[Any]:
    """JSON events, and request markers as ("request", info) tuples, in order."""
    out: List[Any] = []
    for line in stderr.splitlines():
        if line.startswith(MARK):
            out.append(("request", json.loads(line[len(MARK) :])))
        elif line.startswith("{"):
            out.append(json.loads(line))
        elif line.strip():
            raise RuntimeError(f"unexpected stderr line: {line}")
    return out


# ---------------------------------------------------------------------------------------------- normalising


class Normaliser:
    """Replaces run-specific values with placeholders, consistently across one document."""

    def __init__(self, library_roots: Sequence[Path]):
        self.roots = [str(r) for r in library_roots]
        self.uuids: Dict[str, str] = {}

    def text(self, value: str) -> str:
        for root in self.roots:
            value = value.replace(root, "<library>")
        value = value.replace(str(REPO), "<repo>")
        value = _POST_ID.sub("<post-id>", value)
        return _UUID.sub(self._uuid, value)

    def _uuid(self, match: re.Match) -> str:
        found = match.group(0)
        if found not in self.uuids:
            self.uuids[found] = f"<uuid-{len(self.uuids) + 1}>"
        return self.uuids[found]

    def value(self, key: str, value: Any) -> Any:
        if key == "timestamp":
            return "<timestamp>"
        if key.endswith("_ms") and isinstance(value, int) and not isinstance(value, bool):
            return "<ms>"
        if key == "content_hash":
            return "<sha256>"
        if key == "size":  # the sidecar's size: it holds the file's inode and mtime, whose digits vary
            return "<bytes>"
        if key == "wrapt_version":
            return "<wrapt version>"
        if key == "wrapt_impl":
            return "<c or python>"
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value("", v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(k, v) for k, v in value.items()}
        return value

    def event(self, event: Dict[str, Any]) -> Dict[str, Any]:
        out = {k: self.value(k, v) for k, v in event.items()}
        if out.get("message") == "web_random_image" and "filename" in out:
            out["filename"] = "<random image>"  # the route picks at random
        return out


def _group_platforms(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Each contiguous block of per-platform events, reordered by platform (stable within a platform)."""
    out: List[Dict[str, Any]] = []
    block: List[Dict[str, Any]] = []

    def flush() -> None:
        def rank(e: Dict[str, Any]) -> int:
            p = e.get("platform")
            return PLATFORMS.index(p) if p in PLATFORMS else len(PLATFORMS)

        out.extend(sorted(block, key=rank))
        block.clear()

    for event in events:
        if "platform" in event and isinstance(event.get("platform"), str):
            block.append(event)
        else:
            flush()
            out.append(event)
    flush()
    return out


def _lines(events: List[Dict[str, Any]], norm: Normaliser) -> str:
    # compact, as log_json writes them
    return "\n".join(
        json.dumps(norm.event(e), ensure_ascii=False, separators=(",", ":")) for e in _group_platforms(events)
    )


# ---------------------------------------------------------------------------------------------- the document


def _fence(body: str, lang: str = "json") -> str:
    return f"```{lang}\n{body}\n```"


def render(workdir: Optional[Path] = None) -> str:
    """Run everything in a fresh temporary folder and return the Markdown of `docs_v2/examples.md`."""
    with tempfile.TemporaryDirectory(prefix="ai-examples-") as tmp:
        base = Path(workdir or tmp)
        cli_lib, cli_names = _library(base / "cli_library")
        web_lib, web_names = _library(base / "web_library")
        norm = Normaliser([cli_lib, web_lib])

        chosen = cli_names[0]
        cli = _run([sys.executable, "-m", "publisher_v2", "--config", "publisher.ini", "--select", chosen], cwd=cli_lib)
        cli_events = _events(cli.stderr)

        web_name = web_names[0]
        web = _run(
            [sys.executable, "-c", WEB_DRIVER, web_name, PASSWORD, MARK],
            cwd=web_lib,
            CONFIG_PATH="publisher.ini",
            web_admin_pw=PASSWORD,
        )
        requests: List[Tuple[List[Any], List[Dict[str, Any]]]] = []
        pending: List[Dict[str, Any]] = []
        startup: List[Dict[str, Any]] = []
        for item in _events(web.stderr):
            if isinstance(item, tuple):
                requests.append((item[1], pending))
                pending = []
            elif not requests and item.get("message") in ("web_server_start",):
                startup.append(item)
            else:
                pending.append(item)

        return _document(norm, chosen, cli.stdout.strip(), cli_events, web_name, startup, requests)


def _request_line(info: List[Any], norm: Normaliser) -> str:
    method, url, headers, status, cid = info
    sent = f" with `X-Request-ID: {headers['X-Request-ID']}`" if "X-Request-ID" in headers else ""
    return f"`{method} {norm.text(url)}`{sent} → `{status}`, `X-Correlation-ID: {norm.text(cid or '')}`"


def _document(
    norm: Normaliser,
    chosen: str,
    cli_stdout: str,
    cli_events: List[Dict[str, Any]],
    web_name: str,
    startup: List[Dict[str, Any]],
    requests: List[Tuple[List[Any], List[Dict[str, Any]]]],
) -> str:
    titles = [
        (
            "GET /api/images/random",
            "A mapped route: one `web_random_image` event with the request's own timing "
            "and the stages run inside it. The id sent in `X-Request-ID` is bound and answered.",
        ),
        (
            "POST /api/admin/login",
            "Not a mapped route: no timing event, but the middleware still binds a fresh "
            "correlation id (no `X-Request-ID` was sent), the app's own event carries it, and it is answered.",
        ),
        (
            "POST /api/images/{filename}/analyze",
            "Analysis and captioning: the AI and sidecar stages measured "
            "inside the request are fields of `web_analyze_complete`.",
        ),
        (
            "POST /api/images/{filename}/publish",
            "Publishing runs the whole workflow: its events and its "
            "`workflow_timing` summary carry the request's correlation id, and `web_publish_complete` carries the "
            "workflow's stage fields plus `any_success` and `archived` from the response body.",
        ),
        (
            "An error: POST /api/images/missing.jpg/analyze",
            "Status 404: the route's `_error` event, with the status code, still timed and still correlated.",
        ),
    ]
    out: List[str] = [
        "# Example telemetry logs",
        "",
        "<!-- Generated by docs_v2/examples/generate.py from a real run; do not edit by hand. "
        "tests/docs/test_examples.py fails when this file is stale. -->",
        "",
        "Every line below was emitted by a real run with `PUBLISHER_AUTOINSTRUMENT=1` and the shipped "
        "`telemetry.yaml`, on a fresh `publisher-sample` library (local storage, offline AI, outbox publishers). "
        "Events are JSON objects, one per line on stderr. Values that change from run to run are replaced: "
        "`<timestamp>`, `<ms>` (an integer number of milliseconds), `<uuid-N>` (the same UUID gets the same N), "
        "`<sha256>`, `<bytes>` (a sidecar size), `<post-id>`, `<library>` (the library folder), `<repo>`, "
        "`<random image>` (the file the random route picked). "
        "What the fields mean is in [the operator guide](operator-guide.md).",
        "",
        "Regenerate with `.venv/bin/python docs_v2/examples/generate.py`.",
        "",
        "## CLI run",
        "",
        f"`PUBLISHER_AUTOINSTRUMENT=1 python -m publisher_v2 --config publisher.ini --select {chosen}` "
        "(the same with the `publisher` script). The first line is the start-up report of the library; every "
        "event of the run carries its `correlation_id`; `workflow_timing` is the summary.",
        "",
        _fence(_lines(cli_events, norm)),
        "",
        "On stdout:",
        "",
        _fence(norm.text(cli_stdout), "text"),
        "",
        "## Web app",
        "",
        "`PUBLISHER_AUTOINSTRUMENT=1 CONFIG_PATH=publisher.ini uvicorn publisher_v2.web.app:app` (here driven "
        f"in-process by Starlette's TestClient, which imports the app the same way). Image: `{web_name}`. "
        "At start-up:",
        "",
        _fence(_lines(startup, norm)),
        "",
        "The library's start-up report (`autoinstrument_installed`) is sent when the first request arrives, "
        "so it is the first line of the first request below.",
    ]
    for (info, events), (title, text) in zip(requests, titles):
        out += ["", f"### {title}", "", text, "", _request_line(info, norm), "", _fence(_lines(events, norm))]
    return "\n".join(out) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs_v2/examples.md is stale")
    parser.add_argument("--output", default=str(OUTPUT), help=f"where to write (default {OUTPUT})")
    args = parser.parse_args(argv)
    text = render()
    path = Path(args.output)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            sys.stdout.writelines(
                difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(path), "generated")
            )
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(textwrap.shorten(f"wrote {path}", 200))
    return 0


if __name__ == "__main__":
    sys.exit(main())
