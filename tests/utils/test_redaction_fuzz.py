"""Redaction fuzz: eleven secrets, in four forms each, in every input a user controls; not one byte leaks.

The secrets are set in the environment as a deployment sets them. Each one is also sent URL-encoded, base64'd
and in mixed case, in: INI values, file names, `--select` names, unknown CLI arguments and a peer's error
replies (the `publisher` CLI against a local OpenAI stand-in); and in headers (X-Request-ID, Authorization,
Cookie, others), path parameters, query strings and JSON bodies (a real `uvicorn publisher_v2.web.app:app`
serving a library whose files are named after them). Every combination of telemetry on/off and JSON/console
format runs. Every byte the processes print (stdout and stderr) and every response header is collected and
searched for each secret in each form, and for every 8-character fragment of each secret in any letter case.

A part of a secret is a secret too (issue 21): runs of 12 to 22 characters of each secret (its start, its end,
a middle part), raw, mixed-case, URL-encoded and base64'd after a prefix (every byte alignment), are echoed by
the peer and put in names and arguments; the scan also decodes every base64-looking word of the output at each
alignment and looks for any 12-character run there. The `ledger list` commands (text and JSON) print an
unfinished post whose image is named after the secrets.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple
from urllib.parse import quote

import httpx
import pytest
import yaml

from publisher_v2.ledger import PostLedger
from tests.adapters.peers.httpd import HttpPeer, Reply, Request
from tests.conftest import BIN, REPO_ROOT

pytestmark = pytest.mark.slow

SECRETS: Dict[str, str] = {
    "OPENAI_API_KEY": "sk-proj-Qm7vXc2LpT9zRw4hYk8nBf3s",
    "TELEGRAM_BOT_TOKEN": "7123456789:AAHq8ZkP2mXv9LwT4rYc6NbJ3sDf0GhQeUi",
    "EMAIL_PASSWORD": "Zx9!Kq4&Vm2#Lp7",
    "INSTA_PASSWORD": "EAAJw8Rk3TqZp5Xv1Ly7Nc2Hb9Gm4Fd6Sa",
    "DROPBOX_REFRESH_TOKEN": "Rf4Tq8Wz2Kx6Vb9Nm3Lp7Hj5Gd1Sc0Yu",
    "DROPBOX_APP_KEY": "k7q2w9x4z1v8m3n5",
    "DROPBOX_APP_SECRET": "Ps5Dk9Mw2Qz7Xr4B",
    "web_admin_pw": "Adm1n!Pw-Qv8Rz3Tk",
    "WEB_AUTH_TOKEN": "ApiTok-9Zx2Qw7Vm4Lr8Kp",
    "WEB_SESSION_SECRET": "Sess10n-Sec-Yh6Jm3Bn8Wq",
    "WEB_AUTH_PASS": "BasicPw/Xk4+Mz7=Qr2",
}
KINDS = ("raw", "url", "base64", "mixed")
COMBOS = [(telemetry, fmt) for telemetry in (False, True) for fmt in ("json", "console")]


def test_the_shipped_manifest_hands_the_library_the_apps_redaction() -> None:
    """Without `log.redact` the library would echo an X-Request-ID made of safe characters, whatever the app
    redacts in its own logs: the web fuzz cases below rely on this line of telemetry.yaml."""
    manifest = yaml.safe_load((REPO_ROOT / "telemetry.yaml").read_text(encoding="utf-8"))
    assert (manifest.get("log") or {}).get("redact") == "publisher_v2.utils.logging:redact_text"


def mixed_case(secret: str) -> str:
    return "".join(ch.upper() if i % 2 else ch.lower() for i, ch in enumerate(secret))


def form(secret: str, kind: str) -> str:
    if kind == "url":
        return quote(secret, safe="")
    if kind == "base64":
        return base64.b64encode(secret.encode()).decode()
    if kind == "mixed":
        return mixed_case(secret)
    return secret


ALL_FORMS: List[str] = [form(s, k) for s in SECRETS.values() for k in KINDS]
#: The minimum run of a secret that must never be shown (redact.RUN).
RUN = 12


def runs_of(secret: str) -> List[str]:
    """Truncated copies a peer or a user may echo: the first 22 characters, the last 12, a middle 12."""
    middle = max(0, (len(secret) - RUN) // 2)
    return [secret[:22], secret[-RUN:], secret[middle : middle + RUN]]


def run_forms(secret: str) -> List[str]:
    """Each run raw, mixed-case, URL-encoded, and base64'd after 0, 1 and 2 bytes of prefix."""
    found = []
    for run in runs_of(secret):
        found += [run, mixed_case(run), quote(run, safe="")]
        found += [base64.b64encode((prefix + run).encode()).decode() for prefix in ("", "u", "u:")]
    return found


