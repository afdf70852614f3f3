"""What the report takes from a telemetry manifest: budgets, each event's total field, stage order, the stages
that run in parallel, event key.

Why through the manifest loader: it refuses duplicate keys and names the file, line and key of a mistake;
re-parsing the YAML here would silently keep the last of two equal keys. A `--budgets` file that is not a
whole manifest is read with the same line-aware YAML loader and the same budget rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from autoinstrument.report.budgets import normalize_budgets
from autoinstrument.report.decode import DEFAULT_EVENT_KEY
from autoinstrument.report.errors import BudgetError


@dataclass
class Settings:
    budgets: Dict[str, Dict[str, float]] = field(default_factory=dict)
    totals: Dict[str, str] = field(default_factory=dict)
    stage_order: List[str] = field(default_factory=list)
    total_order: List[str] = field(default_factory=list)
    event_key: str = DEFAULT_EVENT_KEY
    parallel: Dict[str, List[str]] = field(default_factory=dict)


def event_key_of(manifest: object) -> str:
    """The key holding the event name (`log.event_key` in the manifest), "message" when it says nothing."""
    for owner in (manifest, getattr(manifest, "log", None)):
        key = getattr(owner, "event_key", None)
        if isinstance(key, str) and key:
            return key
    return DEFAULT_EVENT_KEY


def manifest_settings(path: str) -> Settings:
    """Settings from a telemetry manifest, loaded and validated by the manifest's own loader.

    `totals` maps every event the manifest can emit to its exact total field: a scope's `event` and
    `error_event` to its `total`, a route's `event` and `error_event` to its `field`. Raises the loader's
    `ManifestError` (it names the file, line and key) when the file is not a valid manifest.
    """
    from autoinstrument.manifest import load_manifest

    manifest = load_manifest(path)
    totals: Dict[str, str] = {}
    for scope in manifest.scopes:
        totals[scope.event] = scope.total
        if scope.error_event:
            totals[scope.error_event] = scope.total
    for route in manifest.web.routes if manifest.web else ():
        totals[route.event] = route.field
        totals[route.error_event] = route.field
    stage_order: List[str] = []
    for stage in manifest.stages:
        if stage.field not in stage_order:
            stage_order.append(stage.field)
    budgets = {budget.field: dict(budget.limits) for budget in manifest.budgets}
    total_order: List[str] = []
    for name in [scope.total for scope in manifest.scopes] + [
        r.field for r in (manifest.web.routes if manifest.web else ())
    ]:
        if name not in total_order:
            total_order.append(name)
    return Settings(
        budgets=normalize_budgets(budgets, where=f"{path}: budgets"),
        totals=totals,
        stage_order=stage_order,
        total_order=total_order,
        event_key=event_key_of(manifest),
        parallel={outer: list(inner) for outer, inner in getattr(manifest, "parallel", {}).items()},
    )


def load_budgets(path: str) -> Dict[str, Dict[str, float]]:
    """The top-level `budgets:` mapping of any YAML file (a manifest works as is), by the manifest's rule."""
    from autoinstrument.manifest import ManifestError, parse_yaml

    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise BudgetError(f"{path}: cannot read the budgets file: {exc.strerror or exc}") from None
    try:
        data = parse_yaml(text, path)
    except ManifestError as exc:
        raise BudgetError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("budgets"), dict):
        raise BudgetError(f"{path}: no top-level `budgets:` mapping")
    return normalize_budgets(data["budgets"], where=f"{path}: budgets")


def settings(manifest: Optional[str], budgets: Optional[str]) -> Settings:
    """`--manifest`: a manifest, or an error. `--budgets`: a manifest when it is one, else any YAML with a
    top-level `budgets:` mapping."""
    from autoinstrument.manifest import ManifestError

    if manifest:
        try:
            return manifest_settings(manifest)
        except ManifestError as exc:
            raise BudgetError(f"not a valid manifest:\n{exc}") from None
    if budgets:
        try:
            return manifest_settings(budgets)
        except ManifestError:
            return Settings(budgets=load_budgets(budgets))
    return Settings()


__all__ = ["Settings", "event_key_of", "load_budgets", "manifest_settings", "settings"]
