"""Secret redaction for everything that is logged or printed: `redact_text` is the one `str -> str` rule.

Two kinds of secrets are removed:
- shapes (OpenAI keys, Telegram bot tokens, Dropbox tokens, Authorization values, `password=`-style pairs);
- registered values (the configured secrets, the secret-named environment variables), also in the forms a
  secret takes on its way through URLs, protocols and logs: URL-encoded (once or twice), base64 (at any byte
  alignment, so a secret inside an encoded blob such as SMTP `AUTH PLAIN` is found), `\\xNN`-escaped, made a
  file name (every character outside `[A-Za-z0-9._-]` replaced by `_`), each of these also after
  URL-encoding, and in any letter case.

A part of a secret is a secret too: any run of `RUN` (12) or more characters of a registered value, in any of
the forms above (a peer echoing the first 22 characters of a token, a password's bytes inside a base64 blob), is
redacted. Every `RUN`-character window of every form is kept in a set; a text is first probed at every
`RUN // 2`-th position for a half-window (a run of `RUN` characters always covers one such aligned half), and
only on a probe hit is every window of the text looked up and the covered stretches replaced.

Why a gate before every regex: most logged strings are ids, names and numbers, so the usual call is a few
substring tests on one lower-cased copy; the regexes run only when a test hits.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from typing import Iterable, List, Mapping, Optional, Set, Tuple
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"

# Each pattern captures an optional prefix to keep (group "bot", "auth" or "kv") and the secret itself.
_SECRET_PATTERNS = re.compile(
    "|".join(
        [
            r"sk-(?:proj-)?[A-Za-z0-9_\-]{16,}",  # OpenAI keys
            r"(?P<bot>/bot)\d{5,}:[A-Za-z0-9_\-]{20,}",  # Telegram token inside api.telegram.org/bot<token>
            r"\b\d{5,}:[A-Za-z0-9_\-]{30,}\b",  # bare Telegram bot tokens
            r"\bsl\.[A-Za-z0-9_\-]{20,}",  # Dropbox short-lived access tokens
            r"(?P<auth>(?i:\b(?:bearer|basic)) )[A-Za-z0-9._~+/=\-]{8,}",  # Authorization header values
            r"(?P<kv>(?i:\b(?:password|passwd|refresh_token|access_token|client_secret|api_key)=))[^\s&\"']+",
        ]
    )
)
#: Environment variables whose value is a secret, by name (`OPENAI_API_KEY`, `EMAIL_PASSWORD`, `web_admin_pw`…).
SECRET_ENV_NAME = re.compile(r"(pass(word)?|passwd|secret|token|api_?key|app_?key|_pw)$", re.IGNORECASE)
#: Characters a value keeps when it is logged escaped (`\\xNN` for every other character).
_PLAIN_CHAR = re.compile(r"[A-Za-z0-9._~@+,() -]")
#: What a file-name sanitiser leaves of a value (every other character becomes `_`), e.g. in an outbox post id.
_SLUG_UNSAFE = (re.compile(r"[^A-Za-z0-9._-]"), re.compile(r"[^A-Za-z0-9._-]+"))
_MIN_FORM = 6  # an encoded fragment shorter than this would match ordinary text
#: A run of this many characters of a secret (in any form) is redacted wherever it appears.
RUN = 12
_HALF = RUN // 2


def _keep_prefix(match: re.Match) -> str:
    prefix = match.group("bot") or match.group("auth") or match.group("kv") or ""
    return prefix + REDACTED


def _may_hold_pattern(text: str) -> bool:
    """Every shape above needs one of these substrings (ids, names and numbers have none)."""
    return "sk-" in text or ":" in text or "=" in text or "sl." in text or " " in text


def _base64_cores(secret: bytes) -> List[str]:
    """The part of base64(anything + secret + anything) that depends on the secret alone, for each of the
    three byte alignments (standard and URL-safe alphabets)."""
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret).decode("ascii")
        skip = (0, 2, 3)[offset]  # characters still mixing in the bytes before the secret
        length = offset + len(secret)
        end = (length // 3) * 4 + length % 3  # the last group keeps only the characters the secret fills
        core = encoded[skip:end]
        if len(core) >= _MIN_FORM:
            cores.append(core)
            cores.append(core.replace("+", "-").replace("/", "_"))
    return cores


def _escape_char(ch: str) -> str:
    if _PLAIN_CHAR.fullmatch(ch):
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escaped(secret: str) -> str:
    """The form a value takes when a logger escapes it character by character (`!` -> `\\x21`)."""
    return "".join(_escape_char(ch) for ch in secret)


def _slugs(value: str) -> List[str]:
    """`value` as file-name sanitisers leave it (each unsafe character, or each run of them, made `_`)."""
    return [unsafe.sub("_", value).lower() for unsafe in _SLUG_UNSAFE]


_ANCHOR_RUN = re.compile(r"[a-z0-9._-]+")
_HEX_DASH = "0123456789abcdef-"
_UUID_CHARS = re.compile(r"[0-9a-f-]+")


def _anchor(secret: str) -> str:
    """The longest run of characters that every non-base64 form of `secret` keeps as they are (URL-encoding,
    escaping and file-name sanitising leave `[A-Za-z0-9._-]` alone): none of those forms can be in a text
    that lacks it."""
    return max(_ANCHOR_RUN.findall(secret.lower()), key=len, default="")


def _windows(forms: Iterable[str]) -> Set[str]:
    """Every RUN-character window of each of `forms`."""
    return {form[i : i + RUN] for form in forms for i in range(len(form) - RUN + 1)}


def _halves(windows: Iterable[str]) -> Set[str]:
    """Every _HALF-character piece of each window, lower-cased (what the probe looks up)."""
    return {w[i : i + _HALF].lower() for w in windows for i in range(RUN - _HALF + 1)}


#: The text cut into _HALF-character chunks at positions 0, _HALF, 2*_HALF… (in C, by the regex engine).
_CHUNKS = re.compile(f".{{{_HALF}}}", re.DOTALL)


class _Registry:
    """The registered secrets and their forms, replaced whole on each registration (readers never lock)."""

    def __init__(self) -> None:
        self.secrets: Tuple[str, ...] = ()
        #: per secret: (anchor, lower-cased forms: the secret, URL-encoded, escaped, file-name forms)
        self.groups: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
        self.base64: Tuple[str, ...] = ()  # case-sensitive base64 cores
        self.in_uuid: Tuple[str, ...] = ()  # forms of only hex digits and dashes (usually none)
        self.pattern: Optional[re.Pattern] = None
        self.runs: Set[str] = set()  # RUN-character windows of the lower-cased forms
        self.base64_runs: Set[str] = set()  # ... of the base64 cores (case-sensitive)
        self.halves: Set[str] = set()  # their _HALF-character pieces, lower-cased
        self.hex_runs = False  # whether a window is only hex digits and dashes (usually not)
        self.lock = threading.Lock()

    def add(self, value: str) -> None:
        with self.lock:
            if value in self.secrets:
                return
            secrets = tuple(sorted((*self.secrets, value), key=len, reverse=True))
            groups, everything, b64 = [], set(), set()
            for secret in secrets:
                forms = {secret.lower(), *_slugs(secret)}
                once = quote(secret, safe="")
                for form in (once, quote(once, safe=""), quote(secret), quote_plus(secret), _escaped(secret)):
                    if form != secret and len(form) >= _MIN_FORM:
                        forms.add(form.lower())
                        forms.add(_escaped(form).lower())  # ... then escaped
                        forms.update(_slugs(form))  # ... or made a file name
                groups.append((_anchor(secret), tuple(sorted(forms, key=len, reverse=True))))
                everything.update(forms)
                b64.update(_base64_cores(secret.encode("utf-8")))
            ordered = sorted(everything | b64, key=len, reverse=True)  # longest first: whole before part
            # Publish the pattern before the gates that lead to it (a reader never sees a gate without it).
            self.pattern = re.compile("|".join(re.escape(f) for f in ordered), re.IGNORECASE)
            self.runs, self.base64_runs = _windows(everything), _windows(b64)
            self.halves = _halves(self.runs | self.base64_runs)
            self.hex_runs = any(_UUID_CHARS.fullmatch(w) for w in self.runs | self.base64_runs)
            self.groups = tuple(groups)
            self.base64 = tuple(b64)
            self.in_uuid = tuple(f for f in everything | b64 if _UUID_CHARS.fullmatch(f))
            self.secrets = secrets
            global _clean
            _clean = set()  # last: what was found clean was checked against fewer secrets

    def hit(self, text: str) -> bool:
        if not self.secrets:
            return False
        if not text.strip(_HEX_DASH):  # only hex digits and dashes (ids, hashes): few forms can be inside
            return any(form in text for form in self.in_uuid)
        lowered = text.lower()
        for anchor, forms in self.groups:
            if anchor in lowered:
                for form in forms:
                    if form in lowered:
                        return True
        for form in self.base64:  # noqa: SIM110  # a loop: any() over a generator costs more per call
            if form in text:
                return True
        return False


_registry = _Registry()


def _lowered(text: str) -> str:
    """`text` lower-cased character by character, keeping every index (`str.lower` may lengthen a string)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


