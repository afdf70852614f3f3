"""The wrappers: one plain closure per callable kind (sync, coroutine, generator, async generator).

Why plain closures and not `wrapt.FunctionWrapper`: the per-call budget. A FunctionWrapper costs ~0.44 us per
call before any timing work (C extension, CPython 3.11), about 4x hand-written inline timing, so it cannot
meet "in scope <= 3x hand-written overhead, out of scope <= 1x".

Why the wrapper is compiled with the target's exact parameter list: forwarding through `*args, **kwargs` costs
~180 ns per call on CPython 3.11 (tuple + dict building, no specialised call), more than the whole
out-of-scope budget. So `_signature` reads the target's code object and the wrapper is `def name(self, path,
*, limit)` calling `fn(self, path, limit=limit)`, with the original `__defaults__`/`__kwdefaults__` objects.
Anything unusual falls back to `*args, **kwargs`. The templates below are the whole runtime logic;
`functools.update_wrapper` then gives the wrapper the target's `__name__`, `__qualname__`, `__doc__`,
`__module__`, `__annotations__` and `__wrapped__`, so `inspect.signature` and `inspect.is*function` answer as
for the original.

Kinds are decided from the target when the wrapper is built (never from what a call returns): generator and
async-generator wrappers time the ACTIVE time of each `send`/`throw`/`close` step (`asend`/`athrow`/`aclose`),
hold the field's running marker (see `scope.py`) only inside a step, never across a `yield`,
and count one call per iteration.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import keyword
import linecache
import time
from typing import Any, Callable, Dict, Optional, Tuple

from autoinstrument.scope import CURRENT, marker_var

MARK = "__autoinstrument__"

SYNC, COROUTINE, GENERATOR, ASYNCGEN = "sync", "async", "generator", "async generator"

_CO_VARARGS = inspect.CO_VARARGS
_CO_VARKEYWORDS = inspect.CO_VARKEYWORDS
_CO_ITERABLE_COROUTINE = inspect.CO_ITERABLE_COROUTINE
_NOARG = object()


class UnsupportedTarget(TypeError):
    """The object cannot be timed (property, builtin, non-function...)."""


def kind_of(fn: Any) -> str:
    """The callable kind, decided once from the function itself (not from what a call returns)."""
    if not inspect.isfunction(fn):
        raise UnsupportedTarget(f"{type(fn).__name__} is not a Python function")
    if inspect.isasyncgenfunction(fn):
        return ASYNCGEN
    if inspect.isgeneratorfunction(fn):
        if fn.__code__.co_flags & _CO_ITERABLE_COROUTINE:
            raise UnsupportedTarget("a @types.coroutine generator cannot be timed")
        return GENERATOR
    if inspect.iscoroutinefunction(fn):
        return COROUTINE
    return SYNC


# --------------------------------------------------------------------------------------------- templates

# One template for plain and coroutine functions: `{def_}` is "def" or "async def", `{await_}` "" or "await ".
_STAGE_CALL = """
def __ai_make(_ai_fn, _ai_field, _ai_get, _ai_mget, _ai_mset, _ai_pc, _ai_fault):
    {def_} {name}({sig}):
        _ai_acc = _ai_get()
        if _ai_acc is None:
            return {await_}_ai_fn({call})
        _ai_mark = _ai_mget()
        if _ai_mark[1] and _ai_mark[0] is _ai_acc:
            return {await_}_ai_fn({call})
        _ai_mark = [_ai_acc, True]
        _ai_mset(_ai_mark)
        _ai_t0 = _ai_pc()
        try:
            return {await_}_ai_fn({call})
        finally:
            _ai_t1 = _ai_pc()
            _ai_mark[1] = False
            try:
                _ai_samples = _ai_acc.lists[_ai_field]
                _ai_samples.append(_ai_t1 - _ai_t0)
                if len(_ai_samples) > _ai_acc.limit:
                    _ai_acc.overflow(_ai_field, _ai_t1 - _ai_t0)
            except KeyError:
                _ai_acc.add(_ai_field, _ai_t1 - _ai_t0)
            except Exception as _ai_err:
                _ai_fault(_ai_err)
    return {name}
