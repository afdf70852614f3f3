"""Wrapping keeps every callable kind behaving exactly as before, and times what it should."""

from __future__ import annotations

import asyncio
import inspect
import textwrap
import time

import pytest
from fixture_app import kinds
from fixture_app.kinds import Base, Boom, Child, Override
from telemetry_testkit import LOG_SECTION

import autoinstrument
from autoinstrument.runtime.scope import CURRENT, Accumulator

KINDS_MANIFEST = (
    LOG_SECTION
    + """
stages:
  fixture_app.kinds:Base.plain: plain_ms
  fixture_app.kinds:Base.coro: coro_ms
  fixture_app.kinds:Base.gen: gen_ms
  fixture_app.kinds:Base.agen: agen_ms
  fixture_app.kinds:Base.make: make_ms
  fixture_app.kinds:Base.pure: pure_ms
  fixture_app.kinds:Base.recurse: recurse_ms
  fixture_app.kinds:Base.fail: fail_ms
  fixture_app.kinds:Child.coro: child_coro_ms
  fixture_app.kinds:module_function: module_function_ms
"""
)

ORIGINALS = {
    name: Base.__dict__[name] for name in ("plain", "coro", "gen", "agen", "make", "pure", "recurse", "fail")
}
ORIGINAL_FUNCTION = kinds.module_function


@pytest.fixture
def wrapped(write_manifest):
    assert autoinstrument.install(write_manifest(KINDS_MANIFEST))
    yield
    autoinstrument.uninstall()


class open_scope:
    """Open a bare scope (no event) in the current context and expose its accumulator."""

    def __enter__(self) -> Accumulator:
        self.acc = Accumulator()
        self.previous = CURRENT.get()
        CURRENT.set(self.acc)
        return self.acc

    def __exit__(self, *exc) -> None:
        CURRENT.set(self.previous)


def ms(acc: Accumulator, field: str) -> float:
    acc.fold()
    return acc.totals[field][0] * 1000.0


def calls(acc: Accumulator, field: str) -> int:
    acc.fold()
    return acc.totals[field][1]


def recorded(acc: Accumulator) -> set:
    acc.fold()
    return set(acc.totals)


def test_every_target_is_replaced_by_a_wrapper_keeping_metadata(wrapped):
    for name, original in ORIGINALS.items():
        installed = Base.__dict__[name]
        assert installed is not original, name
        fn = getattr(installed, "__func__", installed)
        orig_fn = getattr(original, "__func__", original)
        assert fn.__wrapped__ is orig_fn
        assert (fn.__name__, fn.__qualname__, fn.__doc__, fn.__module__) == (
            orig_fn.__name__,
            orig_fn.__qualname__,
            orig_fn.__doc__,
            orig_fn.__module__,
        )
        assert inspect.signature(fn) == inspect.signature(orig_fn), name
        for predicate in (
            inspect.iscoroutinefunction,
            inspect.isgeneratorfunction,
            inspect.isasyncgenfunction,
        ):
            assert predicate(fn) == predicate(orig_fn), (name, predicate.__name__)
    assert type(Base.__dict__["make"]) is classmethod and type(Base.__dict__["pure"]) is staticmethod
    assert (
        kinds.module_function is not ORIGINAL_FUNCTION
        and kinds.module_function.__wrapped__ is ORIGINAL_FUNCTION
    )
    assert inspect.signature(Base().plain) == inspect.signature(ORIGINALS["plain"].__get__(Base()))


def test_sync_method_arguments_defaults_and_results_are_unchanged(wrapped):
    b = Base()
    assert b.plain(1) == {"x": 1, "y": 2, "rest": (), "scale": 1.0, "extra": {}}
    assert b.plain(1, 5, 6, 7, scale=2.0, z=3) == {
        "x": 1,
        "y": 5,
        "rest": (6, 7),
        "scale": 2.0,
        "extra": {"z": 3},
    }
    assert b.plain(x=4, y=1) == {"x": 4, "y": 1, "rest": (), "scale": 1.0, "extra": {}}
    with pytest.raises(TypeError):
        b.plain()
    with pytest.raises(TypeError):
        b.plain(1, x=2)


def test_classmethod_staticmethod_and_module_function_still_work(wrapped):
    assert Base.make() == "Base:t" and Child.make("c") == "Child:c" and Base().make("i") == "Base:i"
    assert Base.pure(1, 2) == 10 and Base().pure(1, 2, 0, d=0) == 3
    with pytest.raises(TypeError):
        Base.pure(a=1, b=2)  # positional-only stays positional-only
    assert kinds.module_function(3, b=4) == 12
    with open_scope() as acc:
        Child.make()
        Base.pure(1, 1)
        kinds.module_function(2)
    assert calls(acc, "make_ms") == 1 and calls(acc, "pure_ms") == 1 and calls(acc, "module_function_ms") == 1


def test_exceptions_come_out_as_the_same_object_and_are_still_timed(wrapped):
    err = Boom("x")
    with open_scope() as acc, pytest.raises(Boom) as caught:
        Base().fail(err)
    assert caught.value is err
    assert calls(acc, "fail_ms") == 1
    kb = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as caught2:
        Base().fail(kb)
    assert caught2.value is kb


