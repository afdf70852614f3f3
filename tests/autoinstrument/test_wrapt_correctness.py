"""What a wrapt-based install gets right beyond the old generated wrappers (issue 20), each on a real target."""

from __future__ import annotations

import concurrent.futures
import inspect
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import wrapt
from fixture_app import wrapt_cases
from fixture_app.wrapt_cases import Cached, Service, Worker
from telemetry_testkit import LOG_SECTION, REPO, events, subprocess_env

import autoinstrument
from autoinstrument.runtime.scope import CURRENT, Accumulator

MANIFEST = LOG_SECTION + """
stages:
  fixture_app.wrapt_cases:Cached.square: square_ms
  fixture_app.wrapt_cases:Service.fetch: fetch_ms
  fixture_app.wrapt_cases:Worker.times: times_ms
  fixture_app.wrapt_cases:helper: helper_ms
"""

REFUSED = LOG_SECTION + """
stages:
  fixture_app.wrapt_cases:helper: helper_ms
  fixture_app.wrapt_cases:Worker.label: label_ms
  fixture_app.wrapt_cases:LIMIT: limit_ms
"""

ORIGINAL_HELPER = wrapt_cases.helper
ORIGINAL_SQUARE = vars(Cached)["square"]
ORIGINAL_FETCH = vars(Service)["fetch"]


@pytest.fixture
def installed(write_manifest):
    assert autoinstrument.install(write_manifest(MANIFEST))
    yield
    autoinstrument.uninstall()


def calls_in_scope(call) -> dict:
    """Run `call()` in a bare scope; field -> number of timed calls."""
    acc = Accumulator()
    token = CURRENT.set(acc)
    try:
        call()
    finally:
        CURRENT.reset(token)
    return {field: int(calls) for field, (_seconds, calls) in acc.close().items()}


def test_the_wrapper_keeps_the_originals_globals_and_code(installed):
    helper = wrapt_cases.helper
    assert isinstance(helper, wrapt.FunctionWrapper) and helper.__wrapped__ is ORIGINAL_HELPER
    assert helper.__globals__ is ORIGINAL_HELPER.__globals__  # FastAPI resolves annotations through these
    assert helper.__code__ is ORIGINAL_HELPER.__code__
    assert helper.__code__.co_filename == wrapt_cases.__file__
    method = vars(Worker)["times"]
    assert method.__globals__ is vars(wrapt_cases) and method.__code__.co_filename == wrapt_cases.__file__
    assert inspect.signature(Worker(2).times) == inspect.signature(method.__wrapped__.__get__(Worker(2)))


def test_an_lru_cached_method_is_timed_and_still_cached(installed):
    assert isinstance(vars(Cached)["square"], wrapt.FunctionWrapper)
    assert vars(Cached)["square"].__wrapped__ is ORIGINAL_SQUARE
    c = Cached()
    assert calls_in_scope(lambda: (c.square(3), c.square(3), c.square(4))) == {"square_ms": 3}
    assert c.square(3) == 9 and ORIGINAL_SQUARE.cache_info().hits >= 2
    autoinstrument.uninstall()
    assert vars(Cached)["square"] is ORIGINAL_SQUARE


def test_a_target_already_wrapped_by_another_wrapt_library_is_timed_and_keeps_its_instance(installed):
    assert isinstance(ORIGINAL_FETCH, wrapt.FunctionWrapper)  # the other library's
    ours = vars(Service)["fetch"]
    assert ours is not ORIGINAL_FETCH and ours.__wrapped__ is ORIGINAL_FETCH
    wrapt_cases.SEEN.clear()
    s = Service()
    result = []
    assert calls_in_scope(lambda: result.append(s.fetch("k"))) == {"fetch_ms": 1}
    assert result == ["Service:k"]
    assert list(wrapt_cases.SEEN) == [(s, ("k",))]  # its wrapper still got `instance` bound, not self in args
    autoinstrument.uninstall()
    assert vars(Service)["fetch"] is ORIGINAL_FETCH


def _call_in_child(method, n):
    return method(n)


def test_a_bound_method_of_a_wrapped_class_pickles_through_a_process_pool(installed):
    worker = Worker(3)
    bound = worker.times
    assert isinstance(bound, wrapt.BoundFunctionWrapper)
    copy = pickle.loads(pickle.dumps(bound))
    assert copy(5) == 15 and copy.__self__.factor == 3
    assert pickle.loads(pickle.dumps(wrapt_cases.helper)) is wrapt_cases.helper  # by reference
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        assert pool.submit(bound, 7).result(timeout=60) == 21
        assert pool.submit(_call_in_child, bound, 2).result(timeout=60) == 6
        assert list(pool.map(wrapt_cases.helper, [1, 2])) == [2, 3]


