"""The README's commands, as an operator runs them: every stderr line is a JSON object when stderr is not a
terminal, and a console line under a pseudo-terminal. Real processes: `publisher-sample`, `publisher` (runs that
succeed, and runs that fail: the one-line verdict is an event too), and `uvicorn publisher_v2.web.app:app`
(start-up, requests, shutdown by Ctrl-C or SIGTERM; one process, or a supervisor with two workers)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import httpx
import pytest

from publisher_v2.web.log_config import UVICORN_LOG_CONFIG
from tests.cli_output import stderr_events, verdict_event
from tests.conftest import BIN, REPO_ROOT, SECRET_VARS
from tests.web.conftest import free_port

pytestmark = pytest.mark.slow

#: `22:03:51.017 [info     ] workflow_start    [publisher_v2.workflow] cid=09393a19 storage=local …`
CONSOLE_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \[(debug|info|warning|error|critical) *\] .+? +\[[\w.]+\]")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def not_console(lines: List[str]) -> List[str]:
    return [line for line in lines if not CONSOLE_LINE.match(line)][:3]


def clean_env(**extra: str) -> Dict[str, str]:
    drop = {*SECRET_VARS, "PUBLISHER_AUTOINSTRUMENT", "PUBLISHER_TELEMETRY_MANIFEST", "PUBLISHER_LOG_FORMAT"}
    env = {k: v for k, v in os.environ.items() if k not in drop and k not in ("CONFIG_PATH", "ENV_PATH")}
    env.update(extra)
    return env


def assert_json_lines(stderr: str) -> List[dict]:
    """Every stderr line an event with the seed's fields (a plain-text line fails), and at least one."""
    events = stderr_events(stderr)
    assert events, "nothing on stderr"
    return events


def run_in_pty(command: List[str], env: Dict[str, str], until: Optional[str] = None, timeout: float = 60) -> str:
    """Run `command` with stdin/stdout/stderr on a pseudo-terminal; return what it printed (ANSI removed).
    With `until`, send Ctrl-C (SIGINT) once that text has been printed, then read to the end."""
    master, slave = pty.openpty()
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=str(REPO_ROOT))
    os.close(slave)
    out = b""
    interrupted = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif process.poll() is not None:
                break
            if until and not interrupted and until in ANSI.sub("", out.decode(errors="replace")):
                process.send_signal(signal.SIGINT)
                interrupted = True
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        os.close(master)
    return ANSI.sub("", out.decode(errors="replace")).replace("\r\n", "\n")