ALL_RUNS: List[str] = [r for s in SECRETS.values() for r in run_forms(s)]
_BASE64_WORD = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def decoded_words(text: str) -> Iterator[str]:
    """Every base64-looking word of `text` decoded at each of its 4 character alignments (latin-1 text)."""
    for match in _BASE64_WORD.finditer(text):
        word = match.group().rstrip("=").replace("-", "+").replace("_", "/")
        for skip in range(4):
            part = word[skip:]
            if len(part) % 4 == 1:  # a lone trailing character carries no whole byte
                part = part[:-1]
            if len(part) >= 16:
                yield base64.b64decode(part + "=" * (-len(part) % 4), validate=False).decode("latin-1")


def leaks(text: str) -> List[Tuple[str, str]]:
    """(variable, what) for every secret, form or 8-character fragment of a secret found in `text`."""
    found = []
    lowered = text.lower()
    for name, secret in SECRETS.items():
        for kind in KINDS:
            shown = form(secret, kind)
            if (shown in text) if kind == "base64" else (shown.lower() in lowered):
                found.append((name, kind))
        for i in range(len(secret) - 7):
            fragment = secret[i : i + 8].lower()
            if fragment in lowered:
                found.append((name, f"fragment {fragment!r}"))
        for i in range(len(secret) - RUN + 1):
            run = secret[i : i + RUN]
            encoded = quote(run, safe="").lower()
            if encoded != run.lower() and encoded in lowered:
                found.append((name, f"URL-encoded run {run!r}"))
    for decoded in decoded_words(text):
        for name, secret in SECRETS.items():
            for i in range(len(secret) - RUN + 1):
                if secret[i : i + RUN] in decoded:
                    found.append((name, f"base64'd run {secret[i : i + RUN]!r}"))
    return found


def leaking_lines(text: str) -> List[str]:
    """The first few lines that leak, for the failure message."""
    return [line[:400] for line in text.splitlines() if leaks(line)][:5]


def base_env(telemetry: bool, fmt: str) -> Dict[str, str]:
    drop = ("PUBLISHER_AUTOINSTRUMENT", "PUBLISHER_TELEMETRY_MANIFEST", "AUTOINSTRUMENT", "AUTOINSTRUMENT_MANIFEST")
    env = {k: v for k, v in os.environ.items() if k not in drop and k not in SECRETS}
    env.update(SECRETS)
    env["PUBLISHER_LOG_FORMAT"] = fmt
    if telemetry:
        env["PUBLISHER_AUTOINSTRUMENT"] = "1"
    return env


def secret_library(root: Path) -> Tuple[Path, List[str]]:
    """The sample library with every image renamed after a form of a secret; returns (ini, file names)."""
    made = subprocess.run([str(BIN / "publisher-sample"), str(root), "--count", "12"], capture_output=True)
    assert made.returncode == 0, made.stderr
    images = sorted((root / "images").glob("*.*"))
    names = []
    for image, shown in zip(images, itertools.cycle(f for f in ALL_FORMS if "/" not in f)):
        name = f"{shown}{image.suffix}"
        image.rename(image.with_name(name))
        names.append(name)
    return root / "publisher.ini", names


class Collected:
    """Everything the passing runs printed and the server answered, with a line count."""

    def __init__(self) -> None:
        self.texts: List[str] = []

    def add(self, text: str) -> None:
        self.texts.append(text)

    @property
    def lines(self) -> int:
        return sum(len(t.splitlines()) for t in self.texts)

    def leaks(self) -> List[Tuple[str, str]]:
        return leaks("\n".join(self.texts))


