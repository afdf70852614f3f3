"""The import hooks and the patch registry: find the target, decide how to wrap it, apply, remember, restore.

- Targets are wrapped by wrapt's post-import hooks (`wrapt.register_post_import_hook`) when their module is
  imported. A module already
  imported is wrapped at once and its targets are reported as "late" (a `from x import f` done before that
  keeps the original function).
- Resolution is `wrapt.resolve_path` (the class's MRO through `vars()`, `targets.find`), so we wrap the RAW
  object in a `wrapt.FunctionWrapper` (`wrappers.py`) and set it with `wrapt.apply_patch`: a
  classmethod/staticmethod is unwrapped to its `__func__`, wrapped, and re-wrapped in the same descriptor
  type. An inherited method is wrapped by setting the wrapper on the NAMED class only; `uninstall()` deletes
  it again. Properties and other non-functions are refused with a fault naming the manifest line.
- A registry of (owner, attribute) -> original makes a second install a no-op and lets `uninstall()` restore
  the exact original objects (`vars(cls)[name] is original`).
- The web app named by the manifest's `web.app` is hooked the same way; attaching the ASGI middleware to it
  is the web part's job (`WebPart`, plugged in by `autoinstrument.assembly`: the runtime never imports it).
- Nothing here may break the app: every hook body catches everything and reports a fault once.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import wrapt

from autoinstrument.manifest import Manifest, ManifestError, Ref, ScopeSpec, StageSpec, load_manifest, resolve_ref
from autoinstrument.runtime import targets, wrappers
from autoinstrument.runtime.emitter import Emitter, stderr_event
from autoinstrument.runtime.scope import ScopeRuntime

INSTALLED_EVENT = "autoinstrument_installed"


@dataclass
class Patch:
    owner: Any
    attr: str
    original: Any  # the raw object found (from the defining class's __dict__ or the module)
    installed: Any  # what we set on owner
    inherited: bool  # True: owner did not define attr itself; uninstall deletes it
    target: str
    kind: str
    late: bool


@dataclass(frozen=True)
class TargetRecord:
    """One manifest target in the current install (`installed_targets()`)."""

    target: str  # `module:Owner.attr` as written in the manifest
    state: str  # "wrapped", "late" (wrapped after its module was imported), "missing" or "pending"
    kind: str  # what was wrapped: "sync", "classmethod async", "asgi middleware"...; "" unless wrapped
    line: int  # the manifest line naming it
    reason: str = ""  # why it is missing
    inherited: bool = False  # wrapped on the named class, defined on a base


@dataclass(frozen=True)
class WebPart:
    """What the web part (`autoinstrument.web`, the floor above) plugs into an install, named here as two
    callables so that the runtime never imports it: `attach(state)` builds the app's attachment (on_import,
    describe, detach, report, late, problem, ref, telemetry); `gate()` returns the log gate's maker (the log
    function -> the function behind the gate)."""

    attach: Callable[[Any], Any]
    gate: Callable[[], Callable[[Any], Callable[..., Any]]]


class _State:
    def __init__(self, manifest: Manifest, emitter: Emitter, web_part: Optional[WebPart] = None):
        self.manifest = manifest
        self.web_part = web_part
        self.emitter = emitter
        self.patches: Dict[Tuple[int, str], Patch] = {}
        self.by_module: Dict[str, List[Union[ScopeSpec, StageSpec]]] = {}
        self.missing: Dict[str, str] = {}
        self.hooked_modules: set = set()
        self.installing = True
        self._correlation: Optional[ContextVar] = None
        self._correlation_resolved = False
        #: every stage field, pre-allocated in each scope's accumulator
        self.stage_fields = tuple(sorted({stage.field for stage in manifest.stages}))
        for spec in list(manifest.scopes) + list(manifest.stages):
            self.by_module.setdefault(spec.target.module, []).append(spec)
        #: the exporters' hub (export/hub.py), None when the manifest's exporters are off
        self.export: Any = None
        self._web: Any = None  # web.attachment.AppAttachment, built when first needed (see `web`)
        #: the log function, put behind the one-event-per-request gate (web/gate.py) when routes are mapped
        self.gate_ref: Optional[Ref] = None
        self.gate: Optional[Patch] = None
        if manifest.web is not None and manifest.web.routes and manifest.log.function is not None and web_part:
            self.gate_ref = manifest.log.function

    @property
    def web(self) -> Any:
        """The web attachment (None without a `web:` section or without a web part). Built on first use: the
        web modules are not even imported by a process (the CLI) that never imports the web app."""
        if self._web is None and self.manifest.web is not None and self.web_part is not None:
            self._web = self.web_part.attach(self)
        return self._web

    def modules(self) -> List[str]:
        """Every module to hook: those holding targets, and the web app's."""
        return self.manifest.watched_modules()

    def correlation_var(self) -> Optional[ContextVar]:
        """The app's ContextVar named by `log.correlation`, resolved on first use (None if unusable)."""
        if self._correlation_resolved:
            return self._correlation
        self._correlation_resolved = True
        ref = self.manifest.log.correlation
        if ref is None:
            return None
        try:
            var = _resolve_ref(ref)
            if not isinstance(var, ContextVar):
                raise TypeError(f"{ref.text} is a {type(var).__name__}, not a contextvars.ContextVar")
            self._correlation = var
        except Exception as exc:
            self.emitter.fault(
                "correlation_unusable", f"{type(exc).__name__}: {exc}", target=ref.text, line=ref.line
            )
        return self._correlation


