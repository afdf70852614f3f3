"""`autoinstrument check`: resolve every target of a manifest WITHOUT running the app, naming the YAML line.

Why: a renamed method must fail CI, not silently drop a field at run time (the runtime can only report a
missing target as a fault event, long after the release). So this module does what `install()` would do up
to the point of patching: it loads the manifest with the same loader, imports each target's module, finds the
raw object with the same resolution as the hooks (`targets.find`: the class's MRO through `vars()`), refuses
what the hooks refuse (properties, cached_property, non-functions, a generator as a scope) and even builds the
wrapper closure, but never sets it on anything and never calls the target. Importing the modules is the only
side effect.

What it adds to the runtime's checks:
- base/subclass overlap: a stage on `Base.m` and another on `Child.m` whose `Child.m` is a different function
  (an override, which typically calls `super().m()`) with a DIFFERENT field: that time is counted in both
  fields. (The same field with `shared: true` is fine: a re-entered field is counted once.)
- a missing optional dependency: when a target's module file exists but imports a third-party module that is
  not installed (DropboxStorage without the `dropbox` extra), the target is `SKIP`ped with the reason; a
  module FILE that does not exist, or a missing module of the target's own package, is a `FAIL`.
- the `web:` section: the app's module imports and the app exists, as a module attribute or built lazily by a
  PEP 562 module `__getattr__` (then check does NOT build it: building an app may need its configuration,
  e.g. CONFIG_PATH); each route template is looked up among the app's routes when the app exists, else
  reported `SKIP` as unverified (`build_app=True` / `--build-app` builds it to verify).
- `log.function` must be callable, `log.correlation` a `contextvars.ContextVar`.

If the manifest is invalid, every problem the loader reports is a `FAIL` with its line, and the targets whose
lines are not at fault are still resolved, so one run shows everything.

Result lines (`render_text`): `OK   <line>  <target>  -> <field>  (<kind>)`, `SKIP <line>  <target>  -> <field>:
<reason>`, `FAIL <line>  <target>: <fault>`. Exit status (CLI): 0 when everything is OK or SKIP, 1 on any
FAIL, 2 when the manifest file cannot be read or the command line is wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import sys
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from autoinstrument.manifest import (
    TEMPLATE_PARAM_RE,
    Manifest,
    ManifestError,
    Problem,
    Ref,
    default_manifest_path,
    load_manifest,
    resolve_ref,
)

OK, SKIP, FAIL = "OK", "SKIP", "FAIL"


@dataclass
class Result:
    """One checked manifest entry. `detail` is the fault (FAIL) or the reason (SKIP) or a note (OK)."""

    status: str
    line: int
    target: str
    section: str  # scopes, stages, web.app, web.routes, log.function, log.correlation, manifest
    field: Optional[str] = None
    kind: Optional[str] = None
    detail: Optional[str] = None


@dataclass
class CheckReport:
    manifest: str
    results: List[Result]
    #: hints about what the manifest leads to, not faults (e.g. path parameters withheld without log.redact)
    notes: List[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(r.status == FAIL for r in self.results)

    def counts(self) -> Dict[str, int]:
        out = {OK: 0, SKIP: 0, FAIL: 0}
        for result in self.results:
            out[result.status] += 1
        return out


class _Skip(Exception):
    """The target cannot be checked here, for a reason that is not the manifest's fault."""


class _Fail(Exception):
    """The target cannot be wrapped: the manifest (or the code it names) is wrong."""


# --------------------------------------------------------------------------------------------- importing


