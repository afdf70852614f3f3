"""A PostgreSQL URL as the program shows it, checks it and learns its secrets: never a credential in any output.

A libpq URL carries its password in two places: the userinfo (`postgresql://user:PASSWORD@host/db`) and the
query (`?password=PASSWORD`, any letter case). `display_url` drops both; `url_secrets` returns both, for the
redaction registry; `check_postgres_url` refuses a URL that cannot be read unambiguously (an unencoded `#`, `?`,
`/` or `@` in the password moves part of it into the host, port or path) with a sentence that names the setting
and quotes no part of the value, since any part may be the password.
"""

from __future__ import annotations

from typing import List, Optional, Tuple
from urllib.parse import SplitResult, parse_qsl, quote, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

from publisher_v2.domain.errors import ConfigurationError

#: Query parameters whose value is a credential (libpq's names; compared in lower case).
SECRET_PARAMS = frozenset(("password", "sslpassword"))
UNPARSABLE = "<unparsable URL>"
_SCHEMES = ("postgresql", "postgres")
_ENCODE_HINT = "percent-encode any # ? / @ [ ] : % in the user name or password (e.g. # as %23)"


def _split(url: str) -> Optional[SplitResult]:
    """`url` split, or None when it cannot be read unambiguously (see the module docstring)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return None
    if "@" in parts.path + parts.query + parts.fragment:  # the userinfo was cut by an unencoded # ? or /
        return None
    return parts


def _query(parts: SplitResult) -> List[Tuple[str, str]]:
    return parse_qsl(parts.query, keep_blank_values=True)


def display_url(url: str) -> str:
    """`url` without any credential: scheme, user, host, port, path and the query minus its secret parameters.
    A URL that cannot be read unambiguously is shown as `<unparsable URL>` (no part of it)."""
    parts = _split(url)
    if parts is None:
        return UNPARSABLE
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host += f":{parts.port}"
    if parts.username:
        host = f"{quote(parts.username, safe='')}@{host}"
    query = urlencode([(k, v) for k, v in _query(parts) if k.lower() not in SECRET_PARAMS])
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def url_secrets(url: str) -> List[str]:
    """Every credential in `url` (userinfo password, secret query parameters), decoded and as written. An
    unreadable URL is cut as libpq would most likely read it: everything between `://` and the last `@`."""
    found = []
    rest = url.split("://", 1)[-1]
    if "@" in rest:
        userinfo = rest.rsplit("@", 1)[0]
        password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
        found += [password, unquote(password)] if _split(url) is not None else [userinfo, password]
    for raw in rest.replace("?", "&").replace("#", "&").split("&"):
        key, _, value = raw.partition("=")
        if key.lower() in SECRET_PARAMS:
            found += [value, unquote_plus(value)]
    return [s for s in dict.fromkeys(found) if s]


def check_postgres_url(url: str, setting: str) -> None:
    """A ConfigurationError naming `setting` (never any part of the value) unless `url` is a readable
    PostgreSQL URL naming a database."""
    parts = _split(url)
    if parts is None:
        raise ConfigurationError(f"{setting}: not a valid PostgreSQL URL; {_ENCODE_HINT}")
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(f"{setting}: expected a postgresql://user:password@host:port/database URL")
    if not parts.path.strip("/") and not any(k.lower() == "dbname" for k, _ in _query(parts)):
        raise ConfigurationError(f"{setting}: the PostgreSQL URL names no database ({display_url(url)})")