"""

_STAGE_SYNC = _STAGE_CALL.replace("{def_}", "def").replace("{await_}", "")
_STAGE_ASYNC = _STAGE_CALL.replace("{def_}", "async def").replace("{await_}", "await ")

_STAGE_GENERATOR = """
def __ai_make(_ai_fn, _ai_field, _ai_step, _ai_noarg):
    def {name}({sig}):
        _ai_gen = _ai_fn({call})
        try:
            _ai_value = _ai_step(_ai_gen.send, None, _ai_field, 1)
        except StopIteration as _ai_stop:
            return _ai_stop.value
        while True:
            try:
                _ai_sent = yield _ai_value
            except GeneratorExit:
                _ai_step(_ai_gen.close, _ai_noarg, _ai_field, 0)
                raise
            except BaseException as _ai_exc:
                try:
                    _ai_value = _ai_step(_ai_gen.throw, _ai_exc, _ai_field, 0)
                except StopIteration as _ai_stop:
                    return _ai_stop.value
            else:
                try:
                    _ai_value = _ai_step(_ai_gen.send, _ai_sent, _ai_field, 0)
                except StopIteration as _ai_stop:
                    return _ai_stop.value
    return {name}
"""

_STAGE_ASYNCGEN = """
def __ai_make(_ai_fn, _ai_field, _ai_step, _ai_noarg):
    async def {name}({sig}):
        _ai_agen = _ai_fn({call})
        try:
            _ai_value = await _ai_step(_ai_agen.asend, None, _ai_field, 1)
        except StopAsyncIteration:
            return
        while True:
            try:
                _ai_sent = yield _ai_value
            except GeneratorExit:
                await _ai_step(_ai_agen.aclose, _ai_noarg, _ai_field, 0)
                raise
            except BaseException as _ai_exc:
                try:
                    _ai_value = await _ai_step(_ai_agen.athrow, _ai_exc, _ai_field, 0)
                except StopAsyncIteration:
                    return
            else:
                try:
                    _ai_value = await _ai_step(_ai_agen.asend, _ai_sent, _ai_field, 0)
                except StopAsyncIteration:
                    return
    return {name}
"""

_SCOPE_SYNC = """
def __ai_make(_ai_fn, _ai_open, _ai_close):
    def {name}({sig}):
        _ai_state = _ai_open()
        try:
            _ai_result = _ai_fn({call})
        except BaseException as _ai_exc:
            _ai_close(_ai_state, None, _ai_exc)
            raise
        _ai_close(_ai_state, _ai_result, None)
        return _ai_result
    return {name}
"""

_SCOPE_ASYNC = """
def __ai_make(_ai_fn, _ai_open, _ai_close):
    async def {name}({sig}):
        _ai_state = _ai_open()
        try:
            _ai_result = await _ai_fn({call})
        except BaseException as _ai_exc:
            _ai_close(_ai_state, None, _ai_exc)
            raise
        _ai_close(_ai_state, _ai_result, None)
        return _ai_result
    return {name}