def _import(module_name: str) -> Any:
    """Import `module_name`; _Fail for a missing module file or a broken import, _Skip for a missing
    third-party dependency of an existing module (an optional extra that is not installed)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _missing(exc, module_name) from None
    except BaseException as exc:  # SystemExit too: importing must not end the check
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _Fail(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from None


def _missing(exc: ModuleNotFoundError, module_name: str) -> Exception:
    missing = exc.name or ""
    if not missing or missing == module_name or module_name.startswith(missing + "."):
        return _Fail(f"module {module_name!r} not found" + (f" (no module {missing!r})" if missing else ""))
    if missing.split(".")[0] == module_name.split(".")[0]:
        return _Fail(f"module {module_name!r} imports {missing!r}, which does not exist")
    return _Skip(
        f"optional dependency {missing!r} is not installed (imported by {module_name!r}); "
        "install the extra that provides it to check this target"
    )


# --------------------------------------------------------------------------------------------- targets


@dataclass
class _Resolved:
    """What a target resolved to (for the overlap check)."""

    ref: Ref
    field: str
    owner: Any
    attr: str
    function: Any
    is_stage: bool


def _describe_owner(owner: Any) -> str:
    return getattr(owner, "__qualname__", None) or getattr(owner, "__name__", repr(owner))


def _resolve_target(ref: Ref, field: str, is_stage: bool) -> Tuple[Result, Optional[_Resolved]]:
    """Resolve and classify one scope/stage target exactly as `hooks._patch` would, without patching."""
    from autoinstrument.runtime import targets, wrappers

    section = "stages" if is_stage else "scopes"
    try:
        module = _import(ref.module)
        try:
            owner, attr, raw, inherited = targets.find(module, ref)
        except ModuleNotFoundError as exc:  # a lazy module __getattr__ importing an optional dependency
            raise _missing(exc, ref.module) from None
        except wrappers.UnsupportedTarget as exc:
            raise _Fail(str(exc)) from None
        except AttributeError as exc:
            raise _Fail(f"attribute not found: {exc}") from None
        raw = targets.unwrap_ours(raw)  # already wrapped by an install in this process: look through it
        parts: List[str] = []
        try:
            function, descriptor_type = targets.classify(raw)
        except wrappers.UnsupportedTarget as exc:
            raise _Fail(str(exc)) from None
        descriptor = descriptor_type.__name__ if descriptor_type is not None else None
        try:
            kind = wrappers.kind_of(function)
            # Build (and drop) the very wrapper install() would build: proves wrapt accepts it.
            if is_stage:
                wrappers.stage_wrapper(function, field, lambda err: None)
            else:
                wrappers.scope_wrapper(function, lambda: None, lambda *args: None)
        except wrappers.UnsupportedTarget as exc:
            raise _Fail(str(exc)) from None
        parts.append(kind)
        if descriptor:
            parts.append(descriptor)
        if inherited:
            defining = next(
                (k for k in inspect.getmro(owner) if ref.attr.rpartition(".")[2] in vars(k)), None
            )
            parts.append(f"inherited from {_describe_owner(defining)}" if defining else "inherited")
        result = Result(OK, ref.line, ref.text, section, field, ", ".join(parts))
        return result, _Resolved(ref, field, owner, attr, function, is_stage)
    except _Skip as exc:
        return Result(SKIP, ref.line, ref.text, section, field, None, str(exc)), None
    except _Fail as exc:
        return Result(FAIL, ref.line, ref.text, section, field, None, str(exc)), None
    except Exception as exc:  # anything unexpected in resolution is a fault of this target, not a crash
        return Result(FAIL, ref.line, ref.text, section, field, None, f"{type(exc).__name__}: {exc}"), None


def _overlaps(resolved: List[_Resolved], results: Dict[Tuple[int, str], Result]) -> None:
    """Base/subclass overlap: an override and its base method are both stages with different fields, so a
    call through `super()` is timed in both fields (the same shared field is counted once: not a fault)."""
    stages = [r for r in resolved if r.is_stage and inspect.isclass(r.owner)]
    for child in stages:
        for base in stages:
            if child is base or child.attr != base.attr or child.owner is base.owner:
                continue
            if not issubclass(child.owner, base.owner) or child.function is base.function:
                continue
            if child.field == base.field:
                continue
            result = results[(child.ref.line, child.ref.text)]
            result.status = FAIL
            result.detail = (
                f"overlaps {base.ref.text} (line {base.ref.line}): {_describe_owner(child.owner)}.{child.attr} "
                f"overrides it: if it calls super(), that time is counted in both {child.field} and {base.field}; "
                "list only one of them, or map both to one field with `shared: true`"
            )


# --------------------------------------------------------------------------------------------- log section


def _check_log(manifest: Manifest) -> List[Result]:
    out: List[Result] = []
    log = manifest.log
    what_of = {"log.function": "log function", "log.correlation": "correlation ContextVar",
               "log.redact": "redaction function (str -> str)"}
    for ref, section in ((log.function, "log.function"), (log.correlation, "log.correlation"),
                         (log.redact, "log.redact")):
        if ref is None:
            continue
        try:
            obj: Any = resolve_ref(ref, _import)
            if section != "log.correlation" and not callable(obj):
                raise _Fail(f"is a {type(obj).__name__}, not callable")
            if section == "log.correlation" and not isinstance(obj, ContextVar):
                raise _Fail(f"is a {type(obj).__name__}, not a contextvars.ContextVar")
            if section == "log.redact":
                probe = obj("autoinstrument-probe")
                if not isinstance(probe, str):
                    raise _Fail(f"returned a {type(probe).__name__} for a string; it must return a str")
            what = what_of[section]
            out.append(Result(OK, ref.line, ref.text, section, None, what))
        except _Skip as exc:
            out.append(Result(SKIP, ref.line, ref.text, section, None, None, str(exc)))
        except _Fail as exc:
            out.append(Result(FAIL, ref.line, ref.text, section, None, None, str(exc)))
        except Exception as exc:
            out.append(Result(FAIL, ref.line, ref.text, section, None, None, f"{type(exc).__name__}: {exc}"))
    return out


# --------------------------------------------------------------------------------------------- exporters

#: exporter -> (the module its extra provides, the pip extra to install)
EXTRAS = {
    "opentelemetry": ("opentelemetry.trace", "opentelemetry-api", "otel"),
    "prometheus": ("prometheus_client", "prometheus-client", "prometheus"),
}


def _importable(module: str) -> bool:
    """Whether `module` can be imported, found without importing it (its package is imported, nothing more)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _writable_folder(path: str) -> Optional[str]:
    """Why a CLI run could not write its textfile into `path` (None when it can): made at run time if missing,
    so its nearest existing parent must be writable."""
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def _check_exporters(manifest: Manifest) -> List[Result]:
    """Each enabled exporter: its extra importable; Prometheus' textfile folder writable."""
    out: List[Result] = []
    spec = manifest.exporters
    for name, sub in (("opentelemetry", spec.opentelemetry), ("prometheus", spec.prometheus)):
        if not sub.enabled:
            continue
        module, distribution, extra = EXTRAS[name]
        section = f"exporters.{name}"
        if _importable(module):
            out.append(Result(OK, sub.line, name, section, None, f"{module} importable"))
        else:
            out.append(Result(FAIL, sub.line, name, section, None, None,
                              f"{module} is not installed: pip install {distribution} (the `{extra}` extra), "
                              f"or turn exporters.{name}.enabled off"))
    prom = spec.prometheus
    if prom.enabled and prom.textfile_dir:
        why = _writable_folder(prom.textfile_dir)
        section = "exporters.prometheus.textfile_dir"
        if why is None:
            out.append(Result(OK, prom.textfile_line, prom.textfile_dir, section, None, "writable textfile folder"))
        else:
            out.append(Result(FAIL, prom.textfile_line, prom.textfile_dir, section, None, None,
                              f"a CLI run cannot write its textfile there: {why}"))
    return out


