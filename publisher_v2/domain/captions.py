"""Caption text rules: per-platform formatting, and the caption sidecar format (build and parse).

`format_caption` is the one place that knows each platform's limits, so a caption generator can write one
caption and every publisher gets a version it accepts. The sidecar (`<stem>.txt` beside the image) is plain
text a human can read and a training pipeline can consume: line 1 the Stable-Diffusion caption, a blank line,
`# ---`, then `# key: value` lines. `parse_sidecar_text` reads back whatever `build_caption_sidecar` writes,
and tolerates files edited by hand (CRLF, a BOM, garbage lines).
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from publisher_v2.domain.models import ImageAnalysis

#: Maximum caption length per platform, in characters; anything else gets GENERIC_LIMIT.
CAPTION_LIMITS: Dict[str, int] = {"instagram": 2200, "telegram": 4096, "email": 240}
GENERIC_LIMIT = 2200
INSTAGRAM_MAX_HASHTAGS = 30
SD_CAPTION_VERSION = "v1.0"

_HASHTAG = re.compile(r"(?<![\w&])#+\w+")
_HASHTAG_TOKEN = re.compile(r"#\w+")
_SPACES = re.compile(r"[ \t]+")
#: Punctuation an ASCII-only mail path must not lose (NFKD alone drops or mangles it).
_ASCII_PUNCTUATION = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u00b4": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u2022": "-",
    "\u00b7": "-",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\u200b": "",
    "\ufeff": "",
    "\u00d7": "x",
}


# -- format_caption -------------------------------------------------------------------------------------


def caption_limit(platform: str) -> int:
    """The maximum caption length for `platform` (case-insensitive)."""
    return CAPTION_LIMITS.get(platform.strip().lower(), GENERIC_LIMIT)


def ascii_safe(text: str) -> str:
    """`text` in plain ASCII: typographic punctuation made straight, accents dropped, the rest removed."""
    text = "".join(_ASCII_PUNCTUATION.get(ch, ch) for ch in text)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ord(ch) < 128 and (ch.isprintable() or ch in "\n\t"))


def _tidy(text: str) -> str:
    """Collapse runs of spaces (hashtag removal leaves them) and strip each line and the whole text."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _drop_hashtags_after(text: str, keep: int) -> str:
    """Remove every hashtag after the first `keep` (the extras at the end go first)."""
    seen = 0

    def replace(match: re.Match) -> str:
        nonlocal seen
        seen += 1
        return match.group(0) if seen <= keep else ""

    return _HASHTAG.sub(replace, text)


def _without_hashtags(text: str) -> str:
    """`text` with every hashtag removed; repeated because a removal can expose one ("#a#b" leaves "#b")."""
    while _HASHTAG.search(text):
        text = _HASHTAG.sub(" ", text)
    return text


def _limit_hashtags(text: str, keep: int) -> str:
    """At most `keep` hashtags; repeated for the same reason as `_without_hashtags`."""
    while len(_HASHTAG.findall(text)) > keep:
        text = _drop_hashtags_after(text, keep)
    return text


def _split_trailing_hashtags(text: str) -> Tuple[str, List[str]]:
    """(body, trailing hashtags): the hashtags that end the caption, kept together when trimming."""
    tokens = list(re.finditer(r"\S+", text))
    start = len(text)
    tags: List[str] = []
    while tokens and _HASHTAG_TOKEN.fullmatch(tokens[-1].group()):
        token = tokens.pop()
        tags.insert(0, token.group())
        start = token.start()
    return text[:start].rstrip(), tags


def _cut(text: str, room: int, ellipsis: str) -> str:
    """`text` cut to at most `room` characters ending with `ellipsis`, at a word boundary when one is near."""
    if len(text) <= room:
        return text
    if room <= len(ellipsis):
        return ellipsis[:room]
    cut = text[: room - len(ellipsis)]
    space = cut.rfind(" ")
    if space >= len(cut) * 0.6:
        cut = cut[:space]
    return cut.rstrip(" \t\n,;:-") + ellipsis


