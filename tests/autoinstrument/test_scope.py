"""Scopes: one event per run with every stage field, right across gather/to_thread/threads, on every exit."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fixture_app import applog, workflow
from telemetry_testkit import events, stderr_events

from autoinstrument.runtime import install as hooks
from autoinstrument.runtime.scope import CURRENT

EXTRA = """
fixture_app.workflow:Background.slow: slow_ms
fixture_app.workflow:hammer: hammer_ms
"""

STAGE_FIELDS = [
    "list_images_ms",
    "image_selection_ms",
    "vision_analysis_ms",
    "pillow_ms",
    "publish_parallel_ms",
    "publish_one_ms",
    "archive_ms",
]


def test_a_run_emits_exactly_one_event_with_every_field_and_the_run_correlation_id(install_workflow):
    install_workflow()
    result = workflow.run()
    (event,) = events("workflow_timing")
    assert event["correlation_id"] == result.correlation_id
    assert (event["image_name"], event["success"], event["archived"]) == ("a.jpg", True, True)
    for name in ["workflow_total_ms", *STAGE_FIELDS]:
        assert isinstance(event[name], int) and event[name] >= 0, name
    assert event["workflow_total_ms"] >= event["list_images_ms"] + event["image_selection_ms"]
    assert event["stage_calls"]["publish_one_ms"] == 3
    # every app event of the run carries the same id
    app_events = events("workflow_start") + events("published")
    assert len(app_events) == 4 and {e["correlation_id"] for e in app_events} == {result.correlation_id}
    assert event["logger"] == "fixture.telemetry"
    assert CURRENT.get() is None and applog.correlation_id.get() is None  # nothing leaks out of the scope


def test_gather_tasks_and_to_thread_work_add_into_the_same_scope(install_workflow):
    install_workflow()
    orchestrator = workflow.Orchestrator(publishers=4, publish_delay=0.04)
    workflow.run(orchestrator)
    (event,) = events("workflow_timing")
    # four publishers ran concurrently: their sum is about 4x the parallel wall time
    assert event["stage_calls"]["publish_one_ms"] == 4
    assert event["publish_one_ms"] >= 4 * 40
    assert 40 <= event["publish_parallel_ms"] < event["publish_one_ms"]
    # the Pillow-like work ran in a worker thread and still counted
    assert orchestrator.thread_ids and orchestrator.thread_ids[0] != threading.get_ident()
    assert event["pillow_ms"] >= 30 and event["vision_analysis_ms"] >= event["pillow_ms"]


def test_threads_writing_at_once_lose_no_update(install_workflow):
    install_workflow(EXTRA)
    from autoinstrument.runtime.scope import Accumulator

    acc = Accumulator()
    CURRENT.set(acc)
    try:
        barrier = threading.Barrier(8)

        def work() -> int:
            barrier.wait()
            return sum(workflow.hammer(i) for i in range(3000))

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(contextvars.copy_context().run, work) for _ in range(8)]
            totals = [f.result() for f in futures]
    finally:
        CURRENT.set(None)
    assert totals == [sum(range(1, 3001))] * 8
    assert acc.close()["hammer_ms"][1] == 8 * 3000


def test_no_images_early_return_still_emits_with_the_fields_that_ran(install_workflow):
    install_workflow()
    result = workflow.run(workflow.Orchestrator(images=False))
    assert result.success is False and result.error == "No images found"
    (event,) = events("workflow_timing")
    assert event["success"] is False and event["image_name"] is None and event["archived"] is False
    assert "list_images_ms" in event and "workflow_total_ms" in event
    for absent in ("image_selection_ms", "publish_parallel_ms", "archive_ms", "error_type"):
        assert absent not in event
    assert event["correlation_id"] == result.correlation_id


def test_an_exception_propagates_unchanged_and_the_event_says_so(install_workflow, monkeypatch):
    install_workflow()
    orchestrator = workflow.Orchestrator(fail_in="select")
    with pytest.raises(LookupError) as caught:
        workflow.run(orchestrator)
    assert str(caught.value) == "selection exploded"
    (event,) = events("workflow_timing")
    assert event["success"] is False and event["error_type"] == "LookupError"
    assert "image_selection_ms" in event and "list_images_ms" in event and "archive_ms" not in event
    (start,) = events("workflow_start")
    assert event["correlation_id"] == start["correlation_id"]


async def test_exception_object_identity_through_the_scope(install_workflow):
    install_workflow()
    err = RuntimeError("storage down")

    class Broken(workflow.Storage):
        async def list_images(self):
            raise err

    with pytest.raises(RuntimeError) as caught:
        await workflow.Orchestrator(Broken()).execute()
    assert caught.value is err
    assert events("workflow_timing")[0]["error_type"] == "RuntimeError"


def test_a_bound_correlation_id_is_reused(install_workflow):
    install_workflow()

    async def main():
        applog.correlation_id.set("req-123")
        return await workflow.Orchestrator().execute()

    result = asyncio.run(main())
    assert result.correlation_id == "req-123"
    assert events("workflow_timing")[0]["correlation_id"] == "req-123"


def test_nested_scopes_stages_count_in_the_innermost(install_workflow, write_manifest):
    import textwrap

    from telemetry_testkit import WORKFLOW_MANIFEST

    text = WORKFLOW_MANIFEST.replace(
        "scopes:\n",
        textwrap.dedent("""\
        scopes:
          fixture_app.workflow:run_all:
            event: outer_timing
            total: outer_total_ms
        """),
        1,
    )
    import autoinstrument

    assert autoinstrument.install(write_manifest(text))
    workflow.run_all()
    (outer,) = events("outer_timing")
    (inner,) = events("workflow_timing")
    assert outer["correlation_id"] == inner["correlation_id"]
    assert "image_selection_ms" in inner and "image_selection_ms" not in outer
    assert outer["outer_total_ms"] >= inner["workflow_total_ms"]


async def test_a_stage_finishing_after_its_scope_closed_is_reported_late(install_workflow, write_manifest):
    import textwrap

    from telemetry_testkit import LOG_SECTION

    import autoinstrument

    assert autoinstrument.install(
        write_manifest(
            LOG_SECTION
            + textwrap.dedent("""
        scopes:
          fixture_app.workflow:Background.run: {event: background_timing, total: background_total_ms}
        stages:
          fixture_app.workflow:Background.slow: slow_ms
        """)
        )
    )
    task = await workflow.Background().run()
    (event,) = events("background_timing")
    assert "slow_ms" not in event
    assert await task == "done"
    (late,) = events("autoinstrument_late_stage")
    assert late["field"] == "slow_ms" and late["slow_ms"] >= 40 and late["scope_event"] == "background_timing"
    assert late["correlation_id"] == event["correlation_id"]


def test_stages_outside_any_scope_emit_nothing(install_workflow):
    install_workflow(EXTRA)
    assert workflow.hammer(1) == 2
    asyncio.run(workflow.Storage().list_images())
    assert events("workflow_timing") == [] and events("autoinstrument_late_stage") == []


def test_a_raising_log_function_never_changes_the_run(install_workflow, capsys):
    install_workflow()
    applog.FAIL = True
    result = workflow.run()
    result2 = workflow.run()
    assert result.success and result2.success and result.image_name == "a.jpg"
    lines = stderr_events(capsys.readouterr().err)
    faults = [e for e in lines if e["message"] == "autoinstrument_fault"]
    assert [f["fault"] for f in faults] == ["log_function_raised"]  # reported once
    timing = [e for e in lines if e["message"] == "workflow_timing"]
    assert (
        len(timing) == 2 and timing[0]["correlation_id"] == result.correlation_id
    )  # not lost: stderr fallback


def test_a_bug_in_our_bookkeeping_never_changes_the_run(install_workflow, monkeypatch, capsys):
    install_workflow()
    from autoinstrument.runtime import scope

    class BrokenLists(dict):
        def __getitem__(self, field):
            raise ZeroDivisionError("our bug")

    original_init = scope.Accumulator.__init__

    def init_with_a_bug(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.lists = BrokenLists()

    monkeypatch.setattr(scope.Accumulator, "__init__", init_with_a_bug)
    result = workflow.run()
    assert result.success and result.archived
    with pytest.raises(LookupError):
        workflow.run(workflow.Orchestrator(fail_in="select"))
    faults = [e for e in events("autoinstrument_fault") if e["fault"] == "bookkeeping_error"]
    assert faults and all("ZeroDivisionError" in f["detail"] for f in faults)
    assert len({f["target"] for f in faults}) == len(faults)  # once per target


def test_an_unusable_correlation_var_is_a_fault_and_the_app_keeps_its_own_id(write_manifest):
    from telemetry_testkit import WORKFLOW_MANIFEST

    import autoinstrument

    text = WORKFLOW_MANIFEST.replace(
        "correlation: fixture_app.applog:correlation_id", "correlation: fixture_app.applog:EVENTS"
    )
    assert autoinstrument.install(write_manifest(text))
    result = workflow.run()
    (event,) = events("workflow_timing")
    assert event["correlation_id"] == result.correlation_id  # taken from the result
    (fault,) = [e for e in events("autoinstrument_fault") if e["fault"] == "correlation_unusable"]
    assert "not a contextvars.ContextVar" in fault["detail"]
    assert hooks.current() is not None


def test_to_ms_rounds_half_up_and_never_goes_negative():
    from autoinstrument.runtime.scope import to_ms

    assert [to_ms(s) for s in (0.0, 0.0004, 0.0005, 0.0015, 1.2344, -0.002)] == [0, 0, 1, 2, 1234, 0]
