"""Who may call what: optional API credentials, the admin password, and the signed admin session cookie.

The earlier version's admin cookie was an unsigned "1" and its token check was not constant-time. Here:
- API auth (optional): `WEB_AUTH_TOKEN` (Bearer) and/or `WEB_AUTH_USER`/`WEB_AUTH_PASS` (Basic), compared with
  `hmac.compare_digest`.
- Admin: `web_admin_pw`. A login sets a cookie signed with itsdangerous' TimestampSigner; the server checks
  the signature AND its age on every admin request, so a forged, tampered or expired cookie is refused.
- The signing key is derived from the admin password with PBKDF2 (salted with `WEB_SESSION_SECRET` when set):
  changing the password invalidates every session, and a stolen cookie is no cheap oracle for the password.
- With no admin password configured the admin actions are closed (503), never open.
- A session is a random id live in the ledger (`SessionStore`, SQLite or PostgreSQL) and carried by the signed
  cookie; logout deletes it, so the logged-out cookie, however re-encoded, names no live session. Login
  attempts are checked and counted in one transaction there, so every worker and every restart sees them.
  Attempts count per client AND for the one admin account as a whole: rotating addresses or
  `X-Forwarded-For` buys no extra guesses.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, Mapping, Optional, Tuple

from itsdangerous import BadSignature, TimestampSigner

from publisher_v2.utils.logging import register_secret
from publisher_v2.utils.switches import is_on
from publisher_v2.web.errors import TooManyAttempts, Unauthorized
from publisher_v2.web.sessions import SessionStore

COOKIE_NAME = "pv2_admin"  # upstream's name, so its clients and proxies keep working
DEFAULT_COOKIE_TTL = 3600  # upstream's default
MIN_COOKIE_TTL = 60
MAX_COOKIE_TTL = 3600
_ADMIN_VALUE = "admin"
_SIGNER_SALT = "publisher_v2.web.admin-session"
_KDF_ITERATIONS = 200_000


def _clean(value: Optional[str]) -> Optional[str]:
    return value if value else None


def _ttl(raw: Optional[str]) -> int:
    """`WEB_ADMIN_COOKIE_TTL_SECONDS`, clamped to 60..3600; unparsable → the default."""
    try:
        value = int(str(raw).strip()) if raw not in (None, "") else DEFAULT_COOKIE_TTL
    except ValueError:
        value = DEFAULT_COOKIE_TTL
    return max(MIN_COOKIE_TTL, min(MAX_COOKIE_TTL, value))


@dataclass(frozen=True)
class WebSettings:
    """The web app's auth settings, read from the environment (and the ENV_PATH file)."""

    auth_token: Optional[str] = None
    auth_user: Optional[str] = None
    auth_pass: Optional[str] = None
    admin_password: Optional[str] = None
    session_secret: Optional[str] = None
    cookie_ttl_seconds: int = DEFAULT_COOKIE_TTL
    secure_cookies: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, Optional[str]]) -> WebSettings:
        settings = cls(
            auth_token=_clean(env.get("WEB_AUTH_TOKEN")),
            auth_user=_clean(env.get("WEB_AUTH_USER")),
            auth_pass=_clean(env.get("WEB_AUTH_PASS")),
            admin_password=_clean(env.get("web_admin_pw")) or _clean(env.get("WEB_ADMIN_PW")),
            session_secret=_clean(env.get("WEB_SESSION_SECRET")),
            cookie_ttl_seconds=_ttl(env.get("WEB_ADMIN_COOKIE_TTL_SECONDS")),
            secure_cookies=is_on(env.get("WEB_SECURE_COOKIES")),
        )
        for secret in (
            settings.auth_token,
            settings.auth_pass,
            settings.admin_password,
            settings.session_secret,
        ):
            register_secret(secret)  # never in a log line, whatever logs it
        return settings

    @property
    def api_auth_enabled(self) -> bool:
        return bool(self.auth_token or (self.auth_user and self.auth_pass))


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_api_auth(settings: WebSettings, authorization: Optional[str]) -> None:
    """Raise Unauthorized (with a WWW-Authenticate challenge) unless `authorization` has valid credentials.

    No API credentials configured → everything passes.
    """
    if not settings.api_auth_enabled:
        return
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if settings.auth_token and scheme == "bearer" and _same(credentials, settings.auth_token):
        return
    if settings.auth_user and settings.auth_pass and scheme == "basic":
        try:
            user, sep, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, sep, password = "", "", ""
        # Both comparisons always run: the response time does not tell which half was wrong.
        user_ok = _same(user, settings.auth_user)
        pass_ok = _same(password, settings.auth_pass)
        if sep and user_ok and pass_ok:
            return
    challenges = []
    if settings.auth_token:
        challenges.append('Bearer realm="publisher_v2"')
    if settings.auth_user and settings.auth_pass:
        challenges.append('Basic realm="publisher_v2", charset="UTF-8"')
    raise Unauthorized("Authentication required", headers={"WWW-Authenticate": ", ".join(challenges)})


@functools.lru_cache(maxsize=8)
def _derive_key(password: str, secret: Optional[str]) -> bytes:
    """PBKDF2 once per (password, secret): slow on purpose, cached so it is paid once per process."""
    salt = (_SIGNER_SALT + "|" + (secret or "")).encode("utf-8")
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, _KDF_ITERATIONS)