def trim_caption(text: str, limit: int, ellipsis: str = "\u2026") -> str:
    """`text` within `limit` characters: the body is cut first, trailing hashtags stay while they fit.

    Hashtags are dropped (from the end) only when keeping them would leave the body less than half the
    limit; the result is never longer than `limit`.
    """
    if len(text) <= limit:
        return text
    body, tags = _split_trailing_hashtags(text)
    if not body:
        body, tags = text, []  # nothing but hashtags: cut it like a body
    min_body = min(len(body), limit // 2)

    def tags_len() -> int:
        return len(" ".join(tags)) + 1 if tags else 0

    while tags and min_body + tags_len() > limit:
        tags.pop()
    body = _cut(body, limit - tags_len(), ellipsis)
    result = " ".join([body, *tags]) if body else " ".join(tags)
    return result[:limit]


def format_caption(platform: str, caption: str) -> str:
    """`caption` as `platform` accepts it: length limit, hashtag rules, and ASCII-only mail."""
    name = platform.strip().lower()
    limit = caption_limit(name)
    text = caption.replace("\r\n", "\n").replace("\r", "\n").strip()
    ellipsis = "\u2026"
    if name == "instagram":
        text = _tidy(_limit_hashtags(text, INSTAGRAM_MAX_HASHTAGS))
    elif name == "email":
        # Twice: folding to ASCII can reveal a hashtag (a full-width "＃tag" becomes "#tag").
        text = _tidy(_without_hashtags(ascii_safe(_without_hashtags(text))))
        ellipsis = "..."
    return trim_caption(text, limit, ellipsis)


# -- sidecar metadata ------------------------------------------------------------------------------------


def utc_timestamp(moment: Optional[datetime] = None) -> str:
    """An ISO-8601 UTC timestamp with a `Z`, to the second (the sidecar's `created`)."""
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def build_metadata_phase1(
    image_file: str,
    sha256: str,
    created_iso: Optional[str] = None,
    sd_caption_version: str = SD_CAPTION_VERSION,
    model_version: str = "",
    dropbox_file_id: Optional[str] = None,
    dropbox_rev: Optional[str] = None,
    artist_alias: Optional[str] = None,
) -> Dict[str, Any]:
    """Identity and version keys of a sidecar; empty values are left out, `created` defaults to now."""
    candidates = {
        "image_file": image_file,
        "dropbox_file_id": dropbox_file_id,
        "dropbox_rev": dropbox_rev,
        "sha256": sha256,
        "created": created_iso or utc_timestamp(),
        "sd_caption_version": sd_caption_version,
        "model_version": model_version,
        "artist_alias": artist_alias,
    }
    return {key: value for key, value in candidates.items() if value}


def moderation_labels(analysis: ImageAnalysis) -> List[str]:
    """The safety labels, with "nsfw" first when the analyser flagged the image."""
    labels = [str(label) for label in analysis.safety_labels if str(label).strip()]
    if analysis.nsfw and "nsfw" not in (label.lower() for label in labels):
        labels.insert(0, "nsfw")
    return labels


def build_metadata_phase2(analysis: ImageAnalysis) -> Dict[str, Any]:
    """Descriptive keys of a sidecar (extended metadata), from the analysis; None and empty values left out.

    `moderation` is a list of labels ("nsfw" included when flagged), the format readers already expect.
    """
    candidates: Dict[str, Any] = {
        "subject": analysis.subject,
        "lighting": analysis.lighting,
        "pose": analysis.pose,
        "camera": analysis.camera,
        "materials": analysis.clothing_or_accessories,
        "art_style": analysis.style,
        "composition": analysis.composition,
        "background": analysis.background,
        "color_palette": list(analysis.color_palette),
        "tags": [str(tag) for tag in analysis.tags if str(tag).strip()],
        "aesthetic_terms": list(analysis.aesthetic_terms),
        "moderation": moderation_labels(analysis),
    }
    return {key: value for key, value in candidates.items() if value not in (None, "", [], {})}


# -- sidecar text ----------------------------------------------------------------------------------------

SIDECAR_SEPARATOR = "# ---"
_SEPARATOR_LINE = re.compile(r"^#\s*-{3,}\s*$")
_METADATA_LINE = re.compile(r"^#\s*(?P<key>[A-Za-z_][A-Za-z0-9_\-.]*)\s*:(?P<value>.*)$")
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-.]")
#: Characters that end a line for str.splitlines but that json.dumps(ensure_ascii=False) leaves raw.
_RAW_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _one_line(text: str) -> str:
    """Every kind of line break becomes one space, so a value can never spill onto a second line."""
    return " ".join(text.splitlines()).strip()


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    for raw, escaped in _RAW_LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text


def _render_value(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return _json(list(value) if isinstance(value, tuple) else value)
    text = _one_line(value if isinstance(value, str) else str(value))
    # A string that looks like JSON is written as a JSON string, so the parser returns it unchanged.
    return _json(text) if text[:1] in ('"', "[", "{") else text


def _render_key(key: Any) -> str:
    text = _KEY_CHARS.sub("_", str(key)) or "_"
    return text if re.match(r"[A-Za-z_]", text) else f"_{text}"


def build_caption_sidecar(sd_caption: str, metadata: Optional[Dict[str, Any]] = None) -> str:
    """The sidecar text: the SD caption on line 1, then (when given) a blank line, `# ---` and the metadata.

    Lists and dicts are compact JSON; other values are written on one line (line breaks become spaces).
    """
    lines = [_one_line(sd_caption)]
    if metadata is not None:
        lines += ["", SIDECAR_SEPARATOR]
        for key, value in metadata.items():
            if value is None:
                continue
            rendered = _render_value(value)
            lines.append(f"# {_render_key(key)}: {rendered}".rstrip())
    return "\n".join(lines) + "\n"


def _parse_value(raw: str) -> Any:
    value = raw.strip()
    if value[:1] in ('"', "[", "{"):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, (str, list, dict)):
            return decoded
    return value


def parse_sidecar_text(text: str) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """(sd_caption, metadata) of a sidecar; metadata is None when the file has no `# ---` line.

    Tolerant by design (people edit these files): a BOM, CRLF or CR line ends, blank lines before the
    caption and lines that are not `# key: value` are accepted; the bad lines are skipped.
    """
    if not text:
        return None, None
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    separator = next((i for i, line in enumerate(lines) if _SEPARATOR_LINE.match(line.strip())), None)
    head = lines if separator is None else lines[:separator]
    sd_caption = next((line.strip() for line in head if line.strip()), None)
    if separator is None:
        return sd_caption, None
    metadata: Dict[str, Any] = {}
    for line in lines[separator + 1 :]:
        match = _METADATA_LINE.match(line.strip())
        if match is None:
            continue
        metadata[match.group("key")] = _parse_value(match.group("value"))
    return sd_caption, metadata