async def test_coroutine_result_exception_identity_and_wall_time(wrapped):
    b = Base()
    assert await b.coro() == "coro-result"
    err = Boom("async")
    with open_scope() as acc:
        with pytest.raises(Boom) as caught:
            await b.coro(0.01, err)
        assert await b.coro(0.03) == "coro-result"
    assert caught.value is err
    assert calls(acc, "coro_ms") == 2
    assert 35 <= ms(acc, "coro_ms") < 500


async def test_inherited_method_is_wrapped_on_the_named_class_only(wrapped):
    assert "coro" in Child.__dict__  # shadowed on Child
    assert (
        Child.__dict__["coro"].__wrapped__ is ORIGINALS["coro"]
    )  # wraps the base's original, not its wrapper
    with open_scope() as acc:
        await Child().coro()
        await Base().coro()
    assert calls(acc, "child_coro_ms") == 1 and calls(acc, "coro_ms") == 1
    autoinstrument.uninstall()
    assert "coro" not in Child.__dict__ and Base.__dict__["coro"] is ORIGINALS["coro"]


def test_generator_send_throw_close_and_return_value_are_preserved(wrapped):
    g = Base().gen(5)
    assert inspect.isgenerator(g)
    assert next(g) == 0
    assert g.send(10) == 1
    assert g.send(5) == 2
    assert g.throw(Boom()) == -1  # the generator caught it and yielded -1
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == 15
    # close runs the generator's finally
    Base.calls.clear()
    g2 = Base().gen(3)
    next(g2)
    g2.close()
    assert Base.calls == ["gen-finally"]
    # an exception the generator does not handle comes out as the same object
    g3 = Base().gen(3)
    next(g3)
    err = ValueError("boom")
    with pytest.raises(ValueError) as caught:
        g3.throw(err)
    assert caught.value is err


def test_generator_is_timed_by_active_time_not_by_creation_or_wall_time(wrapped):
    with open_scope() as acc:
        g = Base().gen(3, work=0.02)
        assert "gen_ms" not in recorded(acc)  # creating runs nothing
        assert next(g) == 0
        time.sleep(0.1)  # the consumer's time between steps is not the generator's
        assert list(g) == [1, 2]
    assert calls(acc, "gen_ms") == 1
    assert 55 <= ms(acc, "gen_ms") < 95


def test_no_running_marker_is_held_across_a_yield(wrapped):
    from autoinstrument.runtime.scope import marker_var

    with open_scope() as acc:
        g = Base().gen(2)
        next(g)
        assert CURRENT.get() is acc
        mark = marker_var("gen_ms").get()
        assert mark is not None and mark[0] is acc and mark[1] is False  # set during the step, cleared after
        # a second generator of the same field iterated meanwhile is NOT nested: it counts
        assert list(Base().gen(2)) == [0, 1]
        assert list(g) == [1]
    assert calls(acc, "gen_ms") == 2


async def test_async_generator_asend_athrow_aclose_and_active_time(wrapped):
    Base.calls.clear()
    with open_scope() as acc:
        ag = Base().agen(4, work=0.02)
        assert inspect.isasyncgen(ag)
        assert await ag.__anext__() == 0
        await asyncio.sleep(0.08)  # not the generator's time
        assert await ag.asend(7) == 1
        await ag.aclose()
    assert Base.calls == ["agen-got-7", "agen-finally"]
    assert calls(acc, "agen_ms") == 1
    assert 35 <= ms(acc, "agen_ms") < 75
    items = [i async for i in Base().agen(3)]
    assert items == [0, 1, 2]
    err = Boom()
    ag2 = Base().agen(3)
    await ag2.__anext__()
    with pytest.raises(Boom) as caught:
        await ag2.athrow(err)
    assert caught.value is err


def test_recursion_counts_once_at_the_outermost_entry(wrapped):
    with open_scope() as acc:
        assert Base().recurse(4) == 4
    assert calls(acc, "recurse_ms") == 1
    assert 9 <= ms(acc, "recurse_ms") < 60  # five sleeps of 2 ms, counted once


def test_super_chain_of_the_same_field_counts_once(write_manifest):
    manifest = LOG_SECTION + textwrap.dedent("""
        stages:
          fixture_app.kinds:Override.plain: {field: plain_ms, shared: true}
          fixture_app.kinds:Base.plain: {field: plain_ms, shared: true}
        """)
    assert autoinstrument.install(write_manifest(manifest))
    with open_scope() as acc:
        Override().plain(1)
    assert calls(acc, "plain_ms") == 1
    assert 4 <= ms(acc, "plain_ms") < 50


def test_outside_a_scope_nothing_is_recorded_and_results_flow(wrapped):
    assert CURRENT.get() is None
    assert Base().plain(2)["x"] == 2
    assert list(Base().gen(2)) == [0, 1]


def test_wrappers_cannot_be_pickled_by_reference_only_if_originals_could():
    import pickle

    # module-level functions stay picklable by name once wrapped (the wrapper has the same qualified name)
    assert pickle.loads(pickle.dumps(kinds.module_function)) is kinds.module_function


def test_unusual_signatures_fall_back_to_args_kwargs():
    from autoinstrument.runtime.wrappers import stage_wrapper

    def odd(_ai_x, y=1):
        return _ai_x + y

    w = stage_wrapper(odd, "odd_ms", lambda e: None)
    assert w(1) == 2 and w(1, y=3) == 4 and inspect.signature(w) == inspect.signature(odd)