def test_the_readme_sample_step_prints_json_or_nothing_on_stderr(tmp_path: Path) -> None:
    """`publisher-sample sample_library` (the README's first step): its stderr is JSON-or-nothing too."""
    made = subprocess.run(
        [str(BIN / "publisher-sample"), str(tmp_path / "sample_library")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    if made.stderr.strip():
        assert_json_lines(made.stderr)
    assert (tmp_path / "sample_library" / "publisher.ini").is_file()


@pytest.fixture
def library(tmp_path: Path, sample_copy: Callable[..., Path]) -> Path:
    """The README's sample library (36 images, `publisher-sample`'s defaults), a copy of its own per test."""
    return sample_copy(tmp_path / "sample_library", count=36, seed=1)


@pytest.mark.parametrize(
    ("command", "telemetry"),
    [(["publisher"], False), (["publisher"], True), (["python", "-m", "publisher_v2"], False)],
)
def test_readme_run_command_prints_only_json_on_stderr(library: Path, command: List[str], telemetry: bool) -> None:
    env = clean_env(**({"PUBLISHER_AUTOINSTRUMENT": "1"} if telemetry else {}))
    program = [str(BIN / command[0]), *command[1:]] if command[0] == "publisher" else [sys.executable, *command[1:]]
    done = subprocess.run(
        [*program, "--config", str(library)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    events = assert_json_lines(done.stderr)
    assert done.stdout.startswith("Published "), done.stdout  # the human summary stays on stdout
    names = {e["message"] for e in events}
    assert "workflow_complete" in names or "workflow_start" in names
    if telemetry:
        assert "workflow_timing" in names


def test_readme_run_command_under_a_terminal_prints_console_lines(library: Path) -> None:
    output = run_in_pty([str(BIN / "publisher"), "--config", str(library)], clean_env())
    lines = [line for line in output.splitlines() if line.strip()]
    summary = [line for line in lines if line.startswith("Published ")]
    events = [line for line in lines if not line.startswith("Published ")]
    assert len(summary) == 1 and events, output
    assert all(CONSOLE_LINE.match(line) for line in events), not_console(events)
    assert not any(line.lstrip().startswith("{") for line in lines)
    # the correlation id is shortened to its first group on the console, and whole in the summary
    cid = re.search(r"correlation_id=([0-9a-f-]{36})", summary[0]).group(1)  # type: ignore[union-attr]
    assert f"cid={cid[:8]} " in output and f"cid={cid}" not in output


def test_log_format_variable_overrides_the_terminal_check(library: Path) -> None:
    forced_json = run_in_pty(
        [str(BIN / "publisher"), "--config", str(library)], clean_env(PUBLISHER_LOG_FORMAT="json")
    )
    assert_json_lines("\n".join(line for line in forced_json.splitlines() if not line.startswith("Published ")))
    forced_console = subprocess.run(
        [str(BIN / "publisher"), "--config", str(library)],
        env=clean_env(PUBLISHER_LOG_FORMAT="console"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in forced_console.stderr.splitlines() if line.strip()]
    assert lines and all(CONSOLE_LINE.match(line) for line in lines), lines[:3]
    assert "\x1b[" not in forced_console.stderr  # no colours when the stream is not a terminal


# -- failing commands: the verdict is an event, never a plain line -----------------------------------------------


def every_outbox_blocked(ini: Path) -> None:
    """Each platform's outbox folder is a file: every publisher fails, the run exits 1."""
    (ini.parent / "outbox").mkdir(exist_ok=True)
    for platform in ("telegram", "instagram", "email"):
        (ini.parent / "outbox" / platform).write_text("a file, not a folder\n", encoding="utf-8")


def unclosed_header(ini: Path) -> None:
    ini.write_text(ini.read_text(encoding="utf-8").replace("[Local]", "[Local", 1), encoding="utf-8")


#: name → (arguments after `publisher --config INI`, how to break the library, exit code, verdict's start)
FAILURES = {
    "every platform fails": ([], every_outbox_blocked, 1, "publisher: Every publisher failed: telegram: "),
    "bad config": ([], unclosed_header, 1, "publisher: error: "),
    "unknown --select": (["--select", "ghost.jpg"], None, 1, "publisher: Image not found: ghost.jpg"),
    "argparse error": (["--bogus"], None, 2, "publisher: error: unrecognized arguments: --bogus"),
    "ledger sub-command": (["ledger", "release", "nosuch.jpg"], None, 1, "publisher: error: No unfinished post"),
    "ledger usage": (["ledger", "retry"], None, 2, "publisher ledger retry: error: the following arguments"),
}


@pytest.mark.parametrize(("name", "telemetry"), [(name, False) for name in FAILURES] + [("every platform fails", True)])
def test_failing_commands_print_only_json_on_stderr_ending_with_the_verdict(
    library: Path, name: str, telemetry: bool
) -> None:
    args, breaks, code, start = FAILURES[name]
    if breaks is not None:
        breaks(library)
    env = clean_env(**({"PUBLISHER_AUTOINSTRUMENT": "1"} if telemetry else {}))
    done = subprocess.run(
        [str(BIN / "publisher"), "--config", str(library), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == code, done.stderr[-2000:]
    assert_json_lines(done.stderr)  # no plain-text line anywhere
    event = verdict_event(done.stderr)  # exactly one, the last line, ERROR
    assert event["verdict"].startswith(start) and event["exit_code"] == code, event
    assert event["logger"] == "publisher_v2.cli"
    assert event["message"] == ("cli_usage_error" if code == 2 else "cli_failed")
    if code == 2:
        assert event["usage"].startswith("usage: publisher") and "\n" not in event["usage"]
    if name == "every platform fails":  # the run had a correlation id: the verdict carries it, like the summary
        assert f"[correlation_id={event['correlation_id']}]" in done.stdout


def test_help_stays_text_on_stdout_and_a_bad_sample_argument_is_an_event(tmp_path: Path) -> None:
    helped = subprocess.run([str(BIN / "publisher"), "--help"], env=clean_env(), capture_output=True, text=True)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: publisher") and helped.stderr == ""
    sample = subprocess.run(
        [str(BIN / "publisher-sample"), str(tmp_path / "lib"), "--count", "0"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sample.returncode == 2 and sample.stdout == ""
    assert verdict_event(sample.stderr)["verdict"].startswith("publisher-sample: error: argument --count")


def test_ctrl_c_during_a_run_ends_with_the_interrupted_verdict_event(library: Path, tmp_path: Path) -> None:
    """SIGINT while a post is under way (the helper holds the run right after its first post)."""
    pause = tmp_path / "pause"
    pause.mkdir()
    helper = REPO_ROOT / "tests" / "core" / "pause_after_post.py"
    run = subprocess.Popen(
        [sys.executable, str(helper), "--config", str(library)],
        env=clean_env(PAUSE_DIR=str(pause)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (pause / "paused").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    (pause / "go").touch()
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1, err[-2000:]
    event = verdict_event(err)  # every line JSON, this one last
    listing = f"publisher --config {library} ledger list"
    assert (event["message"], event["exit_code"]) == ("cli_interrupted", 1)
    assert event["verdict"] == f"publisher: interrupted; a post it left unfinished is listed by `{listing}`"
    shown = subprocess.run(
        [str(BIN / "publisher"), "--config", str(library), "ledger", "list"],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert shown.stdout.startswith("1 unfinished post(s) in "), shown  # the command the verdict names shows it


def test_a_failing_run_under_a_terminal_ends_with_the_verdict_as_a_console_line(library: Path) -> None:
    every_outbox_blocked(library)
    output = run_in_pty([str(BIN / "publisher"), "--config", str(library)], clean_env())
    lines = [line for line in output.splitlines() if line.strip()]
    events = [line for line in lines if not line.startswith("Not published: ")]
    assert len(events) < len(lines) and events, output  # the summary on stdout, the events around it
    assert all(CONSOLE_LINE.match(line) for line in events), not_console(events)
    last = events[-1]  # a person reads the level, the event and, at the end of the line, the reason
    assert re.match(r"^\S+ \[error +\] cli_failed +\[publisher_v2\.cli\] cid=[0-9a-f]{8} exit_code=1 ", last), last
    assert re.search(r"""verdict=["']?publisher: Every publisher failed: telegram: Outbox write failed: """, last), last


def readme_uvicorn(port: int) -> List[str]:
    """The README's command: `uvicorn publisher_v2.web.app:app --host 127.0.0.1 --port N` (access log on)."""
    return [str(BIN / "uvicorn"), "publisher_v2.web.app:app", "--host", "127.0.0.1", "--port", str(port)]


def exercise(base: str) -> None:
    """Start-up is awaited, then a few requests: a page, an API call, a 404, a failed login."""
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/health", timeout=2)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert httpx.get(base + "/api/images/random", timeout=10).status_code == 200
    assert httpx.get(base + "/nope?password=hunter2", timeout=10).status_code == 404
    assert httpx.post(base + "/api/admin/login", json={"password": "wrong"}, timeout=10).status_code == 401


def serve_piped(command: List[str], env: Dict[str, str], port: int, folder: Path, stop: int) -> Tuple[str, str]:
    """Start the server with stderr in a file, make `exercise`'s requests, stop it with signal `stop`;
    returns (stderr, stdout) once it has exited (its shutdown lines included)."""
    stderr_path = folder / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr)
        try:
            exercise(f"http://127.0.0.1:{port}")
        finally:
            server.send_signal(stop)
            stdout, _ = server.communicate(timeout=30)
    return stderr_path.read_text(encoding="utf-8"), stdout.decode(errors="replace")


def serve_in_pty(command: List[str], env: Dict[str, str], port: int) -> str:
    """What the server prints on a terminal while `exercise` runs. The terminal is read in a thread (Ctrl-C
    once the last request's access line is shown), while this thread makes the requests."""
    result: Dict[str, str] = {}
    reader = threading.Thread(target=lambda: result.setdefault("out", run_in_pty(command, env, until="status=401")))
    reader.start()
    exercise(f"http://127.0.0.1:{port}")
    reader.join(timeout=120)
    return result.get("out", "")


@pytest.mark.parametrize("telemetry", [False, True])
def test_readme_uvicorn_command_prints_only_json_on_stderr(library: Path, tmp_path: Path, telemetry: bool) -> None:
    port = free_port()
    env = clean_env(CONFIG_PATH=str(library), web_admin_pw="change-me")
    if telemetry:
        env["PUBLISHER_AUTOINSTRUMENT"] = "1"
    stderr, stdout = serve_piped(readme_uvicorn(port), env, port, tmp_path, signal.SIGINT)  # Ctrl-C
    events = assert_json_lines(stderr)
    messages = [e["message"] for e in events]
    assert any(m.startswith("Started server process") for m in messages)
    assert any(m.startswith("Finished server process") for m in messages)
    access = [e for e in events if e["message"] == "http_access"]
    assert {e["status"] for e in access} >= {200, 404, 401}
    assert all(e["method"] in ("GET", "POST") and e["path"].startswith("/") for e in access)
    routes = {e["path"]: e.get("route") for e in access}
    assert routes["/api/images/random"] == "/api/images/random"  # the matched template, from the app
    assert routes["/api/admin/login"] == "/api/admin/login"
    assert all("route" not in e for e in access if e["status"] == 404)  # nothing matched: the path alone
    assert "hunter2" not in stderr  # the query string was redacted
    assert not stdout.strip()


def workers_command(port: int) -> List[str]:
    """The README's command for several workers: the shipped log config makes the supervisor's lines events."""
    return [*readme_uvicorn(port), "--workers", "2", "--log-config", str(UVICORN_LOG_CONFIG)]


def test_uvicorn_with_two_workers_and_the_shipped_log_config_prints_only_json(library: Path, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(CONFIG_PATH=str(library), web_admin_pw="change-me")
    # SIGTERM: the supervisor stops its workers; all their lines are checked
    stderr, stdout = serve_piped(workers_command(port), env, port, tmp_path, signal.SIGTERM)
    events = assert_json_lines(stderr)
    messages = [e["message"] for e in events]
    for supervisor_line in ("Uvicorn running on", "Started parent process", "Stopping parent process"):
        assert any(m.startswith(supervisor_line) for m in messages), (supervisor_line, messages)
    assert sum(m.startswith("Started server process") for m in messages) == 2  # both workers
    assert sum(m == "web_server_start" for m in messages) == 2
    assert {e["status"] for e in events if e["message"] == "http_access"} >= {200, 404, 401}
    assert "hunter2" not in stderr
    assert not stdout.strip()


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        (False, ("Started server process", "Finished server process")),
        (True, ("Started parent process", "Stopping parent process")),  # the supervisor's own lines
    ],
)
def test_readme_uvicorn_commands_under_a_terminal_print_console_lines(
    library: Path, workers: bool, expected: Tuple[str, str]
) -> None:
    port = free_port()
    env = clean_env(CONFIG_PATH=str(library), web_admin_pw="change-me")
    output = serve_in_pty(workers_command(port) if workers else readme_uvicorn(port), env, port)
    lines = [line for line in output.splitlines() if line.strip()]
    assert all(any(text in line for line in lines) for text in expected), output
    assert any("http_access" in line and "status=200" in line for line in lines), output
    assert all(CONSOLE_LINE.match(line) for line in lines), not_console(lines)


def test_a_server_that_cannot_start_says_so_in_one_json_line(tmp_path: Path) -> None:
    missing = tmp_path / "absent.ini"
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "publisher_v2.web.app:app", "--port", str(free_port())],
        env=clean_env(CONFIG_PATH=str(missing)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO_ROOT),
    )
    assert done.returncode != 0
    (event,) = assert_json_lines(done.stderr)
    assert event["message"] == "web_cannot_start" and str(missing) in event["error"]


def test_warnings_and_crashes_are_events_too() -> None:
    """A warning, a crashed thread and an uncaught exception: JSON events with their texts redacted."""
    key = "sk-proj-AbCdEfGhIjKlMnOpQrSt"
    script = (
        "import threading, warnings\n"
        "from publisher_v2.utils.logging import setup_logging\n"
        "setup_logging()\n"
        f"warnings.warn('careful {key}')\n"
        "t = threading.Thread(target=lambda: 1 / 0)\n"
        "t.start(); t.join()\n"
        "raise RuntimeError('peer said ' + __import__('os').environ['OPENAI_API_KEY'].lower())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=clean_env(OPENAI_API_KEY=key), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    warning, thread_crash, crash = assert_json_lines(done.stderr)
    assert warning["logger"] == "py.warnings" and "UserWarning: careful [REDACTED]" in warning["message"]
    assert thread_crash["message"] == "uncaught_exception" and "ZeroDivisionError" in thread_crash["exception"]
    assert crash["exception"].endswith("RuntimeError: peer said [REDACTED]")
    assert key[:8].lower() not in done.stderr.lower()
