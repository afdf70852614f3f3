"""The wrappers: wrapt `FunctionWrapper`s, one ordinary wrapper function per callable kind.

Why wrapt: it is the library the design names, and it gets the hard parts of a transparent proxy right: the
wrapped object stays the same object (`__wrapped__`, `__globals__`, `__code__`, `__signature__` and
`inspect.is*function` all answer as for the original), descriptors bind as they would unwrapped (methods,
classmethods, `functools.lru_cache` objects, another library's wrapt wrapper, which keeps its `instance`),
and no source is generated. Its cost, about 1 us per call on CPython 3.11, is measured against the stages it
times in docs_v2/benchmarks.md (well under 0.2 % of the shortest stage of a real run).

Each wrapper is `(wrapped, instance, args, kwargs)`:
- sync and coroutine stages time the call into the innermost open scope (`scope.CURRENT`), counted once per
  field on re-entry (the field's running marker, see `scope.py`); outside any scope they are not even called:
  wrapt's `enabled` check (`scope.CURRENT.get`, a C call returning None there) calls the target directly;
- generator and async-generator stages create the generator at call time (argument errors surface at once,
  as unwrapped) and return a driver that times only the ACTIVE time of each `send`/`throw`/`close` step
  (`asend`/`athrow`/`aclose`), holding the marker inside a step only, never across a `yield`;
- scopes open an accumulator around a sync or coroutine call;
- the log gate, which holds the app's own event of a mapped request, is NOT a FunctionWrapper: it is the web
  part's plain closure (`web.gate.gate`), checked and marked here (`gate_wrapper`), because it runs on every
  app log call and wrapt's call path around a module function costs more than the gate itself.

What wrapt alone does not do, added here: `TimedWrapper` pickles by reference (a module function by its
qualified name, a bound method as `getattr(instance, name)`), where wrapt's proxies raise
`NotImplementedError`; refusing properties and other non-functions is `targets.classify`'s job.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from types import FunctionType
from typing import Any, Callable, Optional, Tuple

import wrapt

from autoinstrument.runtime.scope import CURRENT, marker_var

SYNC, COROUTINE, GENERATOR, ASYNCGEN = "sync", "async", "generator", "async generator"

_CO_ITERABLE_COROUTINE = inspect.CO_ITERABLE_COROUTINE
_NOARG = object()


class UnsupportedTarget(TypeError):
    """The object cannot be timed (property, builtin, non-function...)."""


class _BoundTimed(wrapt.BoundFunctionWrapper):
    """A TimedWrapper bound to an instance or class: pickles as `getattr(instance, name)`, like a bound
    method (so a bound method of a wrapped class crosses a ProcessPoolExecutor)."""

    __slots__ = ()  # made at every attribute access: no per-instance dict

    def __reduce_ex__(self, protocol: int) -> Any:
        holder = self._self_instance
        if holder is None:
            holder = getattr(self, "_self_owner", None)
        if holder is None:
            raise TypeError(f"cannot pickle {self.__qualname__}: bound to nothing")
        return getattr, (holder, self.__name__)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)


class TimedWrapper(wrapt.FunctionWrapper):
    """Our FunctionWrapper: pickles by reference (its qualified name, where it is installed)."""

    __slots__ = ("_self_autoinstrument",)
    __bound_function_wrapper__ = _BoundTimed

    def __reduce_ex__(self, protocol: int) -> Any:
        return self.__qualname__  # pickle's save_global checks that the name leads back to this object

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)


def timeable(obj: Any) -> bool:
    """A Python function, or a function-like descriptor around one (`functools.lru_cache`, a wrapt proxy)."""
    if inspect.isfunction(obj):  # also true for a wrapt proxy of a function (it forwards __class__)
        return True
    inner = getattr(obj, "__wrapped__", None)
    return inner is not None and callable(obj) and hasattr(type(obj), "__get__") and inspect.isfunction(
        inspect.unwrap(obj)
    )


def kind_of(fn: Any) -> str:
    """The callable kind, decided once from the function itself (not from what a call returns)."""
    if not timeable(fn):
        raise UnsupportedTarget(f"{type(fn).__name__} is not a Python function")
    if not inspect.isfunction(fn):
        fn = inspect.unwrap(fn)
    if inspect.isasyncgenfunction(fn):
        return ASYNCGEN
    if inspect.isgeneratorfunction(fn):
        if fn.__code__.co_flags & _CO_ITERABLE_COROUTINE:
            raise UnsupportedTarget("a @types.coroutine generator cannot be timed")
        return GENERATOR
    if inspect.iscoroutinefunction(fn):
        return COROUTINE
    return SYNC


# --------------------------------------------------------------------------------------------- stages

Fault = Callable[[BaseException], None]


def _sync_stage(field: str, fault: Fault) -> Callable[..., Any]:
    marker = marker_var(field)
    current, mget, mset, clock = CURRENT.get, marker.get, marker.set, time.perf_counter

    def stage(wrapped: Any, instance: Any, args: Tuple[Any, ...], kwargs: dict) -> Any:
        acc = current()
        if acc is None:
            return wrapped(*args, **kwargs)
        mark = mget()
        if mark[1] and mark[0] is acc:
            return wrapped(*args, **kwargs)
        mark = [acc, True]
        mset(mark)
        t0 = clock()
        try:
            return wrapped(*args, **kwargs)
        finally:
            t1 = clock()
            mark[1] = False
            try:
                samples = acc.lists[field]
                samples.append(t1 - t0)
                if len(samples) > acc.limit:
                    acc.overflow(field, t1 - t0, t0)
            except KeyError:
                acc.add(field, t1 - t0, 1, t0)
            except Exception as err:
                fault(err)

    return stage


def _coroutine_stage(field: str, fault: Fault) -> Callable[..., Any]:
    marker = marker_var(field)
    current, mget, mset, clock = CURRENT.get, marker.get, marker.set, time.perf_counter

    async def stage(wrapped: Any, instance: Any, args: Tuple[Any, ...], kwargs: dict) -> Any:
        acc = current()  # called only inside a scope (`enabled`); read again where the coroutine runs
        if acc is None:
            return await wrapped(*args, **kwargs)
        mark = mget()
        if mark[1] and mark[0] is acc:
            return await wrapped(*args, **kwargs)
        mark = [acc, True]
        mset(mark)
        t0 = clock()
        try:
            return await wrapped(*args, **kwargs)
        finally:
            t1 = clock()
            mark[1] = False
            try:
                samples = acc.lists[field]
                samples.append(t1 - t0)
                if len(samples) > acc.limit:
                    acc.overflow(field, t1 - t0, t0)
            except KeyError:
                acc.add(field, t1 - t0, 1, t0)
            except Exception as err:
                fault(err)

    return stage


def _generator_stage(field: str, fault: Fault) -> Callable[..., Any]:
    def stage(wrapped: Any, instance: Any, args: Tuple[Any, ...], kwargs: dict) -> Any:
        return _drive(wrapped(*args, **kwargs), field, fault)

    return stage


def _asyncgen_stage(field: str, fault: Fault) -> Callable[..., Any]:
    def stage(wrapped: Any, instance: Any, args: Tuple[Any, ...], kwargs: dict) -> Any:
        return _adrive(wrapped(*args, **kwargs), field, fault)

    return stage


def _drive(gen: Any, field: str, fault: Fault) -> Any:
    """Re-yield `gen`, timing each step: the first one counts the call, later ones add time only."""
    try:
        value = _step(gen.send, None, field, 1, fault)
    except StopIteration as stop:
        return stop.value
    while True:
        try:
            sent = yield value
        except GeneratorExit:
            _step(gen.close, _NOARG, field, 0, fault)
            raise
        except BaseException as exc:
            try:
                value = _step(gen.throw, exc, field, 0, fault)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                value = _step(gen.send, sent, field, 0, fault)
            except StopIteration as stop:
                return stop.value


async def _adrive(agen: Any, field: str, fault: Fault) -> Any:
    """`_drive` for an async generator (`asend`/`athrow`/`aclose`)."""
    try:
        value = await _astep(agen.asend, None, field, 1, fault)
    except StopAsyncIteration:
        return
    while True:
        try:
            sent = yield value
        except GeneratorExit:
            await _astep(agen.aclose, _NOARG, field, 0, fault)
            raise
        except BaseException as exc:
            try:
                value = await _astep(agen.athrow, exc, field, 0, fault)
            except StopAsyncIteration:
                return
        else:
            try:
                value = await _astep(agen.asend, sent, field, 0, fault)
            except StopAsyncIteration:
                return


def _step(method: Callable[..., Any], arg: Any, field: str, calls: int, fault: Fault) -> Any:
    """Run one generator step, timed into the innermost open scope (the marker is live only meanwhile)."""
    acc = CURRENT.get()
    if acc is None:
        return method() if arg is _NOARG else method(arg)
    var = marker_var(field)
    mark = var.get()
    if mark[1] and mark[0] is acc:
        return method() if arg is _NOARG else method(arg)
    mark = [acc, True]
    var.set(mark)
    t0 = time.perf_counter()
    try:
        return method() if arg is _NOARG else method(arg)
    finally:
        t1 = time.perf_counter()
        mark[1] = False
        try:
            acc.add(field, t1 - t0, calls, t0)
        except Exception as err:
            with contextlib.suppress(Exception):
                fault(err)


async def _astep(method: Callable[..., Any], arg: Any, field: str, calls: int, fault: Fault) -> Any:
    """One async-generator step (`asend`/`athrow`/`aclose`), timed like `_step`."""
    acc = CURRENT.get()
    if acc is None:
        return await (method() if arg is _NOARG else method(arg))
    var = marker_var(field)
    mark = var.get()
    if mark[1] and mark[0] is acc:
        return await (method() if arg is _NOARG else method(arg))
    mark = [acc, True]
    var.set(mark)
    t0 = time.perf_counter()
    try:
        return await (method() if arg is _NOARG else method(arg))
    finally:
        t1 = time.perf_counter()
        mark[1] = False
        try:
            acc.add(field, t1 - t0, calls, t0)
        except Exception as err:
            with contextlib.suppress(Exception):
                fault(err)


# --------------------------------------------------------------------------------------------- scopes


def _sync_scope(open_scope: Callable[[], Any], close_scope: Callable[..., None]) -> Callable[..., Any]:
    def scope(wrapped: Any, instance: Any, args: Tuple[Any, ...], kwargs: dict) -> Any:
        state = open_scope()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            close_scope(state, None, exc)
            raise
        close_scope(state, result, None)
        return result

    return scope


def _coroutine_scope(open_scope: Callable[[], Any], close_scope: Callable[..., None]) -> Callable[..., Any]:
    async def scope(wrapped: Any, instance: Any, args: Tuple[Any, ...], kwargs: dict) -> Any:
        state = open_scope()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            close_scope(state, None, exc)
            raise
        close_scope(state, result, None)
        return result

    return scope


# --------------------------------------------------------------------------------------------- building

_STAGES = {SYNC: _sync_stage, COROUTINE: _coroutine_stage, GENERATOR: _generator_stage, ASYNCGEN: _asyncgen_stage}
_SCOPES = {SYNC: _sync_scope, COROUTINE: _coroutine_scope}


def _wrap(
    fn: Any, wrapper: Callable[..., Any], mark: Tuple[str, Optional[str], str], enabled: Any = None
) -> TimedWrapper:
    proxy = TimedWrapper(fn, wrapper, enabled)
    proxy._self_autoinstrument = mark  # a `_self_` name: kept on the proxy itself, never set on `fn`
    return proxy


def stage_wrapper(fn: Any, field: str, fault: Fault) -> TimedWrapper:
    """`fn` adding its duration (active time for generators) to `field` of the innermost scope."""
    kind = kind_of(fn)
    # Out of a scope a sync or coroutine stage has nothing to do: wrapt's `enabled` (CURRENT.get, a C call:
    # None outside a scope) makes the FunctionWrapper call the target itself, no Python frame of ours at all.
    # Generator steps check the scope at each step (a generator may be resumed inside one), so they always run.
    enabled = CURRENT.get if kind in (SYNC, COROUTINE) else None
    return _wrap(fn, _STAGES[kind](field, fault), ("stage", field, kind), enabled)


def scope_wrapper(fn: Any, open_scope: Callable[[], Any], close_scope: Callable[..., None]) -> TimedWrapper:
    """`fn` opening a scope around each call (sync or async only: a generator cannot hold a scope open)."""
    kind = kind_of(fn)
    if kind not in _SCOPES:
        raise UnsupportedTarget(f"a scope must be a plain or async function, not a {kind} function")
    return _wrap(fn, _SCOPES[kind](open_scope, close_scope), ("scope", None, kind))


GATE_MARK = "__autoinstrument_gate__"  # in the gate closure's __dict__: ("log_gate", None, kind)


def gate_wrapper(fn: Any, make_gate: Callable[[Any], Callable[..., Any]]) -> Callable[..., Any]:
    """The manifest's log function behind the one-event-per-request gate: `make_gate(fn)` (the web part's
    `web.gate.gate`, a plain closure with `__wrapped__`), marked as ours; plain functions only."""
    kind = kind_of(fn)
    if kind != SYNC:
        raise UnsupportedTarget(f"the log function must be a plain function, not a {kind} function")
    gate = make_gate(fn)
    vars(gate)[GATE_MARK] = ("log_gate", None, kind)
    return gate


def is_ours(obj: Any) -> bool:
    """True for a wrapper made here (also inside a classmethod/staticmethod), or our log gate."""
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    return type(obj) is TimedWrapper or (type(obj) is FunctionType and GATE_MARK in obj.__dict__)
