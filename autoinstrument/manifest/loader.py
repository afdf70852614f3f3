"""Loading: read `telemetry.yaml` with the line of every key, refuse duplicate keys, validate, cache.

Why a custom loader: `yaml.safe_load` silently keeps the LAST of two equal keys (so a pasted stage line would
replace another without a word) and forgets line numbers, and an operator needs "telemetry.yaml:14: stages:
..." to fix a mistake. `_LineLoader` is a `SafeLoader` that builds `LineMapping` dicts carrying the line of each
key and refuses duplicate keys.

yaml is imported lazily: importing this module must stay cheap for `import autoinstrument`.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from autoinstrument.manifest import cache
from autoinstrument.manifest.model import (
    Budget,
    ExportersSpec,
    LineMapping,
    LogSpec,
    Manifest,
    ManifestError,
    OpenTelemetrySpec,
    Problem,
    PrometheusSpec,
    Ref,
    RouteSpec,
    ScopeSpec,
    StageSpec,
    WebSpec,
)
from autoinstrument.manifest.switches import manifest_path
from autoinstrument.manifest.validation import validate

_LOADER = None


def _loader_class():
    """Build the line-recording, duplicate-refusing SafeLoader once (imports yaml on first use)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class _LineLoader(yaml.SafeLoader):
        duplicates: List[Tuple[Any, int, int]]

        def construct_mapping(self, node, deep=False):
            self.flatten_mapping(node)
            mapping = LineMapping()
            mapping.line = node.start_mark.line + 1
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    hash(key)
                except TypeError:
                    key = repr(key)
                if key in mapping:
                    self.duplicates.append((key, mapping.key_lines[key], line))
                    continue
                mapping[key] = self.construct_object(value_node, deep=True)
                mapping.key_lines[key] = line
            return mapping

    _LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_mapping)
    _LOADER = _LineLoader
    return _LOADER


def parse_yaml(text: str, path: str) -> Any:
    """`yaml.safe_load` semantics, plus line numbers and a ManifestError on duplicate keys or bad YAML."""
    import yaml

    loader = _loader_class()(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ManifestError([Problem(path, line, "(yaml)", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ManifestError(
            [
                Problem(path, second, str(key), f"duplicate key (first written on line {first})")
                for key, first, second in loader.duplicates
            ]
        )
    return data



def default_manifest_path() -> str:
    """`$AUTOINSTRUMENT_MANIFEST`, else `telemetry.yaml` in the working directory (an app's start-up switch
    passes its own manifest explicitly; see `switches.manifest_path`, the one place this is decided)."""
    return manifest_path()


def load_manifest(path: Optional[str] = None) -> Manifest:
    """Read and validate a manifest file (default: see `default_manifest_path`). Raises ManifestError.

    A valid manifest is kept in the on-disk cache (`cache.py`, keyed by path, mtime and size), so the next
    interpreter does not import yaml to read the same file again."""
    path = os.fspath(path) if path is not None else default_manifest_path()
    import marshal

    absolute = os.path.abspath(path)
    plain = cache.read(absolute, "manifest", marshal.loads)
    if plain is not None:
        try:
            cached = _from_plain(plain)
            if isinstance(cached, Manifest) and cached.path == path:
                return cached
        except Exception:
            pass  # an entry of another shape: read the file again
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ManifestError(
            [Problem(str(path), 0, "(file)", f"cannot read the manifest: {exc.strerror or exc}")]
        ) from None
    manifest = validate(parse_yaml(text, path), path)
    cache.write(absolute, "manifest", _to_plain(manifest), marshal.dumps)
    return manifest


_PLAIN_TYPES: Dict[str, Any] = {}


def _to_plain(value: Any) -> Any:
    """A Manifest as marshal-able data (tuples, dicts, str, numbers): marshal needs no import at start-up."""
    if hasattr(value, "__dataclass_fields__"):
        name = type(value).__name__
        return ("@" + name, tuple(_to_plain(getattr(value, f)) for f in value.__dataclass_fields__))
    if isinstance(value, tuple):
        return ("()", tuple(_to_plain(v) for v in value))
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _from_plain(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        tag, items = value
        if tag == "()":
            return tuple(_from_plain(v) for v in items)
        if tag.startswith("@"):
            if not _PLAIN_TYPES:
                _PLAIN_TYPES.update(
                    (cls.__name__, cls)
                    for cls in (Manifest, LogSpec, StageSpec, ScopeSpec, RouteSpec, WebSpec, Budget, Ref,
                                ExportersSpec, OpenTelemetrySpec, PrometheusSpec)
                )
            return _PLAIN_TYPES[tag[1:]](*(_from_plain(v) for v in items))
    if isinstance(value, dict):
        return {k: _from_plain(v) for k, v in value.items()}
    return value


def loads_manifest(text: str, path: str = "<string>") -> Manifest:
    """Validate manifest text (tests and tools)."""
    return validate(parse_yaml(text, path), path)