def _redact_runs(text: str, registry: _Registry) -> str:
    """`text` with every stretch covered by RUN-character windows of a registered form made `[REDACTED]`.

    A run of RUN characters always covers one chunk at a multiple of _HALF, so a text none of whose chunks is
    a half-window holds no run: that test is one regex split and one set operation, both in C. Only a text
    that passes it is looked up window by window."""
    lowered = _lowered(text)
    chunks = _CHUNKS.findall(lowered)
    halves = registry.halves
    if halves.isdisjoint(chunks):
        return text
    # Every window of a run covers a chunk that is a half-window: only the starts next to those are looked up.
    hits = [k * _HALF for k, chunk in enumerate(chunks) if chunk in halves]
    starts = sorted({i for at in hits for i in range(max(0, at - _HALF), at + 1)})
    runs, base64_runs = registry.runs, registry.base64_runs
    spans = [(i, i + RUN) for i in starts if lowered[i : i + RUN] in runs or text[i : i + RUN] in base64_runs]
    if not spans:
        return text
    merged = [list(spans[0])]
    for start, end in spans[1:]:  # in order of start
        if start <= merged[-1][1]:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    pieces, last = [], 0
    for start, end in merged:
        pieces += [text[last:start], REDACTED]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def register_secret(value: Optional[str]) -> None:
    """Redact this value, and its encoded and re-cased forms, wherever they appear from now on."""
    if value and len(value) >= 4:
        _registry.add(value)


