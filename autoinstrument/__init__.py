"""autoinstrument: manifest-driven, import-time timing of an application, with no timing code in the app.

A YAML manifest (`telemetry.yaml`) names the app's callables: *stages* add their duration to an `_ms` field of
the innermost open *scope*; a scope emits ONE summary event through the app's own log function when it exits.
The manifest's `web:` section attaches a pure ASGI middleware to the named app (`autoinstrument.asgi`):
correlation id in and out, one event per request of a mapped route.
With `PUBLISHER_AUTOINSTRUMENT=1` the installed `autoinstrument.pth` calls `install()` at interpreter
start-up; unset, nothing of this package is even imported. Everything below is imported lazily so that `import
autoinstrument` stays cheap (no yaml, no wrapt).

    install(manifest=None)   wrap every target (now or when its module is imported); a second call is a no-op
    uninstall()              restore the exact original objects
    installed_targets()      {"wrapped", "late", "missing", "pending"} of the current install
    load_manifest(path=None) parse + validate a manifest; raises ManifestError naming file, line and key
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    from autoinstrument.manifest import Manifest

__all__ = ["install", "uninstall", "installed_targets", "load_manifest", "ManifestError", "ENV_ENABLE"]

ENV_ENABLE = "PUBLISHER_AUTOINSTRUMENT"


def install(manifest: Union[None, str, Manifest] = None) -> bool:
    """Install from a manifest path or object (default: $PUBLISHER_TELEMETRY_MANIFEST, else the shipped
    one)."""
    from autoinstrument.hooks import install as _install

    return _install(manifest)


def uninstall() -> int:
    """Undo every patch of the current install; returns how many were restored."""
    from autoinstrument.hooks import uninstall as _uninstall

    return _uninstall()


def installed_targets() -> Dict[str, List[str]]:
    from autoinstrument.hooks import installed_targets as _targets

    return _targets()


def load_manifest(path: Optional[str] = None) -> Manifest:
    from autoinstrument.manifest import load_manifest as _load

    return _load(path)


def __getattr__(name: str) -> Any:
    if name == "ManifestError":
        from autoinstrument.manifest import ManifestError

        return ManifestError
    raise AttributeError(f"module 'autoinstrument' has no attribute {name!r}")