_lock = threading.RLock()
_state: Optional[_State] = None
_atexit_registered = False


_resolve_ref = resolve_ref


# --------------------------------------------------------------------------------------------- install / unin


def install(
    manifest: Union[None, str, Manifest] = None,
    *,
    defer_report: bool = False,
    web: Optional[WebPart] = None,
    exporters: Optional[Callable[[Manifest, Callable[..., None]], Any]] = None,
) -> bool:
    """Wrap every target of the manifest (now, or when its module is imported). False if nothing was
    installed. `web` plugs in the web part (`autoinstrument.install` passes it); without it a `web:` section
    is reported as a fault and the rest is installed.

    A second call while installed is a no-op. A bad manifest is reported as a fault and installs nothing.
    """
    global _state, _atexit_registered
    with _lock:
        if _state is not None:
            return False
        try:
            loaded = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        except ManifestError as exc:
            for problem in exc.problems:
                stderr_event(
                    "autoinstrument_fault",
                    {
                        "fault": "manifest_invalid",
                        "detail": problem.message,
                        "manifest": problem.path,
                        "line": problem.line,
                        "key": problem.key,
                    },
                    logging.WARNING,
                )
            return False
        emitter = Emitter(loaded.log, defer=defer_report)
        state = _State(loaded, emitter, web)
        if exporters is not None:  # the exporters' hub (assembly.py builds it: the runtime never imports it)
            try:
                state.export = exporters(loaded, emitter.fault)
            except Exception as exc:
                emitter.fault("exporters_unavailable", f"{type(exc).__name__}: {exc}", manifest=loaded.path)
        if loaded.web is not None and web is None:
            emitter.fault(
                "web_unavailable", "installed without the web part: the web section is not applied",
                target=loaded.web.app.text, line=loaded.web.app.line, manifest=loaded.path,
            )
        _state = state
        try:
            hook = _hook_for(state)
            for module_name in state.modules():
                wrapt.register_post_import_hook(hook, module_name)
        except Exception as exc:  # nothing is wrapped, the app runs as is
            emitter.fault("hooks_unavailable", f"{type(exc).__name__}: {exc}")
        state.installing = False
        emitter.emit(INSTALLED_EVENT, _installed_fields)
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(_at_exit)
        return True


def uninstall() -> int:
    """Restore every original object; returns how many patches were undone. Pending hooks become inert."""
    global _state
    with _lock:
        state, _state = _state, None
        if state is None:
            return 0
        restored = 0
        for patch in state.patches.values():
            if _restore(patch, state):
                restored += 1
        if state.gate is not None and _restore(state.gate, state):
            restored += 1
        if state._web is not None:
            restored += state._web.detach()
        return restored


def current() -> Optional[_State]:
    return _state


def installed_targets() -> List[TargetRecord]:
    """What the current install did with each target: one record each (none when not installed)."""
    state = _state
    if state is None:
        return []
    return _records(state)


# --------------------------------------------------------------------------------------------- hooks


def _hook_for(state: _State) -> Any:
    """The post-import hook of one install: inert once that install is undone (wrapt keeps hooks forever)."""

    def hook(module: Any) -> None:
        if _state is state:
            _on_import(module, state)

    return hook


