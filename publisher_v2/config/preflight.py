"""Pre-flight: refuse a configuration that cannot lead to a publish, before any work is done.

The loader checks that each value is well formed; this checks that the run as asked can succeed at all. A run
that would select an image, pay for an analysis and write a sidecar only to fail with "no publisher is enabled"
or "[Errno 20] Not a directory" wastes money and leaves traces, so those are refused up front, naming the file,
the section and the key to fix. (A live platform without its secret is already refused by the loader.)
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Union

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.domain.errors import ConfigurationError

PLATFORM_KEYS = "telegram, instagram, email"


def raise_problems(path: Union[Path, str], problems: Sequence[str]) -> None:
    """Raise ONE ConfigurationError for every problem found (each `FILE: [Section] key: …`), so an operator
    learns everything a configuration lacks in one run. One problem keeps its own line; several are joined:
    `FILE: 3 settings to fix: [Storage] …; [AI] …; [Email] …`."""
    if not problems:
        return
    if len(problems) == 1:
        raise ConfigurationError(problems[0])
    prefix = f"{path}: "
    parts = [p[len(prefix) :] if p.startswith(prefix) else p for p in problems]
    raise ConfigurationError(f"{path}: {len(parts)} settings to fix: " + "; ".join(parts))


def _problem(config: ApplicationConfig, section: str, key: str, text: str) -> str:
    return f"{config.config_path}: [{section}] {key}: {text}"


def _blocking_ancestor(path: Path) -> Optional[Path]:
    """The nearest existing ancestor of `path` that is not a folder (a folder cannot be created under it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _check_folder(config: ApplicationConfig, section: str, key: str, path: Path, must_exist: bool) -> List[str]:
    if path.exists():
        return [] if path.is_dir() else [_problem(config, section, key, f"{path} is not a folder")]
    if must_exist:
        return [_problem(config, section, key, f"{path} does not exist")]
    blocker = _blocking_ancestor(path)
    if blocker is not None:
        return [_problem(config, section, key, f"{path} cannot be created: {blocker} is not a folder")]
    return []


def _check_file(config: ApplicationConfig, section: str, key: str, path: Path) -> List[str]:
    if path.exists() and path.is_dir():
        return [_problem(config, section, key, f"{path} is a folder, not a file")]
    if not path.exists():
        blocker = _blocking_ancestor(path)
        if blocker is not None:
            return [_problem(config, section, key, f"{path} cannot be created: {blocker} is not a folder")]
    return []


def preflight(config: ApplicationConfig, *, publishes: bool) -> None:
    """Raise ConfigurationError when this run cannot lead to a publish; `publishes` is False for dry runs.

    Checked: a platform is enabled (for a run that publishes), the local library is a folder, and the
    outbox folder and the ledger file can be written where the config puts them. Every problem is in the one
    error (see `raise_problems`).
    """
    problems: List[str] = []
    if publishes and not config.enabled_platforms():
        problems.append(
            _problem(
                config,
                "Content",
                PLATFORM_KEYS,
                "no platform is enabled, so nothing can be published (set one of them to true, "
                "or use --dry-publish / --preview)",
            )
        )
    if config.storage.backend == "local" and config.local.image_folder is not None:
        problems += _check_folder(config, "Local", "image_folder", config.local.image_folder, must_exist=True)
        archive = config.local.image_folder / config.local.archive
        if archive.is_symlink():  # posted images (and their sidecars) would leave the library
            problems.append(
                _problem(config, "Local", "archive", f"{archive} is a symbolic link; it must be a real folder")
            )
    if publishes and config.publishing.backend == "outbox":
        outbox = config.publishing.outbox_folder
        problems += _check_folder(config, "Publishing", "outbox_folder", outbox, must_exist=False)
    problems += _check_file(config, "State", "ledger_path", config.state.ledger_path)
    raise_problems(config.config_path, problems)