class _Signer(TimestampSigner):
    """A TimestampSigner whose clock can be injected (tests move it past the TTL)."""

    def __init__(self, key: bytes, clock: Optional[Callable[[], int]]) -> None:
        super().__init__(key, salt=_SIGNER_SALT, digest_method=hashlib.sha256)
        self._clock = clock

    def get_timestamp(self) -> int:
        return self._clock() if self._clock is not None else super().get_timestamp()


class AdminSessions:
    """Checks the admin password; opens, verifies and ends server-side admin sessions.

    A session is a random id kept live in the shared store (`SessionStore`, the ledger); the cookie carries it,
    signed and time-stamped. A request is admin only when the cookie's signature and age check out AND the id
    read from its (signed) payload is still live in the store. Logout deletes the id, so every string that
    decodes to it, the issued cookie or any re-encoding of its signature, is refused from then on.
    """

    def __init__(
        self,
        settings: WebSettings,
        clock: Optional[Callable[[], int]] = None,
        store: Optional[SessionStore] = None,
    ) -> None:
        self.settings = settings
        self.ttl = settings.cookie_ttl_seconds
        #: Where live sessions are kept (shared by every worker); None: signature and age only (unit tests).
        self.store = store
        self._signer: Optional[_Signer] = None
        if settings.admin_password:
            self._signer = _Signer(_derive_key(settings.admin_password, settings.session_secret), clock)

    @property
    def configured(self) -> bool:
        return self._signer is not None

    def password_matches(self, candidate: str) -> bool:
        expected = self.settings.admin_password
        return expected is not None and _same(candidate, expected)

    def issue(self) -> str:
        """Open a new session and return its cookie value: "admin-<session id>", a timestamp and an HMAC.

        The id is random (128 bits) and live in the store until it expires or is logged out.
        """
        assert self._signer is not None, "issue() needs an admin password"
        session_id = secrets.token_urlsafe(16)
        if self.store is not None:
            self.store.open_session(session_id, datetime.now(timezone.utc) + timedelta(seconds=self.ttl))
        return self._signer.sign(f"{_ADMIN_VALUE}-{session_id}").decode("ascii")

    def session_id(self, cookie: Optional[str]) -> Optional[str]:
        """The session id a cookie this server signed (with the current password, less than `ttl` s ago)
        carries; None for anything else. The id comes from the signed payload, never from the cookie's text."""
        if self._signer is None or not cookie or len(cookie) > 512:
            return None
        try:
            value = self._signer.unsign(cookie, max_age=self.ttl)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        prefix, sep, session_id = value.decode("ascii", "replace").partition("-")
        if prefix != _ADMIN_VALUE or not sep or not session_id:
            return None
        return session_id

    def is_admin(self, cookie: Optional[str]) -> bool:
        """True only for a valid cookie whose session is live in the shared store."""
        session_id = self.session_id(cookie)
        if session_id is None:
            return False
        return self.store is None or self.store.session_live(session_id)

    def revoke(self, cookie: Optional[str]) -> bool:
        """End the cookie's session in every worker (logout). True when a live session ended."""
        session_id = self.session_id(cookie)
        if self.store is None or session_id is None:
            return False
        return self.store.close_session(session_id)

    def cookie_options(self) -> Dict[str, object]:
        """Keyword arguments for Response.set_cookie / delete_cookie."""
        return {
            "key": COOKIE_NAME,
            "path": "/",
            "httponly": True,
            "samesite": "lax",
            "secure": self.settings.secure_cookies,
        }


class LoginThrottle:
    """At most `max_failures` wrong passwords per `window`, per client AND for the admin account as a whole.

    Counted in the shared SQLite store, so the budget holds across workers and restarts; past it, 429 (with
    Retry-After) until the oldest failure ages out. The account-wide count is what makes rotating client
    addresses useless; its price is that a guessing attacker also locks the real admin out for the window.
    """

    ACCOUNT = "account"

    def __init__(
        self,
        store: SessionStore,
        max_failures: int = 10,
        window: timedelta = timedelta(minutes=5),
        clock: Optional[Callable[[], datetime]] = None,
    ) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window = window
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def _scopes(self, client: str) -> Tuple[str, str]:
        return (self.ACCOUNT, "client:" + client)

    def admit(self, client: str) -> str:
        """Count one login attempt, or raise TooManyAttempts (with Retry-After) while `client`, or the account,
        is over its budget. Checking and counting are ONE transaction in the shared store, so N workers
        admit exactly `max_failures` guesses between them. Returns the attempt's stamp for `succeeded`."""
        now = self._clock()
        admitted, oldest, stamp = self.store.admit_attempt(
            self._scopes(client), now - self.window, self.max_failures
        )
        if not admitted:
            retry = 1 if oldest is None else max(1, int((oldest + self.window - now).total_seconds()) + 1)
            raise TooManyAttempts("Too many failed logins; try again later", headers={"Retry-After": str(retry)})
        return stamp

    def succeeded(self, client: str, stamp: str) -> None:
        """The password was right: the attempt is not a failure, and the client's earlier failures are forgiven."""
        self.store.forget_attempt(self._scopes(client), stamp)
        self.store.forget_failures("client:" + client)