"""

_STAGE_TEMPLATES = {
    SYNC: _STAGE_SYNC,
    COROUTINE: _STAGE_ASYNC,
    GENERATOR: _STAGE_GENERATOR,
    ASYNCGEN: _STAGE_ASYNCGEN,
}
_SCOPE_TEMPLATES = {SYNC: _SCOPE_SYNC, COROUTINE: _SCOPE_ASYNC}


# --------------------------------------------------------------------------------------------- steps


def _step(method: Callable[..., Any], arg: Any, field: str, calls: int) -> Any:
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
            acc.add(field, t1 - t0, calls)
        except Exception as err:
            _report(err)


async def _astep(method: Callable[..., Any], arg: Any, field: str, calls: int) -> Any:
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
            acc.add(field, t1 - t0, calls)
        except Exception as err:
            _report(err)


_fault_sink: Optional[Callable[[BaseException], None]] = None


def _report(err: BaseException) -> None:
    sink = _fault_sink
    if sink is not None:
        with contextlib.suppress(Exception):
            sink(err)


def set_fault_sink(sink: Optional[Callable[[BaseException], None]]) -> None:
    """Where generator-step bookkeeping faults go (the installer's emitter)."""
    global _fault_sink
    _fault_sink = sink


# --------------------------------------------------------------------------------------------- building


def _signature(fn: Any) -> Optional[Tuple[str, str]]:
    """(parameter list, call arguments) mirroring `fn`'s code object, or None to fall back to
    *args/**kwargs."""
    code = fn.__code__
    names = code.co_varnames
    argc, posonly, kwonly = code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount
    positional = list(names[:argc])
    kwonly_names = list(names[argc : argc + kwonly])
    index = argc + kwonly
    varargs = varkw = None
    if code.co_flags & _CO_VARARGS:
        varargs = names[index]
        index += 1
    if code.co_flags & _CO_VARKEYWORDS:
        varkw = names[index]
    every = positional + kwonly_names + [n for n in (varargs, varkw) if n]
    for name in every:
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_ai_"):
            return None
    sig = []
    call = []
    for i, name in enumerate(positional):
        if posonly and i == posonly:
            sig.append("/")
        sig.append(name)
        call.append(name)
    if posonly and posonly == len(positional):
        sig.append("/")
    if varargs:
        sig.append("*" + varargs)
        call.append("*" + varargs)
    elif kwonly_names:
        sig.append("*")
    for name in kwonly_names:
        sig.append(name)
        call.append(f"{name}={name}")
    if varkw:
        sig.append("**" + varkw)
        call.append("**" + varkw)
    return ", ".join(sig), ", ".join(call)


_compiled: Dict[Tuple[str, str, str, str], Any] = {}


def _build(template: str, fn: Any, args: Tuple[Any, ...]) -> Any:
    """Compile `template` with `fn`'s parameter list, instantiate it with `args`, copy `fn`'s metadata."""
    mirrored = _signature(fn)
    sig, call = mirrored if mirrored is not None else ("*_ai_args, **_ai_kwargs", "*_ai_args, **_ai_kwargs")
    name = fn.__name__ if isinstance(fn.__name__, str) and fn.__name__.isidentifier() else "wrapper"
    if name.startswith("_ai_") or keyword.iskeyword(name):
        name = "wrapper"
    key = (template, name, sig, call)
    code = _compiled.get(key)
    if code is None:
        source = template.format(name=name, sig=sig, call=call)
        filename = f"<autoinstrument {name}({sig})>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec")
        _compiled[key] = code
    namespace: Dict[str, Any] = {}
    exec(code, namespace)
    wrapper = namespace["__ai_make"](*args)
    if mirrored is not None:
        wrapper.__defaults__ = fn.__defaults__
        wrapper.__kwdefaults__ = dict(fn.__kwdefaults__) if fn.__kwdefaults__ else None
    functools.update_wrapper(wrapper, fn)
    return wrapper


def stage_wrapper(fn: Any, field: str, fault: Callable[[BaseException], None]) -> Any:
    """A wrapper adding `fn`'s duration (active time for generators) to `field` of the innermost scope."""
    kind = kind_of(fn)
    if kind in (SYNC, COROUTINE):
        marker = marker_var(field)
        args: Tuple[Any, ...] = (fn, field, CURRENT.get, marker.get, marker.set, time.perf_counter, fault)
    elif kind == GENERATOR:
        args = (fn, field, _step, _NOARG)
    else:
        args = (fn, field, _astep, _NOARG)
    wrapper = _build(_STAGE_TEMPLATES[kind], fn, args)
    setattr(wrapper, MARK, ("stage", field, kind))
    return wrapper


def scope_wrapper(fn: Any, open_scope: Callable[[], Any], close_scope: Callable[..., None]) -> Any:
    """A wrapper opening a scope around `fn` (sync or async only: a generator cannot hold a scope open)."""
    kind = kind_of(fn)
    if kind not in _SCOPE_TEMPLATES:
        raise UnsupportedTarget(f"a scope must be a plain or async function, not a {kind} function")
    wrapper = _build(_SCOPE_TEMPLATES[kind], fn, (fn, open_scope, close_scope))
    setattr(wrapper, MARK, ("scope", None, kind))
    return wrapper


def is_ours(obj: Any) -> bool:
    """True for a wrapper made here (also inside a classmethod/staticmethod)."""
    inner = getattr(obj, "__func__", obj)
    try:
        return MARK in vars(inner)
    except TypeError:
        return False