# --------------------------------------------------------------------------------------------- web section


def normalize_template(template: str) -> str:
    """`/a/{name:str}` and `/a/{name}` are the same route (`str` is Starlette's default converter)."""

    def one(match: Any) -> str:
        name, converter = match.group(1), match.group(2)
        return "{" + name + ("" if converter in (None, "str") else ":" + converter) + "}"

    return TEMPLATE_PARAM_RE.sub(one, template)


def app_routes(app: Any, prefix: str = "") -> Tuple[List[Tuple[str, Tuple[str, ...]]], int]:
    """(template, methods) of every HTTP route of a Starlette-style app, mounts and included routers too,
    read from `app.routes` without calling the app; plus how many route objects could not be read."""
    out: List[Tuple[str, Tuple[str, ...]]] = []
    unreadable = 0
    for route in getattr(app, "routes", None) or ():
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None)
        included = getattr(route, "original_router", None)  # FastAPI's lazily included router
        if isinstance(path, str) and methods:
            out.append((normalize_template(prefix + path), tuple(sorted(methods))))
        elif included is not None:
            inner = prefix + str(getattr(getattr(route, "include_context", None), "prefix", "") or "")
            found, bad = app_routes(included, inner)
            out.extend(found)
            unreadable += bad
        elif isinstance(path, str) and getattr(route, "routes", None):
            found, bad = app_routes(route, prefix + path.rstrip("/"))
            out.extend(found)
            unreadable += bad
        elif not isinstance(path, str):
            unreadable += 1  # e.g. a Host route: cannot tell which paths it serves
    return out, unreadable


