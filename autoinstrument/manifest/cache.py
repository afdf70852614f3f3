"""A small on-disk cache of what a manifest file yields, keyed by its path, mtime and size.

Why: an interpreter started with the switch must not parse YAML (or even import yaml) again and again for a
manifest that has not changed. `_bootstrap` keeps the watched module names here (marshal: no import needed);
`manifest.load_manifest` keeps the validated Manifest (pickle). A miss, a stale or unreadable entry is simply
recomputed; a failed write leaves no cache. The folder is `$XDG_CACHE_HOME/autoinstrument` (else
`~/.cache/autoinstrument`). Stdlib only, and light: this runs at interpreter start-up.
"""

import os
import sys
import zlib

VERSION = 3  # 3: Manifest.exporters


def _file(path, kind):
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    digest = zlib.crc32(path.encode("utf-8", "surrogatepass")) & 0xFFFFFFFF
    return os.path.join(base, "autoinstrument", f"manifest-{digest:08x}.{kind}")


def key(path):
    """What must not change for an entry to stay valid."""
    stat = os.stat(path)
    return (VERSION, path, stat.st_mtime_ns, stat.st_size, sys.version_info[:2])


def read(path, kind, loads):
    """The value stored for `path` (decoded with `loads`), or None on a miss or any doubt."""
    try:
        with open(_file(path, kind), "rb") as handle:
            stored_key, value = loads(handle.read())
        return value if stored_key == key(path) else None
    except Exception:
        return None


def write(path, kind, value, dumps):
    """Store `value` for `path` (encoded with `dumps`); never raises."""
    try:
        target = _file(path, kind)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = f"{target}.{os.getpid()}"
        with open(temporary, "wb") as handle:
            handle.write(dumps((key(path), value)))
        os.replace(temporary, target)
    except Exception:
        pass
