"""Load an INI file plus the environment into an ApplicationConfig.

Every failure, pydantic's included, becomes ONE ConfigurationError whose message names the file, the section and
the key, because an operator fixing a config needs exactly those three things.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from dotenv import dotenv_values, find_dotenv
from pydantic import ValidationError

from publisher_v2.config.preflight import raise_problems
from publisher_v2.config.schema import SECTIONS, ApplicationConfig, EmailConfig, Secrets
from publisher_v2.domain.errors import ConfigurationError
from publisher_v2.utils.db_url import check_postgres_url, url_secrets
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


#: A `;` after whitespace, or a `#` after whitespace and before whitespace or the end, starts an inline comment
#: in this project's own INI files; a `#word` stays (it is a hashtag).
_NATIVE_INLINE_COMMENT = re.compile(r"\s;.*$|\s#(?=\s|$).*$")


#: The longest value %-interpolation may produce (upstream's INI values are a few hundred characters at most).
MAX_INTERPOLATED = 64 * 1024
_REFERENCE = re.compile(r"%\(([^)]+)\)s")


class InterpolationTooLarge(configparser.Error):
    """A value whose %(name)s references would expand past MAX_INTERPOLATED characters."""

    def __init__(self, section: str, option: str, size: int) -> None:
        super().__init__(f"[{section}] {option}: expands to {size} characters")
        self.section, self.option, self.size = section, option, size


class BoundedInterpolation(configparser.BasicInterpolation):
    """Upstream's `%` interpolation, but a value that would expand past MAX_INTERPOLATED characters is refused
    BEFORE it is built: its size is first computed from the sizes of what it references (each option once),
    so seven lines that double each other cost microseconds, not seconds and hundreds of MiB."""

    def before_get(self, parser: Any, section: str, option: str, value: str, defaults: Any) -> str:
        size = self._size(parser, option, value, defaults, 1, {})
        if size > MAX_INTERPOLATED:
            raise InterpolationTooLarge(section, option, size)
        return str(super().before_get(parser, section, option, value, defaults))

    def _size(self, parser: Any, option: str, value: str, defaults: Any, depth: int, known: Dict[str, int]) -> int:
        """The length `value` expands to (an upper bound when it is malformed; the real expansion then fails
        with configparser's own error). Stops counting once past the bound."""
        if depth > configparser.MAX_INTERPOLATION_DEPTH:
            return 0  # configparser raises InterpolationDepthError itself
        size = len(value.replace("%%", "%"))
        for match in _REFERENCE.finditer(value):
            size -= len(match.group(0))
            name = parser.optionxform(match.group(1))
            if name not in known:
                known[name] = 0  # a reference cycle counts as empty here; configparser reports it
                raw = defaults.get(name)
                known[name] = 0 if raw is None else self._size(parser, name, raw, defaults, depth + 1, known)
            size += known[name]
            if size > MAX_INTERPOLATED:
                return size
        return size


def _parse(path: Path, text: str, parser: configparser.ConfigParser) -> configparser.ConfigParser:
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigurationError(_ini_syntax_error(path, exc)) from exc
    return parser


def _read_ini(path: Path) -> Tuple[configparser.ConfigParser, bool]:
    """The parsed INI and whether it is upstream-shaped (no [Storage] section, a [Dropbox] section).

    An upstream-shaped file is parsed exactly as upstream parsed it: inline `;`/`#` comments after whitespace
    (so `hashtag_string = #a #b` is empty there too) and `%` interpolation (`%%` is a literal `%`).
    """
    if not path.exists():
        raise ConfigurationError(f"{path}: configuration file not found")
    if not path.is_file():
        raise ConfigurationError(f"{path}: configuration path is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read configuration file ({exc})") from exc
    native = _parse(path, text, configparser.ConfigParser(interpolation=None))
    sections = {name.lower() for name in native.sections()}
    if "storage" not in sections and "dropbox" in sections:
        upstream = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=BoundedInterpolation())
        return _parse(path, text, upstream), True
    return native, False


def _section_values(
    parser: configparser.ConfigParser, section: str, upstream: bool, path: Path
) -> Dict[str, str]:
    """Keys (lower-case, as upstream matched them) and values of one section, inline comments removed."""
    values: Dict[str, str] = {}
    for key in parser.options(section):
        if upstream:
            try:
                value = parser.get(section, key)
            except InterpolationTooLarge:
                raise ConfigurationError(
                    f"{path}: [{section}] {key}: its %(name)s references expand to more than {MAX_INTERPOLATED}"
                    " characters; write %% for a literal %"
                ) from None
            except configparser.InterpolationError:  # upstream refused a stray `%`; we keep it as written
                value = parser.get(section, key, raw=True)
        else:
            raw = parser.get(section, key)
            value = "\n".join(_NATIVE_INLINE_COMMENT.sub("", line) for line in raw.split("\n")).strip()
        values[key] = value
    return values