def peer_reply_text() -> str:
    """What a careless peer sends back: every form of every secret, and the SMTP `AUTH PLAIN` blob
    (base64 of NUL user NUL password) that carries a password at another byte alignment."""
    auth_plain = base64.b64encode(f"\0user@example.com\0{SECRETS['EMAIL_PASSWORD']}".encode()).decode()
    return (
        f"Incorrect API key provided: {' '.join(ALL_FORMS)}; last AUTH PLAIN {auth_plain};"
        f" partly: {' '.join(ALL_RUNS)}"
    )


def echoing_peer(request: Request) -> Reply:
    return Reply.json({"error": {"message": peer_reply_text(), "type": "invalid_request_error"}}, status=400)


def run_cli(env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "publisher"), *args], env=env, capture_output=True, text=True, timeout=120, cwd=str(REPO_ROOT)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def collected() -> Iterator[Collected]:
    """Everything the module's runs emitted; the totals are printed (and scanned once more) at the end."""
    everything = Collected()
    yield everything
    print(f"\nredaction fuzz: {everything.lines} lines scanned, {len(SECRETS)} secrets x {len(KINDS)} forms tried")
    assert not everything.leaks()


@pytest.mark.parametrize(("telemetry", "fmt"), COMBOS)
def test_cli_prints_no_secret(tmp_path: Path, telemetry: bool, fmt: str, collected: Collected) -> None:
    ini, names = secret_library(tmp_path / "lib")
    env = base_env(telemetry, fmt)
    joined = "_".join(ALL_FORMS + ALL_RUNS)  # every secret in every form, whole and in runs, in one value
    bad_ini = tmp_path / "bad.ini"
    bad_ini.write_text(ini.read_text(encoding="utf-8") + f"\n[Telegram]\nmax_width = {joined}\n", "utf-8")
    peer = HttpPeer(echoing_peer).start()  # an OpenAI stand-in whose errors quote every secret back
    ai_ini = ini.parent / "ai.ini"  # relative paths resolve next to it
    ai_ini.write_text(
        ini.read_text(encoding="utf-8").replace(
            "backend = offline", f"backend = openai\n[openAI]\nbase_url = {peer.url}/v1\nmax_retries = 0\n"
        ),
        "utf-8",
    )
    try:
        peer_run = run_cli(env, "--config", str(ai_ini), "--select", names[3])
    finally:
        peer.stop()
    # The peer was really asked, and its reply (secrets and all) reached the logs, redacted.
    assert peer.requests and "Incorrect API key provided" in peer_run.stderr, peer_run.stderr[-2000:]
    runs = [
        peer_run,
        run_cli(env, "--config", str(ini), "--select", f"{joined}.jpg"),  # unknown name: the error names it
        run_cli(env, "--config", str(bad_ini)),  # the INI value is echoed in the error
        run_cli(env, "--config", str(ini), "--bogus", joined),  # argparse echoes unknown arguments
        run_cli(env, "--config", str(ini), "--select", names[0], "--preview"),
        run_cli(env, "--config", str(ini), "--select", names[1]),
        run_cli(env, "--config", str(ini)),
    ]
    with PostLedger(ini.parent / "state" / "ledger.sqlite") as ledger:  # an unfinished post the listing shows
        for n, shown in enumerate(ALL_FORMS[:8] + [r for r in ALL_RUNS if "/" not in r][:24]):
            assert ledger.claim(f"{n:064x}", f"{shown}.jpg")
    listings = [run_cli(env, "--config", str(ini), "ledger", "list", *flag) for flag in ((), ("--json",))]
    assert [r.returncode for r in listings] == [0, 0], listings[0].stderr[-2000:]
    assert "unfinished post(s)" in listings[0].stdout and json.loads(listings[1].stdout)["unfinished"]
    runs += listings
    assert [r.returncode for r in runs[-5:]] == [0, 0, 0, 0, 0], runs[-3].stderr[-2000:]
    assert all(r.returncode != 0 for r in runs[1:-5])
    text = "\n".join(r.stdout + r.stderr for r in runs)
    print(f"cli {telemetry=} {fmt}: {len(text.splitlines())} lines scanned, {len(ALL_FORMS)} secret forms tried")
    assert not leaks(text), leaking_lines(text)
    collected.add(text)


