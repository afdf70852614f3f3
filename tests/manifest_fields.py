"""The timing fields telemetry.yaml declares, read with autoinstrument's own manifest loader, so tests that
expect them in a real run never carry a copy of the list that could drift from the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

from autoinstrument.manifest.loader import load_manifest

TELEMETRY_YAML = Path(__file__).resolve().parent.parent / "telemetry.yaml"


def stage_fields(path: Path = TELEMETRY_YAML) -> Tuple[str, ...]:
    """Every stage field, once each, in the manifest's order (shared fields, e.g. both storages', appear once)."""
    return tuple(dict.fromkeys(stage.field for stage in load_manifest(str(path)).stages))


def scope_totals(path: Path = TELEMETRY_YAML) -> Tuple[str, ...]:
    """The total field of each scope (e.g. workflow_total_ms)."""
    return tuple(scope.total for scope in load_manifest(str(path)).scopes)


def platform_fields(path: Path = TELEMETRY_YAML) -> Tuple[str, ...]:
    """The per-platform publish fields (`<platform>_publish_ms`)."""
    return tuple(f for f in stage_fields(path) if f.endswith("_publish_ms"))