def find_env_file(env_path: Optional[Union[str, Path]]) -> Optional[Path]:
    """`env_path`, else a `.env` found from the working directory upwards (what upstream's load_dotenv did)."""
    if env_path is not None:
        return Path(env_path)
    found = find_dotenv(usecwd=True)
    return Path(found) if found else None


def _ini_syntax_error(path: Path, exc: configparser.Error) -> str:
    """`file:line: what is wrong`, because an operator fixing a syntax error needs the line."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"{path}:{exc.lineno}: not a valid INI file: {exc.line.strip()!r} comes before any [Section] header"
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        lineno, line = exc.errors[0]
        text = str(line).strip().strip("'\"").replace("\\n", "").strip()  # configparser stores repr(line)
        hint = "an unclosed [Section] header" if text.startswith("[") else "expected [Section] or key = value"
        return f"{path}:{lineno}: not a valid INI file: {text!r} is not a line of INI ({hint})"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"{path}:{exc.lineno}: not a valid INI file: [{exc.section}] {exc.option}: the key is set twice"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"{path}:{exc.lineno}: not a valid INI file: [{exc.section}]: the section appears twice"
    lineno = getattr(exc, "lineno", None)
    where = f"{path}:{lineno}" if lineno else str(path)
    return f"{where}: not a valid INI file ({exc.message.splitlines()[0]})"


def read_environment(env_path: Optional[Union[str, Path]], setting: Optional[str] = None) -> Dict[str, Optional[str]]:
    """The process environment over the `env_path` file, else a `.env` found upwards from the working directory
    (as upstream's load_dotenv did). The real environment wins. The CLI and the web app both read it here;
    `setting` names where a missing file was given (ENV_PATH) in the error."""
    merged: Dict[str, Optional[str]] = {}
    env_file = find_env_file(env_path)
    if env_file is not None:
        if not env_file.is_file():
            where = f" ({setting})" if setting else ""
            raise ConfigurationError(f"{env_file}: environment file not found{where}")
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
    """Read `config_file_path` (INI) and the environment (plus `env_path`, a .env file) into a validated config.

    Without `env_path`, a `.env` found from the working directory upwards is read, as upstream did.
    """
    path = Path(config_file_path)
    parser, upstream = _read_ini(path)
    env = read_environment(env_path)
    by_lower = {name.lower(): name for name in SECTIONS}
    values: Dict[str, Any] = {"config_path": path.resolve()}
    present = set()
    for section in parser.sections():
        canonical = by_lower.get(section.lower())
        if canonical is None:
            log_json(logger, logging.WARNING, "config_unknown_section", file=str(path), section=section)
            continue
        present.add(canonical)
        attr, model = SECTIONS[canonical]
        raw = _section_values(parser, section, upstream, path)
        for key, value in raw.items():  # a password inside a URL setting (`base_url = https://u:pw@proxy/`)
            if key.endswith("url") and "@" in value:
                for secret in url_secrets(value):
                    register_secret(secret)
        if canonical == "Email":
            _email_environment(raw, env, path)
        try:
            values[attr] = model.model_validate(raw)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc.errors(), path, section)) from None
        unknown = sorted(set(raw) - set(model.model_fields))
        if unknown:
            log_json(
                logger, logging.WARNING, "config_unknown_keys", file=str(path), section=section, keys=unknown
            )
    if "Email" not in present:
        raw_email: Dict[str, str] = {}
        _email_environment(raw_email, env, path)
        if raw_email:
            values["email"] = EmailConfig.model_validate(raw_email)

    try:
        values["secrets"] = Secrets.model_validate({k: v for k, v in env.items() if v})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc.errors(), path, "environment")) from None
    config = ApplicationConfig(**values)
    if upstream:
        _apply_upstream_meaning(config, present, path)
    base = path.resolve().parent
    config.local.image_folder = _resolve(base, config.local.image_folder)
    config.publishing.outbox_folder = _resolve(base, config.publishing.outbox_folder)  # type: ignore[assignment]
    config.state.ledger_path = _resolve(base, config.state.ledger_path)  # type: ignore[assignment]
    _choose_ledger(config, env, path)
    _check_consistency(config, path, present if upstream else None)
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
    for secret in url_secrets(config.state.url):
        register_secret(secret)
    check_postgres_url(config.state.url, setting)


def _email_environment(raw: Dict[str, str], env: Mapping[str, Optional[str]], path: Path) -> None:
    """Upstream's order for the SMTP server and port: the INI key, then SMTP_SERVER / SMTP_PORT, then defaults."""
    server = (env.get("SMTP_SERVER") or "").strip()
    if server and not raw.get("smtp_server"):
        raw["smtp_server"] = server
    port = (env.get("SMTP_PORT") or "").strip()
    if port and not raw.get("smtp_port"):
        if not port.isdigit():
            raise ConfigurationError(
                f"{path}: [environment] SMTP_PORT: must be a port number (got {port!r}); "
                "it is used because [Email] smtp_port is not set"
            )
        raw["smtp_port"] = port


def _apply_upstream_meaning(config: ApplicationConfig, present: set, path: Path) -> None:
    """An upstream-shaped INI means what upstream ran: Dropbox, OpenAI, real publishing; a platform switched on
    without its section ([Instagram], [Email]) is off, as upstream silently made it."""
    config.storage.backend = "dropbox"
    if "AI" not in present:
        config.ai.backend = "openai"
    if "Publishing" not in present:
        config.publishing.backend = "live"
    for switch, section in (("instagram", "Instagram"), ("fetlife", "Email"), ("email", "Email")):
        if getattr(config.content, switch) and section not in present:
            setattr(config.content, switch, False)
            log_json(
                logger,
                logging.WARNING,
                "config_platform_disabled",
                file=str(path),
                section="Content",
                key=switch,
                reason=f"no [{section}] section (upstream disables the platform)",
            )


def _check_consistency(config: ApplicationConfig, path: Path, upstream_sections: Optional[set] = None) -> None:
    """Cross-section rules: a chosen backend needs its settings, an enabled live platform needs its secrets.

    `upstream_sections`: the sections of an upstream-shaped INI, whose backends were implied, not written; the
    messages then name the section the operator wrote and say why. Every problem is reported in ONE error, so
    going live takes one run to learn what is missing, not one run per setting.
    """
    problems: List[str] = []
    if config.storage.backend == "local" and config.local.image_folder is None:
        problems.append(f"{path}: [Local] image_folder: required when [Storage] backend = local")
    if config.storage.backend == "dropbox" and not config.dropbox.image_folder:
        problems.append(f"{path}: [Dropbox] image_folder: required when [Storage] backend = dropbox")
    needs = []
    implied = upstream_sections is not None
    if config.storage.backend == "dropbox":
        if implied:
            needs.append(("Dropbox", "(no [Storage] section: the library is on Dropbox, as upstream)", "dropbox"))
        else:
            needs.append(("Storage", "backend = dropbox", "dropbox"))
    if config.ai.backend == "openai":
        if implied and "AI" not in (upstream_sections or set()):
            needs.append(("openAI", "(no [AI] section in an upstream INI: OpenAI, as upstream)", "openai"))
        else:
            needs.append(("AI", "backend = openai", "openai"))
    if config.publishing.backend == "live":
        for platform in config.enabled_platforms():
            needs.append(
                ("Content", f"{'fetlife/email' if platform == 'email' else platform} = true", platform)
            )
    for section, reason, what in needs:
        missing = [name for name in REQUIRED_SECRETS[what] if getattr(config.secrets, name) is None]
        if missing:
            problems.append(
                f"{path}: [{section}] {reason} needs the environment variable(s) {', '.join(missing)}"
            )
    if config.publishing.backend == "live" and "email" in config.enabled_platforms():
        for key in ("sender", "recipient"):
            if not getattr(config.email, key):
                problems.append(f"{path}: [Email] {key}: required when email publishing is enabled")
    if (
        config.publishing.backend == "live"
        and "instagram" in config.enabled_platforms()
        and not config.instagram.user_id
    ):
        upstream_login = (
            " (upstream's instagrapi `name` login is not supported; see docs_v2/differences-from-upstream.md)"
        )
        problems.append(
            f"{path}: [Instagram] user_id: required when instagram publishing is enabled"
            + (upstream_login if implied and config.instagram.name else "")
        )
    live_instagram = config.publishing.backend == "live" and "instagram" in config.enabled_platforms()
    if live_instagram and config.storage.backend != "dropbox":
        # Meta downloads the image itself, so it needs the public link only remote storage can give.
        problems.append(
            f"{path}: [Content] instagram = true needs [Storage] backend = dropbox "
            "(Instagram fetches the image from a public URL)"
        )
    raise_problems(path, problems)
