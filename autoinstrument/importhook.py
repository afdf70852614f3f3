"""Post-import hooks: call `callback(module)` right after a named module is first imported (or at once if it
already is).

Why not wrapt's `register_post_import_hook`, which did this job before: importing wrapt imports asyncio and
importlib.metadata, tens of milliseconds in every process started with the switch on, for a job of a few dozen
lines. How: one meta path finder, first in `sys.meta_path`, answers only for a watched name: it asks the other
finders for the real spec (while it stands aside) and wraps the spec's loader so that `exec_module` runs the
real one, then the callbacks. The module gets the real loader back before its code runs, so introspection,
`importlib.reload` and pickling see the original. Callbacks are isolated: one that raises is reported to
`on_error` and never fails the app's import.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Set

Callback = Callable[[Any], None]

_lock = threading.RLock()
_hooks: Dict[str, List[Callback]] = {}
_aside: Set[str] = set()  # names being looked up by the other finders (we stand aside meanwhile)
on_error: Optional[Callable[[BaseException], None]] = None


def register(name: str, callback: Callback) -> None:
    """Call `callback(module)` once `name` is imported (now, if it already is)."""
    module = sys.modules.get(name)
    if module is not None:
        _call(callback, module)
        return
    with _lock:
        callbacks = _hooks.setdefault(name, [])
        if callback not in callbacks:
            callbacks.append(callback)
        if FINDER not in sys.meta_path:
            sys.meta_path.insert(0, FINDER)


def unregister(callback: Callback) -> None:
    """Forget every pending registration of `callback` (the finder leaves when nothing is watched)."""
    with _lock:
        for name in list(_hooks):
            _hooks[name] = [c for c in _hooks[name] if c is not callback]
            if not _hooks[name]:
                del _hooks[name]
        if not _hooks and FINDER in sys.meta_path:
            sys.meta_path.remove(FINDER)


def _call(callback: Callback, module: Any) -> None:
    try:
        callback(module)
    except Exception as exc:
        sink = on_error
        if sink is not None:
            with contextlib.suppress(Exception):
                sink(exc)


def _notify(module: Any) -> None:
    with _lock:
        callbacks = _hooks.pop(getattr(module, "__name__", ""), [])
    for callback in callbacks:
        _call(callback, module)


class _Loader:
    """The real loader, plus the callbacks after `exec_module`."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self.loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        self.loader.exec_module(module)
        _notify(sys.modules.get(module.__name__, module))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class PostImportFinder:
    """Finds nothing itself: for a watched name, the real spec with its loader wrapped."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _hooks or fullname in _aside:
            return None
        import importlib.util

        _aside.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            _aside.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader)
        return spec

    def invalidate_caches(self) -> None:
        pass


FINDER = PostImportFinder()