def test_a_property_and_a_non_callable_are_refused_at_install_naming_the_yaml_line(write_manifest):
    path = write_manifest(REFUSED)
    assert autoinstrument.install(path)
    assert isinstance(vars(Worker)["label"], property) and Worker(2).label == "worker x2"
    assert wrapt_cases.LIMIT == 10 and isinstance(wrapt_cases.helper, wrapt.FunctionWrapper)
    faults = {f["target"]: f for f in events("autoinstrument_fault")}
    label = faults["fixture_app.wrapt_cases:Worker.label"]
    assert label["fault"] == "target_unusable" and label["line"] == 8 and label["manifest"] == path
    assert "is a property" in label["detail"]
    limit = faults["fixture_app.wrapt_cases:LIMIT"]
    assert limit["line"] == 9 and "is a int, not callable" in limit["detail"]


def test_a_property_and_a_non_callable_are_refused_by_the_check_command(write_manifest):
    path = write_manifest(REFUSED)
    script = Path(sys.executable).parent / "autoinstrument"
    env = subprocess_env(PYTHONPATH=str(Path(__file__).resolve().parent))
    proc = subprocess.run(
        [str(script), "check", path], env=env, capture_output=True, text=True, timeout=120, cwd=str(REPO)
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL   8  fixture_app.wrapt_cases:Worker.label: is a property" in proc.stdout
    assert "FAIL   9  fixture_app.wrapt_cases:LIMIT: is a int, not callable" in proc.stdout
    assert "OK     7  fixture_app.wrapt_cases:helper" in proc.stdout


PROBE = """
import atexit, json, sys

def probe():
    import wrapt
    from publisher_v2.core import workflow
    stage = vars(workflow.WorkflowOrchestrator)["_select_image"]
    scope = vars(workflow.WorkflowOrchestrator)["execute"]
    print("PROBE " + json.dumps({
        "stage": type(stage).__name__, "stage_is_wrapt": isinstance(stage, wrapt.FunctionWrapper),
        "scope_is_wrapt": isinstance(scope, wrapt.FunctionWrapper),
    }))

atexit.register(probe)
sys.argv = ["publisher", "--config", sys.argv[1]]
from publisher_v2.app import main
sys.exit(main())
"""


@pytest.mark.slow
def test_a_stage_of_the_running_publisher_cli_is_a_wrapt_function_wrapper(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in subprocess_env().items() if not k.startswith(("PUBLISHER_", "OPENAI", "DROPBOX"))}
    made = subprocess.run(
        [str(bin_dir / "publisher-sample"), str(tmp_path / "library")], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    (ini,) = sorted((tmp_path / "library").rglob("*.ini"))[:1]
    env["PUBLISHER_AUTOINSTRUMENT"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(ini)], env=env, capture_output=True, text=True, timeout=300,
        cwd=str(ini.parent),
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("PROBE ")]
    probe = json.loads(line[len("PROBE "):])
    assert probe == {"stage": "TimedWrapper", "stage_is_wrapt": True, "scope_is_wrapt": True}
    messages = [json.loads(x)["message"] for x in proc.stderr.splitlines() if x.startswith("{")]
    assert messages.count("workflow_timing") == 1


def test_coroutine_and_generator_predicates_answer_as_for_the_original(write_manifest):
    import asyncio

    from fixture_app.kinds import Base

    originals = {name: vars(Base)[name] for name in ("coro", "gen", "agen", "plain")}
    manifest = LOG_SECTION + "stages:\n" + "".join(
        f"  fixture_app.kinds:Base.{name}: {name}_ms\n" for name in originals
    )
    assert autoinstrument.install(write_manifest(manifest))
    for name, original in originals.items():
        for wrapped, plain in ((vars(Base)[name], original), (getattr(Base(), name), original.__get__(Base()))):
            assert isinstance(vars(Base)[name], wrapt.FunctionWrapper)
            assert inspect.iscoroutinefunction(wrapped) == inspect.iscoroutinefunction(plain), name
            assert asyncio.iscoroutinefunction(wrapped) == asyncio.iscoroutinefunction(plain), name
            assert inspect.isgeneratorfunction(wrapped) == inspect.isgeneratorfunction(plain), name
            assert inspect.isasyncgenfunction(wrapped) == inspect.isasyncgenfunction(plain), name
            assert inspect.signature(wrapped) == inspect.signature(plain), name
    assert inspect.iscoroutinefunction(vars(Base)["coro"]) and asyncio.iscoroutinefunction(Base().coro)