def _check_web(manifest: Manifest, build_app: bool) -> List[Result]:
    web = manifest.web
    if web is None:
        return []
    ref = web.app
    out: List[Result] = []
    app: Any = None
    unverified: Optional[str] = None
    head, _, rest = ref.attr.partition(".")
    try:
        module = _import(ref.module)
        namespace = vars(module)
        if head in namespace:
            obj = namespace[head]
            note = "ASGI app, built at import"
        elif callable(namespace.get("__getattr__")):
            if not build_app:
                unverified = "unverified: the app is built lazily; --build-app builds it to verify the routes"
                out.append(
                    Result(
                        OK,
                        ref.line,
                        ref.text,
                        "web.app",
                        None,
                        "ASGI app, built lazily by the module's __getattr__; not built by check",
                    )
                )
                obj = None
            else:
                obj = _build(module, head)
                note = "ASGI app, built by --build-app"
        else:
            raise _Fail(f"module {ref.module!r} has no attribute {head!r} (and no module __getattr__ to build it)")
        if obj is not None:
            for part in rest.split(".") if rest else ():
                obj = getattr(obj, part)
            from autoinstrument.web.middleware import TelemetryMiddleware

            if isinstance(obj, TelemetryMiddleware):  # the app wraps itself: nothing to attach
                note += ", wrapped by the app in TelemetryMiddleware"
                obj = obj.app
                if getattr(obj, "routes", None) is None:
                    unverified = "unverified: a plain ASGI app declares no routes to compare with"
                    out.append(Result(OK, ref.line, ref.text, "web.app", None, note))
                    obj = None
            if obj is None:
                pass
            elif not callable(getattr(obj, "build_middleware_stack", None)) or not hasattr(obj, "middleware_stack"):
                raise _Fail(
                    f"is a {type(obj).__name__}, not a Starlette/FastAPI application (no build_middleware_stack): "
                    "the telemetry middleware cannot be attached (wrap it in autoinstrument.TelemetryMiddleware)"
                )
            else:
                app = obj
                out.append(Result(OK, ref.line, ref.text, "web.app", None, note))
    except _Skip as exc:
        out.append(Result(SKIP, ref.line, ref.text, "web.app", None, None, str(exc)))
        unverified = "unverified: the app could not be imported"
    except _Fail as exc:
        out.append(Result(FAIL, ref.line, ref.text, "web.app", None, None, str(exc)))
        unverified = "unverified: the app could not be resolved"
    except Exception as exc:
        out.append(Result(FAIL, ref.line, ref.text, "web.app", None, None, f"{type(exc).__name__}: {exc}"))
        unverified = "unverified: the app could not be resolved"

    routes, unreadable = app_routes(app) if app is not None else ([], 0)
    for route in web.routes:
        label = f"{route.method} {route.template}"
        if app is None:
            out.append(Result(SKIP, route.line, label, "web.routes", route.field, None, unverified))
            continue
        wanted = normalize_template(route.template)
        methods = [m for template, ms in routes if template == wanted for m in ms]
        if route.method in methods:
            kind = f"route, event {route.event} / {route.error_event}"
            out.append(Result(OK, route.line, label, "web.routes", route.field, kind))
        elif methods:
            out.append(
                Result(
                    FAIL,
                    route.line,
                    label,
                    "web.routes",
                    route.field,
                    None,
                    f"the app serves {route.template} only for {', '.join(sorted(set(methods)))}",
                )
            )
        elif unreadable:
            reason = f"unverified: not among the app's routes, but {unreadable} of its route objects cannot be read"
            out.append(Result(SKIP, route.line, label, "web.routes", route.field, None, reason))
        else:
            out.append(
                Result(FAIL, route.line, label, "web.routes", route.field, None, "no such route template in the app")
            )
    return out


