"""autoinstrument: manifest-driven, import-time timing of an application, with no timing code in the app.

A YAML manifest (`telemetry.yaml`) names the app's callables: *stages* add their duration to an `_ms` field of
the innermost open *scope*; a scope emits ONE summary event through the app's own log function when it exits.
The manifest's `web:` section puts a pure ASGI middleware in front of the named app: correlation id in and
out, one event per request of a mapped route.

Public API (docs_v2/autoinstrument.md), everything imported lazily so that `import autoinstrument` stays cheap
(no yaml, no hooks, not even `typing`: the start-up hook imports this package in every interpreter):

    install(manifest=None)     wrap every target (now or when its module is imported); a second call is a no-op
    uninstall()                restore the exact original objects; returns how many
    installed_targets()        one record per target: target, state, kind, manifest line, reason
    load_manifest(path=None)   parse + validate; raises ManifestError naming file, line and key
    TelemetryMiddleware(app)   wrap any ASGI app by hand (FastAPI, Starlette, a raw ASGI callable)
    activate(...)              the start-up switch (what the .pth lines call)
    check.run_check(path)      resolve every target without running the app (`autoinstrument check`)
    report.main(argv)          statistics and budgets from JSON log lines (`autoinstrument report`)
    __version__                the library's own version (its distribution's metadata, else `_version.py`)
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, List, Optional, Union

    from autoinstrument.manifest import Manifest
    from autoinstrument.runtime.install import TargetRecord

__all__ = [
    "install",
    "uninstall",
    "installed_targets",
    "load_manifest",
    "activate",
    "ManifestError",
    "TelemetryMiddleware",
    "check",
    "report",
    "__version__",
    "ENV_ENABLE",
    "ENV_MANIFEST",
]

ENV_ENABLE = "AUTOINSTRUMENT"
ENV_MANIFEST = "AUTOINSTRUMENT_MANIFEST"


def install(manifest: Union[None, str, Manifest] = None) -> bool:
    """Install from a manifest path or object (default: $AUTOINSTRUMENT_MANIFEST, else ./telemetry.yaml)."""
    from autoinstrument.assembly import install as _install

    return _install(manifest)


def uninstall() -> int:
    """Undo every patch of the current install; returns how many were restored."""
    from autoinstrument.runtime.install import uninstall as _uninstall

    return _uninstall()


def installed_targets() -> List[TargetRecord]:
    """One record per target of the current install: target, state (wrapped, late, missing, pending), kind,
    manifest line, reason."""
    from autoinstrument.runtime.install import installed_targets as _targets

    return _targets()


def load_manifest(path: Optional[str] = None) -> Manifest:
    """Read and validate a manifest (default as for `install`)."""
    from autoinstrument.manifest import load_manifest as _load

    return _load(path)


def activate(
    enable_var: str = ENV_ENABLE, manifest_var: str = ENV_MANIFEST, default_manifest: Optional[str] = None
) -> bool:
    """Arm the start-up hook when `$enable_var` is on (an app's `.pth` line names its own switches)."""
    from autoinstrument._bootstrap import activate as _activate

    return _activate(enable_var, manifest_var, default_manifest)


def _own_version() -> str:
    """The library's own version: its distribution's metadata when installed alone (`autoinstrument`, built by
    packaging/autoinstrument/pyproject.toml), else the version that build reads (`_version.py`), as when the
    package runs bundled in another distribution (an app's wheel that ships it) or from a source checkout."""
    from importlib import metadata

    try:
        return metadata.version(__name__)
    except metadata.PackageNotFoundError:
        from autoinstrument._version import __version__ as version

        return version


def __getattr__(name: str) -> Any:
    if name == "ManifestError":
        from autoinstrument.manifest import ManifestError

        return ManifestError
    if name == "TelemetryMiddleware":
        from autoinstrument.web.middleware import TelemetryMiddleware

        return TelemetryMiddleware
    if name in ("check", "report"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    if name == "__version__":
        version = _own_version()
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module 'autoinstrument' has no attribute {name!r}")
