"""The manifest, the ground floor: what `telemetry.yaml` says, read and validated, with its lines.

- `model`: the typed objects (`Manifest`, `Ref`, the specs) and `ManifestError` naming file, line and key;
- `loader`: yaml with the line of every key and no silent duplicate, `load_manifest`, the on-disk cache;
- `validation`: every problem of a manifest at once;
- `switches`: the start-up switches and which manifest to read;
- `cache`: the on-disk cache keyed by path, mtime and size.

Imports nothing else of autoinstrument. The names below are loaded on first use (PEP 562), so that the start-up
trigger, which imports `switches` and `cache` in every interpreter with the switch on, pays for neither
dataclasses nor yaml.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - not even `typing` is imported at start-up
    from typing import Any

__all__ = [
    "ManifestError",
    "Problem",
    "Manifest",
    "LogSpec",
    "StageSpec",
    "ScopeSpec",
    "WebSpec",
    "RouteSpec",
    "Budget",
    "ExportersSpec",
    "OpenTelemetrySpec",
    "PrometheusSpec",
    "Ref",
    "load_manifest",
    "loads_manifest",
    "parse_yaml",
    "resolve_ref",
    "budget_limits",
    "PERCENTILES",
    "TEMPLATE_PARAM_RE",
    "default_manifest_path",
]

_LOADER_NAMES = ("load_manifest", "loads_manifest", "parse_yaml", "default_manifest_path")
_VALIDATION_NAMES = ("budget_limits", "TEMPLATE_PARAM_RE", "validate")


def __getattr__(name: str) -> "Any":
    if name in _LOADER_NAMES:
        from autoinstrument.manifest import loader

        return getattr(loader, name)
    if name in _VALIDATION_NAMES:
        from autoinstrument.manifest import validation

        return getattr(validation, name)
    if name in __all__:
        from autoinstrument.manifest import model

        return getattr(model, name)
    raise AttributeError(f"module 'autoinstrument.manifest' has no attribute {name!r}")