def _build(module: Any, head: str) -> Any:
    try:
        return getattr(module, head)
    except AttributeError:
        message = f"module {module.__name__!r} has no attribute {head!r} (its __getattr__ does not build it)"
        raise _Fail(message) from None
    except BaseException as exc:  # the app may refuse to start with SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _Fail(f"building the app raised {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------------------------- the check


def _targets_of_invalid(path: str, problems: Sequence[Problem]) -> List[Tuple[Ref, str, bool]]:
    """Best effort for an invalid manifest: the scope/stage targets written correctly on lines without a
    problem, so they are still resolved. Nothing if the YAML itself cannot be read."""
    from autoinstrument.manifest.loader import parse_yaml
    from autoinstrument.manifest.validation import _Checker

    try:
        with open(path, encoding="utf-8") as handle:
            data = parse_yaml(handle.read(), path)
    except (OSError, ManifestError):
        return []
    if not isinstance(data, dict):
        return []
    bad_lines = {p.line for p in problems}
    quiet = _Checker(path)
    out: List[Tuple[Ref, str, bool]] = []
    for section, is_stage in (("scopes", False), ("stages", True)):
        mapping = data.get(section)
        if not isinstance(mapping, dict):
            continue
        for text, body in mapping.items():
            line = quiet.line_of(mapping, text)
            if line in bad_lines:
                continue
            ref = quiet.ref(text, line, section)
            if isinstance(body, dict):
                field = body.get("field") if is_stage else body.get("total")
            else:
                field = body if is_stage else None
            if ref is None or not isinstance(field, str):
                continue
            if isinstance(body, dict) and any(quiet.line_of(body, k) in bad_lines for k in body):
                continue
            out.append((ref, field, is_stage))
    return out


def _disarm() -> None:
    """Check must see the raw code: undo an install this interpreter may have done at start-up (the `.pth`
    with the start-up switch on), so no target is wrapped and no telemetry event is emitted."""
    hooks = sys.modules.get("autoinstrument.runtime.install")
    if hooks is not None and hooks.current() is not None:
        hooks.uninstall()


def run_check(path: Optional[str] = None, build_app: bool = False) -> CheckReport:
    """Check the manifest at `path` (default: the one install() would use). Raises ManifestError only when
    the file cannot be read; every other problem is a FAIL result."""
    path = os.fspath(path) if path is not None else default_manifest_path()
    _disarm()
    results: List[Result] = []
    try:
        manifest: Optional[Manifest] = load_manifest(path)
    except ManifestError as exc:
        if any(p.key == "(file)" for p in exc.problems):
            raise
        manifest = None
        for problem in exc.problems:
            results.append(Result(FAIL, problem.line, problem.key, "manifest", None, None, problem.message))
        targets = _targets_of_invalid(path, exc.problems)
    else:
        targets = [(s.target, s.total, False) for s in manifest.scopes]
        targets += [(s.target, s.field, True) for s in manifest.stages]
        results.extend(_check_log(manifest))
    resolved: List[_Resolved] = []
    by_key: Dict[Tuple[int, str], Result] = {}
    for ref, field, is_stage in targets:
        result, found = _resolve_target(ref, field, is_stage)
        if not is_stage and result.kind:
            scope = next((s for s in (manifest.scopes if manifest else ()) if s.target == ref), None)
            if scope is not None:
                result.kind += f", scope: event {scope.event}"
        results.append(result)
        by_key[(ref.line, ref.text)] = result
        if found is not None:
            resolved.append(found)
    _overlaps(resolved, by_key)
    if manifest is not None:
        results.extend(_check_web(manifest, build_app))
        results.extend(_check_exporters(manifest))
    results.sort(key=lambda r: (r.line, r.section))
    return CheckReport(path, results, _notes(manifest) if manifest is not None else [])


