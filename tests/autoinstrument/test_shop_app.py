"""The second app, end to end in real processes: `shop_app` (not the publisher) adopts autoinstrument through
the public API and the start-up switch alone: `AUTOINSTRUMENT=1 AUTOINSTRUMENT_MANIFEST=... python -m
shop_app`, then `autoinstrument check` and `autoinstrument report` on what it logged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from telemetry_testkit import HERE, subprocess_env

import autoinstrument

MANIFEST = HERE / "shop_app" / "telemetry.yaml"
SCRIPT = Path(sys.executable).parent / "autoinstrument"
pytestmark = pytest.mark.slow


def shop(tmp_path: Path, **env: str) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], str]:
    """(stdout result, stderr events, stderr) of `python -m shop_app`."""
    proc = subprocess.run(
        [sys.executable, "-m", "shop_app"],
        env=subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), **env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    return json.loads(proc.stdout), events, proc.stderr


def named(events: List[Dict[str, Any]], name: str) -> List[Dict[str, Any]]:
    return [e for e in events if e.get("event") == name]


def test_the_shop_is_timed_through_the_start_up_switch_alone(tmp_path):
    result_off, events_off, _ = shop(tmp_path)
    result_on, events, stderr = shop(tmp_path, AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(MANIFEST))
    # Same behaviour (the response header is the only addition), no telemetry when off.
    assert [r.get("body", r.get("total")) for r in result_on] == [r.get("body", r.get("total")) for r in result_off]
    assert [r["request_id"] for r in result_on[2:]] == ["order-1", "order-2", "order-3"]
    assert not [e for e in events_off if e["source"] == "shop.telemetry"] and not named(events_off, "checkout_timing")
    assert "Traceback" not in stderr and not named(events, "autoinstrument_fault")

    (installed,) = named(events, "autoinstrument_installed")
    assert installed["wrapped"] == 4 and installed["missing"] == [] and installed["late"] == 0
    timings = named(events, "checkout_timing")
    assert len(timings) == 4  # two direct checkouts, two through the web route
    for timing in timings:
        # concurrent fetches add up: price_fetch_ms is the sum of both, the total about the longer one
        assert timing["price_fetch_ms"] >= 20 * timing["items"] and timing["checkout_total_ms"] >= 20
        assert timing["lookup_ms"] >= 10 * timing["items"]
        assert timing["stage_calls"]["price_fetch_ms"] == timing["items"]
        assert timing["paid"] is True and timing["source"] == "shop.telemetry"
    # The web route: the app's own `order_served` and the telemetry's are ONE event per request.
    served = named(events, "order_served")
    assert [e["correlation_id"] for e in served] == ["order-1", "order-2"]
    for event in served:
        assert event["source"] == "shop.web" and event["route"] == "/orders/{skus}" and event["status_code"] == 200
        assert event["web_order_ms"] >= 20 and event["price_fetch_ms"] >= 20 and event["items"] >= 1
        assert event["paid"] is True
    assert [t["correlation_id"] for t in timings[2:]] == ["order-1", "order-2"]
    assert not [e for e in events if e.get("correlation_id") == "order-3"]  # an unmapped path emits nothing


def test_check_and_report_work_on_the_shop(tmp_path):
    assert SCRIPT.exists(), f"{SCRIPT} missing: run `.venv/bin/pip install --no-deps -e .`"
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    check = subprocess.run([str(SCRIPT), "check", str(MANIFEST)], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "FAIL" not in check.stdout and "shop_app.catalog:fetch_price" in check.stdout

    _, _, stderr = shop(tmp_path, AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(MANIFEST))
    log = tmp_path / "shop.log"
    log.write_text(stderr)
    report = subprocess.run(
        [str(SCRIPT), "report", "--manifest", str(MANIFEST), str(log)], env=env, capture_output=True, text=True
    )
    assert report.returncode == 0, report.stdout + report.stderr
    for field in ("checkout_total_ms", "price_fetch_ms", "lookup_ms", "web_order_ms"):
        assert field in report.stdout
    tight = tmp_path / "tight.yaml"
    tight.write_text(MANIFEST.read_text().replace("checkout_total_ms: 2000", "checkout_total_ms: 1"))
    breached = subprocess.run(
        [str(SCRIPT), "report", "--manifest", str(tight), str(log)], env=env, capture_output=True, text=True
    )
    assert breached.returncode == 1, breached.stdout + breached.stderr


def test_version_comes_from_the_package_metadata():
    from autoinstrument._version import __version__ as library_version

    version = autoinstrument.__version__
    # The library's own version (issue 20: installable alone, test_install_alone.py); bundled in publisher_v2's
    # distribution it is the version its own build reads, not publisher_v2's.
    assert version == library_version
    proc = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0 and proc.stdout.strip() == f"autoinstrument {version}"
