"""Start-up activation: the `.pth` lines call `activate()`, which costs almost nothing until a target is imported.

Switches. The library's own `autoinstrument.pth` calls `activate()` when `AUTOINSTRUMENT` is on (`1`, `true`,
`yes`, `on`); the manifest is `$AUTOINSTRUMENT_MANIFEST`, else `./telemetry.yaml`. An app that wants its own
names ships its own one-line `.pth` calling `activate(enable_var, manifest_var, default_manifest)` (its aliases
and its default manifest: a path, or `package:file` found next to the package without importing it). With
no switch on, not even this module is imported.

Why it is light: the install imports its wrappers and hooks, and yaml is a parser; paying tens of ms
in EVERY interpreter started with the switch on (a shell tool, a pip run) is not acceptable. So `activate()`
only registers a tiny `sys.meta_path` finder (`_Trigger`) watching the top-level packages of the manifest's
modules; the real `install()` runs when the first of them is imported. Which modules to watch comes from a
cache keyed by the manifest's path, mtime and size (`$XDG_CACHE_HOME/autoinstrument/`); only a cache miss
parses the YAML here. Events of the install are deferred until the app runs (see `emitter.py`). Nothing may
escape from here: an exception in a `.pth` line would print a traceback in every interpreter.

Note: PEP 829 deprecates `import` lines in `.pth` files from Python 3.15 (with a long window), in favour of
`.start` entry points; when that lands this module is the one to name there.
"""

import marshal
import os
import sys

from autoinstrument.manifest import cache
from autoinstrument.manifest.switches import ENV_ENABLE, ENV_MANIFEST, enabled, manifest_path

_trigger = None  # the armed finder, if any
_started = False


def activate(enable_var=ENV_ENABLE, manifest_var=ENV_MANIFEST, default_manifest=None):
    """Arm the start-up hook if `enable_var` is on (a second call is a no-op). Returns True when armed."""
    global _trigger
    if not enabled(enable_var) or _trigger is not None or _started:
        return False
    try:
        path = os.path.abspath(manifest_path(manifest_var, default_manifest))
        modules = _watched(path)
        if modules is None:
            modules = _parse(path)
        if modules is None or any(name in sys.modules for name in modules):
            _start(path)  # a bad manifest (its fault is reported now), or a target's module already imported
            return True
        _trigger = _Trigger(path, modules)
        sys.meta_path.insert(0, _trigger)
        return True
    except BaseException as exc:  # pragma: no cover - last resort, must not break interpreter start-up
        _last_resort(exc)
        return False


class _Trigger:
    """A meta path finder that finds nothing: the first import of a watched package starts the install."""

    def __init__(self, path, modules):
        self.path = path
        self.modules = frozenset(modules)
        self.tops = frozenset(name.partition(".")[0] for name in modules)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in self.tops:
            return None
        _disarm()
        _start(self.path)
        if fullname in self.modules:
            # This very import holds a target: it started before the install's import hooks existed, so look
            # it up again through them (they are first in sys.meta_path now).
            import importlib.util

            return importlib.util.find_spec(fullname)
        return None

    def invalidate_caches(self):
        pass


def _disarm():
    global _trigger
    trigger, _trigger = _trigger, None
    if trigger is not None and trigger in sys.meta_path:
        sys.meta_path.remove(trigger)


def _start(path):
    """The real install (imports the hooks, and yaml on a cache miss), reported when the app runs. Never
    raises."""
    global _started
    _started = True
    try:
        import logging  # noqa: F401  (imported first so that logging's atexit flush runs after ours)

        from autoinstrument.assembly import install

        return install(path, defer_report=True)
    except BaseException as exc:  # pragma: no cover - last resort
        _last_resort(exc)
        return False


# --------------------------------------------------------------------------------------------- the cache


def _watched(path):
    """The modules the manifest at `path` hooks, from the cache (None on a miss)."""
    modules = cache.read(path, "modules", marshal.loads)
    return modules if isinstance(modules, tuple) else None


def _parse(path):
    """A cache miss: parse the manifest (imports yaml) and remember its modules. None if invalid."""
    from autoinstrument.manifest import ManifestError, load_manifest

    try:
        modules = tuple(load_manifest(path).watched_modules())
    except ManifestError:
        return None
    cache.write(path, "modules", modules, marshal.dumps)
    return modules


def _last_resort(exc):  # pragma: no cover - only when the library itself is broken
    try:
        import json

        sys.stderr.write(
            json.dumps(
                {
                    "level": "WARNING",
                    "logger": "autoinstrument",
                    "message": "autoinstrument_fault",
                    "fault": "bootstrap_failed",
                    "detail": type(exc).__name__,
                }
            )
            + "\n"
        )
    except BaseException:
        pass