def _notes(manifest: Manifest) -> List[str]:
    """What a user would otherwise find out from the events: path parameters withheld without `log.redact`."""
    web, log = manifest.web, manifest.log
    if web is None or log.redact is not None:
        return []
    routes = [r for r in web.routes if TEMPLATE_PARAM_RE.search(r.template)]
    if not routes:
        return []
    first = routes[0]
    where = f"{first.method} {first.template} (line {first.line})" + (
        f" and {len(routes) - 1} more" if len(routes) > 1 else ""
    )
    when = "are" if log.function is None else "are, whenever the log function fails,"
    return [
        f"path parameters of {where} {when} written to stderr as '[N characters withheld: the manifest names "
        "no log.redact]': the stderr fallback writes no app string it cannot redact; name a str -> str "
        "function as log.redact to have them written redacted"
    ]


# --------------------------------------------------------------------------------------------- rendering


def render_line(result: Result) -> str:
    head = f"{result.status:<4} {result.line:>3}  {result.target}"
    if result.status == FAIL:
        return f"{head}: {result.detail}"
    arrow = f"  -> {result.field}" if result.field else ""
    if result.status == SKIP:
        return f"{head}{arrow}: {result.detail}"
    return f"{head}{arrow}  ({result.kind})" if result.kind else f"{head}{arrow}"


def render_text(report: CheckReport) -> str:
    counts = report.counts()
    lines = [f"autoinstrument check: {report.manifest}"]
    lines += [render_line(r) for r in report.results]
    lines += [f"note: {note}" for note in report.notes]
    lines.append(
        f"{len(report.results)} checked: {counts[OK]} ok, {counts[SKIP]} skipped, {counts[FAIL]} failed"
    )
    return "\n".join(lines) + "\n"


def to_json(report: CheckReport) -> Dict[str, Any]:
    return {
        "manifest": report.manifest,
        "ok": report.ok,
        "counts": {k.lower(): v for k, v in report.counts().items()},
        "results": [asdict(r) for r in report.results],
        "notes": report.notes,
    }


# --------------------------------------------------------------------------------------------- CLI


def build_parser(prog: str = "autoinstrument check") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Resolve every target of a telemetry manifest without running the app: one line per "
        "target (OK / SKIP / FAIL, with its YAML line). Exit: 0 all OK or SKIP, 1 any FAIL, 2 usage error.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest",
        nargs="?",
        metavar="MANIFEST",
        help="the manifest (default: $AUTOINSTRUMENT_MANIFEST, else ./telemetry.yaml)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of lines")
    parser.add_argument(
        "--build-app",
        action="store_true",
        help="build a lazily built web app (may need its configuration, e.g. CONFIG_PATH) to verify the routes",
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="prepend DIR to sys.path before importing targets (repeatable); the current directory is "
        "always searched, as with `python -m`",
    )


def run_from_args(args: argparse.Namespace, out: Any = None) -> int:
    out = out if out is not None else sys.stdout
    for directory in [os.getcwd()] + list(reversed(args.path)):
        directory = os.path.abspath(directory)
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        report = run_check(args.manifest, build_app=args.build_app)
    except ManifestError as exc:
        print(f"autoinstrument check: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out.write(json.dumps(to_json(report), indent=2) + "\n")
    else:
        out.write(render_text(report))
    return 0 if report.ok else 1


def main(argv: Optional[Iterable[str]] = None) -> int:
    """`autoinstrument check [MANIFEST] [--json] [--build-app] [--path DIR]`."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    return run_from_args(args)


__all__ = ["OK", "SKIP", "FAIL", "Result", "CheckReport", "run_check", "render_text", "to_json", "main"]
