"""A CLI run's histograms in node_exporter's textfile format, so a cron job's timings reach Prometheus too.

Written when the outermost scope of the process exits, atomically (prometheus_client's `write_to_textfile`
writes a temp file in the same folder, then `os.replace`s it: node_exporter never reads half a file). One file
per app (`autoinstrument-<log.logger>.prom`): each run replaces the previous run's numbers.
"""

from __future__ import annotations

import os
from re import compile as regex

from prometheus_client import write_to_textfile

_UNSAFE = regex(r"[^A-Za-z0-9._-]+")


def textfile_path(folder: str, logger: str) -> str:
    return os.path.join(folder, f"autoinstrument-{_UNSAFE.sub('_', logger) or 'app'}.prom")


def write(folder: str, logger: str, registry: object) -> str:
    """Write `registry` into the folder's file (made if missing); returns the path."""
    os.makedirs(folder, exist_ok=True)
    path = textfile_path(folder, logger)
    write_to_textfile(path, registry)  # type: ignore[arg-type]
    return path
