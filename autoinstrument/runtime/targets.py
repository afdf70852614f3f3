"""Finding and classifying a manifest target: each decision in ONE function that install, check and report share.

- `find(module, ref)`: the owner, attribute and RAW object of `module:Owner.attr` (`wrapt.resolve_path`,
  never bound through getattr), with a plain-words error naming the missing part (never wrapt's text).
- `classify(raw)`: the function inside and its descriptor (classmethod/staticmethod), or why it cannot be
  timed (`wrappers.UnsupportedTarget`).
- `module_missing(name)`: why a module not imported yet will never import, found WITHOUT importing it
  (`importlib.util.find_spec` on the top-level package, and on a deeper module once its parent is imported).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from typing import Any, Optional, Tuple

from autoinstrument.manifest import Ref
from autoinstrument.runtime.wrappers import UnsupportedTarget, is_ours, timeable


class TargetMissing(AttributeError):
    """The manifest names an attribute its module or class does not have (the fault `target_missing`)."""


def find(module: Any, ref: Ref) -> Tuple[Any, str, Any, bool]:
    """(owner, attribute, raw object, inherited) for `module:Owner.attr`, through `wrapt.resolve_path` (a
    class's MRO read through `vars()`, so nothing is bound); AttributeError in plain words."""
    import wrapt

    try:
        owner, attr, raw = wrapt.resolve_path(module, ref.attr)
    except ImportError:  # a lazy module __getattr__ importing an optional dependency: the caller says so
        raise
    except Exception:  # wrapt's PathResolutionError (2.x) or AttributeError (1.x): say which part is missing
        raise TargetMissing(_missing(module, ref)) from None
    if inspect.isclass(owner):
        defining = next((k for k in inspect.getmro(owner) if attr in vars(k)), None)
        if defining is None:
            raise AttributeError(f"{attr!r} is served dynamically on {owner.__name__}; nothing to wrap")
        return owner, attr, raw, defining is not owner
    if inspect.ismodule(owner):
        if attr not in vars(owner):
            raise AttributeError(f"{attr!r} is served dynamically by {owner.__name__}; nothing to wrap")
        return owner, attr, raw, False
    raise UnsupportedTarget(f"{ref.text}: the owner is a {type(owner).__name__}, not a class or module")


def _missing(module: Any, ref: Ref) -> str:
    """Which part of `Owner.attr` is missing, and on what."""
    obj = module
    where = f"module {module.__name__!r}"
    for part in ref.attr.split("."):
        if inspect.isclass(obj):
            if not any(part in vars(k) for k in inspect.getmro(obj)):
                return f"class {obj.__qualname__} has no attribute {part!r}"
        elif not hasattr(obj, part):
            return f"{where} has no attribute {part!r}"
        obj = getattr(obj, part)
        where = f"{type(obj).__name__} {getattr(obj, '__qualname__', part)}"
    return f"{ref.text} not found"


def unwrap_ours(raw: Any) -> Any:
    """What one of our wrappers (possibly inside a classmethod/staticmethod) wraps; `raw` otherwise."""
    if not is_ours(raw):
        return raw
    if isinstance(raw, (classmethod, staticmethod)):
        return type(raw)(raw.__func__.__wrapped__)
    return raw.__wrapped__


def classify(raw: Any) -> Tuple[Any, Optional[type]]:
    """(function, descriptor type or None) for a timeable raw object; UnsupportedTarget says why not.

    Timeable: a Python function, a classmethod/staticmethod around one, or a function-like descriptor around
    one (`functools.lru_cache`, another library's wrapt wrapper). A property is refused here because wrapt
    would silently proxy its VALUE (turning the attribute into something else).
    """
    if isinstance(raw, (classmethod, staticmethod)):
        function = raw.__func__
        if not timeable(function):
            raise UnsupportedTarget(
                f"a {type(raw).__name__} around a {type(function).__name__}, not a Python function"
            )
        return function, type(raw)
    what = type(raw).__name__
    if isinstance(raw, property) or what == "cached_property":
        raise UnsupportedTarget(
            f"is a {what}; only functions, classmethods and staticmethods can be timed (wrapping it would "
            "turn the attribute into a method)"
        )
    if timeable(raw):
        return raw, None
    if callable(raw):
        raise UnsupportedTarget(
            f"is a {what} object, not a Python function; only functions, classmethods and staticmethods "
            "can be timed"
        )
    raise UnsupportedTarget(f"is a {what}, not callable; only functions, classmethods and staticmethods can be timed")


def module_missing(name: str) -> Optional[str]:
    """Why module `name` (not imported yet) will never import, without importing anything; None = may come.

    The top-level package is looked up at once (no import needed); a deeper module once its parent package
    has been imported by the app.
    """
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if prefix in sys.modules:
            continue
        parent = ".".join(parts[: depth - 1])
        if parent and parent not in sys.modules:
            return None  # cannot tell without importing the parent: still pending
        try:
            if importlib.util.find_spec(prefix) is None:
                if prefix == name:
                    return f"module {prefix!r} not found"
                return f"module {name!r} not found: there is no {prefix!r}"
        except Exception as exc:
            return f"module {prefix!r} cannot be looked up: {type(exc).__name__}"
        return None  # it exists; deeper parts are known once it is imported
    return None