_NOT_SECRETS = frozenset(("true", "false", "yes", "no", "none", "null", "on", "off", "unset"))


def register_environment_secrets(environ: Optional[Mapping[str, str]] = None) -> None:
    """Register the value of every environment variable whose name says it is a secret (see SECRET_ENV_NAME),
    so that even a line printed before the configuration is loaded cannot show one."""
    for name, value in (os.environ if environ is None else environ).items():
        if SECRET_ENV_NAME.search(name) and value.strip().lower() not in _NOT_SECRETS:
            register_secret(value)


def registered_secrets() -> Iterable[str]:
    """The registered secret values (for checks that must look for them, e.g. an incoming request id)."""
    return _registry.secrets


_clean: Set[str] = set()  # recently checked strings that hold no secret (a new set at each registration)
_CLEAN_MAX_ENTRIES = 4096
_CLEAN_MAX_LENGTH = 256


def all_clean(texts: List[str]) -> bool:
    """True when `redact_text` would leave every one of `texts` unchanged.

    Why a cache: with secrets registered each string costs a few dozen substring tests, and most logged strings
    (event names, field names, routes, file names, the correlation id of a run) repeat from event to event.
    Short strings found clean are remembered until the next registration. Without registered secrets the
    strings are checked joined, in one pass (NUL is in no pattern and is a word boundary).
    """
    if not _registry.secrets:
        joined = "\x00".join(texts)
        return not _may_hold_pattern(joined) or _SECRET_PATTERNS.search(joined) is None
    clean = _clean
    for text in texts:
        if text not in clean:
            if redact_text(text) != text:
                return False
            if len(text) <= _CLEAN_MAX_LENGTH:
                if len(clean) >= _CLEAN_MAX_ENTRIES:
                    clean.clear()
                clean.add(text)
    return True


def redact_text(text: str) -> str:
    """`text` with every registered secret (in any of its forms, whole or any run of RUN characters of it) and
    every secret shape replaced by `[REDACTED]`. Cheap when there is nothing to redact: a few substring tests,
    one split and one set operation, no regex search."""
    registry = _registry
    if registry.hit(text):
        pattern = registry.pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    if registry.secrets and len(text) >= RUN and (registry.hex_runs or text.strip(_HEX_DASH)):
        text = _redact_runs(text, registry)  # (an id or hash of hex digits can hold no run but a hex one)
    if _may_hold_pattern(text):
        return _SECRET_PATTERNS.sub(_keep_prefix, text)
    return text