def _on_import(module: Any, state: _State) -> None:
    """The post-import hook. Must never raise: an exception here would fail the app's import."""
    try:
        name = getattr(module, "__name__", None)
        with _lock:
            if _state is not state:
                return
            web_spec = state.manifest.web
            web = state.web if web_spec is not None and web_spec.app.module == name else None
            gate = state.gate_ref is not None and state.gate_ref.module == name
            if name not in state.by_module and web is None and not gate:
                return
            if gate:
                _gate(state, module, late=state.installing)
            if name not in state.by_module and web is None:
                return
            state.hooked_modules.add(name)
            for spec in state.by_module.get(name, ()):
                _patch(state, spec, module, late=state.installing)
            if web is not None:
                try:
                    web.on_import(module, late=state.installing)
                except Exception as exc:
                    web.report(exc)
    except Exception as exc:  # pragma: no cover - _patch already isolates each target
        with contextlib.suppress(Exception):
            stderr_event(
                "autoinstrument_fault", {"fault": "hook_failed", "detail": repr(exc)}, logging.WARNING
            )


def _patch(state: _State, spec: Union[ScopeSpec, StageSpec], module: Any, late: bool) -> None:
    target = spec.target
    try:
        owner, attr, raw, inherited = _find(module, target)
        key = (id(owner), attr)
        existing = state.patches.get(key)
        if existing is not None and vars(owner).get(attr) is existing.installed:
            return  # already wrapped by this install
        if wrappers.is_ours(raw):
            # Inherited: the base class is listed too; time the subclass on its own, without nesting.
            # Not inherited: a stale wrapper of ours; wrap what it wraps, never a wrapper twice.
            raw = _unwrap_ours(raw)
        installed, kind = _make(state, spec, raw, target)
        wrapt.apply_patch(owner, attr, installed)
        state.patches[key] = Patch(owner, attr, raw, installed, inherited, target.text, kind, late)
        state.missing.pop(target.text, None)
    except Exception as exc:
        plain = isinstance(exc, (AttributeError, wrappers.UnsupportedTarget))
        reason = str(exc) if plain else f"{type(exc).__name__}: {exc}"
        state.missing[target.text] = reason
        state.emitter.fault(
            "target_missing" if isinstance(exc, targets.TargetMissing) else "target_unusable", reason,
            target=target.text, line=target.line, manifest=state.manifest.path
        )


def _gate(state: _State, module: Any, late: bool) -> None:
    """Put the manifest's log function behind the one-event-per-request gate (web/gate.py): a plain closure,
    set and restored like a target."""
    ref = state.gate_ref
    assert ref is not None
    try:
        owner, attr, raw, inherited = _find(module, ref)
        if wrappers.is_ours(raw):
            return
        assert state.web_part is not None  # gate_ref is set only with a web part
        installed = wrappers.gate_wrapper(raw, state.web_part.gate())
        wrapt.apply_patch(owner, attr, installed)
        state.gate = Patch(owner, attr, raw, installed, inherited, ref.text, "log gate", late)
    except Exception as exc:
        state.emitter.fault(
            "log_gate_unusable", f"{type(exc).__name__}: {exc}", target=ref.text, line=ref.line,
            manifest=state.manifest.path,
        )


_find = targets.find
_unwrap_ours = targets.unwrap_ours


def _make(state: _State, spec: Union[ScopeSpec, StageSpec], raw: Any, target: Ref) -> Tuple[Any, str]:
    """Build the installed object for `raw`: a wrapper, re-wrapped in raw's descriptor type when needed."""
    function, descriptor = targets.classify(raw)
    if isinstance(spec, StageSpec):
        field = spec.field
        wrapper = wrappers.stage_wrapper(
            function,
            field,
            lambda err: state.emitter.fault(
                "bookkeeping_error", f"{type(err).__name__}: {err}", target=target.text
            ),
        )
    else:
        runtime = ScopeRuntime(
            spec,
            state.emitter.emit,
            state.emitter.fault,
            state.correlation_var,
            on_open=state.emitter.ready,
            fields=state.stage_fields,
        )
        if state.export is not None:
            runtime.export = state.export
        wrapper = wrappers.scope_wrapper(function, runtime.open, runtime.close)
    kind = wrappers.kind_of(function)
    if descriptor is not None:
        kind = f"{descriptor.__name__} {kind}"
        return descriptor(wrapper), kind
    return wrapper, kind


