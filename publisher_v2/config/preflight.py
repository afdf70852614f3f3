"""Pre-flight: refuse a configuration that cannot lead to a publish, before any work is done.

The loader checks that each value is well formed; this checks that the run as asked can succeed at all. A run
that would select an image, pay for an analysis and write a sidecar only to fail with "no publisher is enabled"
or "[Errno 20] Not a directory" wastes money and leaves traces, so those are refused up front, naming the file,
the section and the key to fix. (A live platform without its secret is already refused by the loader.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.core.exceptions import ConfigurationError

PLATFORM_KEYS = "telegram, instagram, email"


def _problem(config: ApplicationConfig, section: str, key: str, text: str) -> ConfigurationError:
    return ConfigurationError(f"{config.config_path}: [{section}] {key}: {text}")


def _blocking_ancestor(path: Path) -> Optional[Path]:
    """The nearest existing ancestor of `path` that is not a folder (a folder cannot be created under it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _check_folder(config: ApplicationConfig, section: str, key: str, path: Path, must_exist: bool) -> None:
    if path.exists():
        if not path.is_dir():
            raise _problem(config, section, key, f"{path} is not a folder")
        return
    if must_exist:
        raise _problem(config, section, key, f"{path} does not exist")
    blocker = _blocking_ancestor(path)
    if blocker is not None:
        raise _problem(config, section, key, f"{path} cannot be created: {blocker} is not a folder")


def _check_file(config: ApplicationConfig, section: str, key: str, path: Path) -> None:
    if path.exists() and path.is_dir():
        raise _problem(config, section, key, f"{path} is a folder, not a file")
    if not path.exists():
        blocker = _blocking_ancestor(path)
        if blocker is not None:
            raise _problem(config, section, key, f"{path} cannot be created: {blocker} is not a folder")


def preflight(config: ApplicationConfig, *, publishes: bool) -> None:
    """Raise ConfigurationError when this run cannot lead to a publish; `publishes` is False for dry runs.

    Checked: a platform is enabled (for a run that publishes), the local library is a folder, and the
    outbox folder and the ledger file can be written where the config puts them.
    """
    if publishes and not config.enabled_platforms():
        raise _problem(
            config,
            "Content",
            PLATFORM_KEYS,
            "no platform is enabled, so nothing can be published (set one of them to true, "
            "or use --dry-publish / --preview)",
        )
    if config.storage.backend == "local" and config.local.image_folder is not None:
        _check_folder(config, "Local", "image_folder", config.local.image_folder, must_exist=True)
        archive = config.local.image_folder / config.local.archive
        if archive.is_symlink():  # posted images (and their sidecars) would leave the library
            raise _problem(config, "Local", "archive", f"{archive} is a symbolic link; it must be a real folder")
    if publishes and config.publishing.backend == "outbox":
        _check_folder(config, "Publishing", "outbox_folder", config.publishing.outbox_folder, must_exist=False)
    _check_file(config, "State", "ledger_path", config.state.ledger_path)
