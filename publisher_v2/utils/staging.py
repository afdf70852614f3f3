"""Staging folders named after the process that builds them, and their removal once that process is gone.

A run killed with kill -9 cannot clean up after itself; the next run can, if it can tell a dead run's folder from
a live one's. The folder name carries the pid (`<prefix><pid>-<label><random>`), so this is one `kill(pid, 0)`
per folder, on this host. The hyphen never occurs in a `tempfile.mkdtemp` suffix, so a folder named some other
way (an older version's, another program's) never looks like ours. A folder older than a day is removed whatever
its pid says (pids are reused).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.staging")

#: Removed even when its pid is alive: by then the pid belongs to someone else.
MAX_AGE_SECONDS = 24 * 3600


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def make_staging(folder: Path, prefix: str, label: str = "") -> Path:
    """A new folder `folder/<prefix><pid>-<label><random>` for this process."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-{label}", dir=folder))


def remove_dead_staging(folder: Path, prefix: str) -> int:
    """Remove `folder/<prefix><pid>-*` folders whose process is gone; returns how many were removed."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    try:
        items = list(os.scandir(folder))
    except OSError:
        return 0
    removed = 0
    now = time.time()
    for item in items:
        match = pattern.match(item.name)
        if match is None or not item.is_dir(follow_symlinks=False):
            continue
        try:
            age = now - item.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if age > MAX_AGE_SECONDS or not pid_alive(int(match.group(1))):
            shutil.rmtree(item.path, ignore_errors=True)
            removed += 1
    if removed:
        log_json(logger, logging.WARNING, "staging_cleaned", folder=str(folder), prefix=prefix, removed=removed)
    return removed