def _restore(patch: Patch, state: _State) -> bool:
    try:
        current = vars(patch.owner).get(patch.attr)
        if current is not patch.installed:
            state.emitter.fault(
                "not_restored", "the attribute was replaced after we wrapped it", target=patch.target
            )
            return False
        if patch.inherited:
            delattr(patch.owner, patch.attr)
        else:
            setattr(patch.owner, patch.attr, patch.original)
        return True
    except Exception as exc:
        state.emitter.fault("not_restored", f"{type(exc).__name__}: {exc}", target=patch.target)
        return False


# --------------------------------------------------------------------------------------------- reporting


def _records(state: _State) -> List[TargetRecord]:
    """One record per manifest target (and the web app), in manifest order within each group."""
    lines = {ref.text: ref.line for ref in state.manifest.targets}
    records: List[TargetRecord] = []
    for patch in state.patches.values():
        records.append(
            TargetRecord(
                patch.target, "late" if patch.late else "wrapped", patch.kind, lines.get(patch.target, 0), "",
                patch.inherited,
            )
        )
    for target, reason in state.missing.items():
        records.append(TargetRecord(target, "missing", "", lines.get(target, 0), reason))
    done = {p.target for p in state.patches.values()} | set(state.missing)
    for module_name, specs in state.by_module.items():
        for spec in specs:
            text = spec.target.text
            if text in done:
                continue
            reason = _module_missing(module_name)
            records.append(TargetRecord(text, "missing" if reason else "pending", "", spec.target.line, reason or ""))
    if state.manifest.web is not None:
        app = state.manifest.web.app
        status, detail = state._web.describe() if state._web is not None else ("pending", "")
        if status == "pending":
            reason = _module_missing(app.module)
            if reason:
                status, detail = "missing", reason
        if status == "wrapped" and state._web.late:
            status = "late"
        kind = detail if status in ("wrapped", "late") else ""
        reason = detail if status == "missing" else ""
        records.append(TargetRecord(app.text, status, kind, app.line, reason))
    return records


def labels(records: List[TargetRecord]) -> Dict[str, List[str]]:
    """The records as labels (what `autoinstrument_installed` once listed in full): {"wrapped": ["mod:Cls.f (sync)"],
    "late": ["mod:Cls.f"], "missing": ["mod:g (why)"], "pending": ["mod:h"]} ("wrapped" includes the late)."""
    out: Dict[str, List[str]] = {"wrapped": [], "late": [], "missing": [], "pending": []}
    for record in records:
        if record.state in ("wrapped", "late"):
            out["wrapped"].append(f"{record.target} ({record.kind}{', inherited' if record.inherited else ''})")
            if record.state == "late":
                out["late"].append(record.target)
        elif record.state == "missing":
            out["missing"].append(f"{record.target} ({record.reason})")
        else:
            out["pending"].append(record.target)
    return out


_module_missing = targets.module_missing


def _report_missing(state: _State, records: List[TargetRecord]) -> None:
    """One fault per target that can never be wrapped because its module does not exist, naming its line."""
    for record in records:
        if record.state != "missing":
            continue
        web = state._web
        if record.target in state.missing or (web is not None and web.problem and record.target == web.ref.text):
            continue  # reported when it was found unusable
        state.emitter.fault(
            "target_missing",
            f"{record.reason}: manifest line {record.line} names {record.target}, which cannot be wrapped",
            target=record.target,
            line=record.line,
            manifest=state.manifest.path,
        )


def _installed_fields() -> Dict[str, Any]:
    state = _state
    if state is None:
        return {}
    records = _records(state)
    _report_missing(state, records)
    return summary(state.manifest.path, records)


def summary(manifest: str, records: List[TargetRecord]) -> Dict[str, Any]:
    """The `autoinstrument_installed` event: counts and the problems only, one short line (the full list is
    `installed_targets()` or `autoinstrument check`): {"manifest", "wrapped": n (the late ones included),
    "late": n, "pending": n, "missing": ["mod:g (why)"]}."""
    named = labels(records)
    return {"manifest": manifest, "wrapped": len(named["wrapped"]), "late": len(named["late"]),
            "pending": len(named["pending"]), "missing": named["missing"]}


def _at_exit() -> None:
    """Flush deferred events (faults, the installed report) if the app ran at all or something went wrong."""
    state = _state
    if state is None:
        return
    if not state.emitter.deferred:
        with contextlib.suppress(Exception):  # a module the app imported after the report may show a typo now
            _report_missing(state, _records(state))
        return
    if state.hooked_modules or state.missing:
        state.emitter.ready()