def serve(env: Dict[str, str], log: Path) -> Tuple[subprocess.Popen, str]:
    port = free_port()
    handle = open(log, "wb")  # noqa: SIM115  # closed by the caller through the process
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "publisher_v2.web.app:app", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=str(REPO_ROOT),
    )
    handle.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/health", timeout=2)
            return process, base
        except httpx.HTTPError:
            assert process.poll() is None, log.read_text(errors="replace")
            time.sleep(0.1)
    process.kill()
    raise AssertionError("uvicorn did not start: " + log.read_text(errors="replace"))


def requests_for(shown: str, token: str) -> List[Tuple[str, str, Dict[str, str], object]]:
    """(method, path, headers, json body) placing `shown` in every input of the web app."""
    auth = {"Authorization": f"Bearer {token}"}
    path_part = quote(shown, safe="")
    return [
        ("GET", f"/api/images/random?q={quote(shown)}&api_key={path_part}", {**auth, "X-Request-ID": shown}, None),
        ("GET", f"/api/images/{path_part}/file", {**auth, "X-Forwarded-For": shown, "Cookie": f"s={path_part}"}, None),
        ("POST", f"/api/images/{path_part}/analyze", {**auth, "X-Request-ID": shown}, {"note": shown}),
        ("POST", f"/api/images/{path_part}/publish", auth, {"platforms": [shown]}),
        ("POST", "/api/admin/login", {**auth, "User-Agent": shown}, {"password": shown}),
        ("GET", f"/nope/{path_part}?{path_part}={path_part}", {"Authorization": f"Bearer {shown}"}, None),
    ]


@pytest.mark.parametrize(("telemetry", "fmt"), COMBOS)
def test_web_server_prints_and_answers_no_secret(
    tmp_path: Path, telemetry: bool, fmt: str, collected: Collected
) -> None:
    ini, names = secret_library(tmp_path / "lib")
    env = base_env(telemetry, fmt)
    env["CONFIG_PATH"] = str(ini)
    log = tmp_path / "server.log"
    process, base = serve(env, log)
    answered: List[str] = []
    statuses = []
    try:
        token = SECRETS["WEB_AUTH_TOKEN"]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=30) as client:
            # An admin session that analyses and publishes a secret-named file (file names reach the logs),
            # first: the fuzzed logins below trip the login throttle.
            login = client.post("/api/admin/login", json={"password": SECRETS["web_admin_pw"]}, headers=auth)
            assert login.is_success, login.text
            name = quote(names[2], safe="")
            statuses.append(client.post(f"/api/images/{name}/analyze", headers=auth).status_code)
            statuses.append(client.post(f"/api/images/{name}/publish", headers=auth, json={}).status_code)
            assert client.get("/api/images/random", headers=auth).is_success
            for shown in ALL_FORMS:
                for method, path, headers, body in requests_for(shown, token):
                    response = client.request(method, path, headers=headers, json=body)
                    statuses.append(response.status_code)
                    answered.append("\n".join(f"{k}: {v}" for k, v in response.headers.items()))
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log.read_text(encoding="utf-8", errors="replace")
    assert statuses[:2] == [200, 200], (statuses[:2], output[-3000:])
    assert "http_access" in output and "Finished server process" in output  # the server's own lines are here
    text = output + "\n".join(answered)
    print(f"web {telemetry=} {fmt}: {len(text.splitlines())} lines scanned, {len(ALL_FORMS)} secret forms tried")
    assert not leaks(text), leaking_lines(text)
    collected.add(text)


def test_the_scan_finds_each_form_and_fragment() -> None:
    """The scanner itself can fail: every form and a bare fragment of a secret are found."""
    for secret in SECRETS.values():
        for kind in KINDS:
            assert leaks(f"x {form(secret, kind)} y"), (secret, kind)
        assert leaks(f"x{secret[3:11].upper()}y")
        for shown in run_forms(secret):
            assert leaks(f"x {shown} y"), (secret, shown)

