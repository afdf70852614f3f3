"""Load an INI file plus the environment into an ApplicationConfig.

Every failure, pydantic's included, becomes ONE ConfigurationError whose message names the file, the section and
the key, because an operator fixing a config needs exactly those three things.
"""

from __future__ import annotations

import configparser
import logging
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import ValidationError

from publisher_v2.config.schema import SECTIONS, ApplicationConfig, Secrets
from publisher_v2.core.exceptions import ConfigurationError
from publisher_v2.utils.ledger_stores import check_postgres_url
from publisher_v2.utils.logging import log_json, register_secret

logger = logging.getLogger("publisher_v2.config")

#: Secrets each live platform / backend needs, as (environment variable, what it is for).
REQUIRED_SECRETS: Dict[str, tuple] = {
    "dropbox": ("DROPBOX_APP_KEY", "DROPBOX_APP_SECRET", "DROPBOX_REFRESH_TOKEN"),
    "openai": ("OPENAI_API_KEY",),
    "telegram": ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHANNEL_ID"),
    "email": ("EMAIL_PASSWORD",),
    "instagram": ("INSTA_PASSWORD",),
}


def _describe(errors: list, file: Path, section: str) -> str:
    parts = []
    for err in errors:
        key = ".".join(str(p) for p in err.get("loc", ())) or "?"
        value = err.get("input")
        shown = (
            f" (got {value!r})" if isinstance(value, (str, int, float)) and section != "environment" else ""
        )
        parts.append(f"[{section}] {key}: {err.get('msg', 'invalid')}{shown}")
    return f"{file}: " + "; ".join(parts)


def _read_ini(path: Path) -> configparser.ConfigParser:
    if not path.exists():
        raise ConfigurationError(f"{path}: configuration file not found")
    if not path.is_file():
        raise ConfigurationError(f"{path}: configuration path is not a file")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case as written
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read configuration file ({exc})") from exc
    except configparser.Error as exc:
        raise ConfigurationError(f"{path}: not a valid INI file ({exc.message.splitlines()[0]})") from exc
    return parser


def _environment(env_path: Optional[Union[str, Path]]) -> Mapping[str, Optional[str]]:
    merged: Dict[str, Optional[str]] = {}
    if env_path is not None:
        env_file = Path(env_path)
        if not env_file.is_file():
            raise ConfigurationError(f"{env_file}: environment file not found")
        merged.update(dotenv_values(env_file))
    merged.update(os.environ)  # the real environment wins over the file
    return merged


def _resolve(base: Path, path: Optional[Path]) -> Optional[Path]:
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def load_application_config(
    config_file_path: Union[str, Path], env_path: Optional[Union[str, Path]] = None
) -> ApplicationConfig:
    """Read `config_file_path` (INI) and the environment (plus `env_path`, a .env file) into a validated config."""
    path = Path(config_file_path)
    parser = _read_ini(path)
    by_lower = {name.lower(): name for name in SECTIONS}
    values: Dict[str, Any] = {"config_path": path.resolve()}
    for section in parser.sections():
        canonical = by_lower.get(section.lower())
        if canonical is None:
            log_json(logger, logging.WARNING, "config_unknown_section", file=str(path), section=section)
            continue
        attr, model = SECTIONS[canonical]
        raw = dict(parser.items(section))
        try:
            values[attr] = model.model_validate(raw)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc.errors(), path, section)) from None
        unknown = sorted(set(raw) - set(model.model_fields))
        if unknown:
            log_json(
                logger, logging.WARNING, "config_unknown_keys", file=str(path), section=section, keys=unknown
            )

    env = _environment(env_path)
    try:
        values["secrets"] = Secrets.model_validate({k: v for k, v in env.items() if v})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc.errors(), path, "environment")) from None
    config = ApplicationConfig(**values)
    base = path.resolve().parent
    config.local.image_folder = _resolve(base, config.local.image_folder)
    config.publishing.outbox_folder = _resolve(base, config.publishing.outbox_folder)  # type: ignore[assignment]
    config.state.ledger_path = _resolve(base, config.state.ledger_path)  # type: ignore[assignment]
    _choose_ledger(config, env, path)
    _check_consistency(config, path)
    for secret in config.secrets.model_dump().values():
        if secret is not None:
            register_secret(secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret))
    return config


def _choose_ledger(config: ApplicationConfig, env: Mapping[str, Optional[str]], path: Path) -> None:
    """[State] url, else DATABASE_URL, moves the ledger to PostgreSQL. The URL is checked here (its password
    registered for redaction); the server is first contacted when the ledger is used."""
    if config.state.url:
        setting = f"{path}: [State] url"
    elif env.get("DATABASE_URL"):
        config.state.url, setting = env["DATABASE_URL"], "environment DATABASE_URL"
    else:
        config.state.url = None
        return
    config.state._url_setting = setting
    register_secret(urlsplit(config.state.url).password if "://" in config.state.url else None)
    check_postgres_url(config.state.url, setting)


def _check_consistency(config: ApplicationConfig, path: Path) -> None:
    """Cross-section rules: a chosen backend needs its settings, an enabled live platform needs its secrets."""
    if config.storage.backend == "local" and config.local.image_folder is None:
        raise ConfigurationError(f"{path}: [Local] image_folder: required when [Storage] backend = local")
    if config.storage.backend == "dropbox" and not config.dropbox.image_folder:
        raise ConfigurationError(f"{path}: [Dropbox] image_folder: required when [Storage] backend = dropbox")
    needs = []
    if config.storage.backend == "dropbox":
        needs.append(("Storage", "backend = dropbox", "dropbox"))
    if config.ai.backend == "openai":
        needs.append(("AI", "backend = openai", "openai"))
    if config.publishing.backend == "live":
        for platform in config.enabled_platforms():
            needs.append(
                ("Content", f"{'fetlife/email' if platform == 'email' else platform} = true", platform)
            )
    for section, reason, what in needs:
        missing = [name for name in REQUIRED_SECRETS[what] if getattr(config.secrets, name) is None]
        if missing:
            raise ConfigurationError(
                f"{path}: [{section}] {reason} needs the environment variable(s) {', '.join(missing)}"
            )
    if config.publishing.backend == "live" and "email" in config.enabled_platforms():
        for key in ("sender", "recipient"):
            if not getattr(config.email, key):
                raise ConfigurationError(f"{path}: [Email] {key}: required when email publishing is enabled")
    if (
        config.publishing.backend == "live"
        and "instagram" in config.enabled_platforms()
        and not config.instagram.user_id
    ):
        raise ConfigurationError(
            f"{path}: [Instagram] user_id: required when instagram publishing is enabled"
        )
    live_instagram = config.publishing.backend == "live" and "instagram" in config.enabled_platforms()
    if live_instagram and config.storage.backend != "dropbox":
        # Meta downloads the image itself, so it needs the public link only remote storage can give.
        raise ConfigurationError(
            f"{path}: [Content] instagram = true needs [Storage] backend = dropbox "
            "(Instagram fetches the image from a public URL)"
        )
