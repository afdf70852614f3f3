"""format_caption's per-platform rules and the sidecar text format (build, parse, round trip)."""

from __future__ import annotations

import random
import re
import string
from datetime import datetime, timezone
from typing import Any, Dict

import pytest

from publisher_v2.domain.captions import (
    build_caption_sidecar,
    build_metadata_phase1,
    build_metadata_phase2,
    format_caption,
    parse_sidecar_text,
    utc_timestamp,
)
from publisher_v2.domain.models import ImageAnalysis

#: A hashtag: '#' (or several) and word characters, not glued to a word ("C#" and "UX#n" are not hashtags).
HASHTAG = re.compile(r"(?<![\w&])#+\w+")
LIMITS = {"instagram": 2200, "telegram": 4096, "email": 240, "generic": 2200, "mastodon": 2200}


# -- format_caption --------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", sorted(LIMITS))
def test_short_captions_pass_unchanged_except_email(platform: str) -> None:
    caption = "Golden hour over the bay. #sunset #sea"
    expected = "Golden hour over the bay." if platform == "email" else caption
    assert format_caption(platform, caption) == expected


@pytest.mark.parametrize("platform", sorted(LIMITS))
def test_long_captions_are_trimmed_to_the_limit_with_an_ellipsis(platform: str) -> None:
    caption = " ".join(["word"] * 3000)
    result = format_caption(platform, caption)
    assert len(result) <= LIMITS[platform]
    assert len(result) > LIMITS[platform] - 10
    assert result.endswith("..." if platform == "email" else "\u2026")


def test_trimming_cuts_the_body_and_keeps_trailing_hashtags() -> None:
    caption = "A long story. " * 400 + "#photography #sample #sea"
    result = format_caption("telegram", caption)
    assert len(result) <= 4096
    assert result.endswith("\u2026 #photography #sample #sea")


def test_trimming_drops_hashtags_from_the_end_when_they_would_crowd_out_the_body() -> None:
    tags = " ".join(f"#tag{i:03d}" for i in range(400))  # ~3200 chars of hashtags
    caption = "Body text. " * 300 + tags
    result = format_caption("telegram", caption)
    assert len(result) <= 4096
    assert result.startswith("Body text.") and "\u2026" in result
    kept = re.findall(r"#tag\d+", result)
    assert kept and kept == [f"#tag{i:03d}" for i in range(len(kept))]  # a prefix: the last ones went first
    assert len(result.split("\u2026")[0]) >= 2000  # the body keeps about half the room


def test_a_short_body_with_many_hashtags_keeps_the_whole_body() -> None:
    tags = " ".join(f"#t{i:04d}" for i in range(1000))
    result = format_caption("generic", "Short body. " + tags)
    assert result.startswith("Short body. #t0000") and len(result) <= 2200
    assert "\u2026" not in result


def test_instagram_keeps_at_most_thirty_hashtags_dropping_the_last() -> None:
    tags = [f"#tag{i}" for i in range(40)]
    result = format_caption("instagram", "Morning light " + " ".join(tags))
    found = re.findall(r"#\w+", result)
    assert found == tags[:30]
    assert "  " not in result and result.startswith("Morning light #tag0")


def test_instagram_counts_hashtags_inside_the_text_too() -> None:
    caption = "#first words " + " ".join(f"#x{i}" for i in range(35))
    found = re.findall(r"#\w+", format_caption("instagram", caption))
    assert len(found) == 30 and found[0] == "#first"


def test_email_has_no_hashtags_and_only_ascii() -> None:
    caption = (
        "\u201cLa pl\u00e0ya\u201d \u2014 it\u2019s caf\u00e9 time\u2026 \U0001f305"
        " #sun#set ##caf\u00e9 \uff03w"
    )
    result = format_caption("email", caption)
    assert result == '"La playa" - it\'s cafe time...'
    assert result.isascii() and "#" not in result


def test_email_trims_with_three_dots_within_240() -> None:
    result = format_caption("email", "\u2014 long \u2018quoted\u2019 line " * 40 + "#tag")
    assert len(result) <= 240 and result.endswith("...") and result.isascii() and "#" not in result


def test_platform_names_are_case_insensitive() -> None:
    assert format_caption("EMAIL", "a #b") == "a"
    assert len(format_caption("Telegram", "x" * 5000)) == 4096


def test_random_captions_never_exceed_any_limit() -> None:
    rng = random.Random(2024)
    alphabet = string.ascii_letters + "  \n#\u00e9\u2014\u2026\u201c\U0001f600"
    for _ in range(150):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6000)))
        for platform, limit in LIMITS.items():
            result = format_caption(platform, text)
            assert len(result) <= limit, (platform, len(result))
            if platform == "email":
                assert result.isascii() and not HASHTAG.search(result)
            if platform == "instagram":
                assert len(HASHTAG.findall(result)) <= 30


# -- sidecar metadata ------------------------------------------------------------------------------------


def test_phase1_has_the_documented_keys_and_a_utc_z_timestamp() -> None:
    meta = build_metadata_phase1(
        image_file="IMG_001.jpg",
        sha256="ab" * 32,
        model_version="offline-template-1",
        dropbox_file_id="id:abc",
        dropbox_rev="0123",
        artist_alias="Sample Artist",
    )
    assert list(meta) == [
        "image_file",
        "dropbox_file_id",
        "dropbox_rev",
        "sha256",
        "created",
        "sd_caption_version",
        "model_version",
        "artist_alias",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["created"])


def test_phase1_omits_missing_values() -> None:
    meta = build_metadata_phase1("a.jpg", "f" * 64, "2025-02-18T11:32:01Z", "v1.0", "gpt-4o", None, None)
    assert meta == {
        "image_file": "a.jpg",
        "sha256": "f" * 64,
        "created": "2025-02-18T11:32:01Z",
        "sd_caption_version": "v1.0",
        "model_version": "gpt-4o",
    }


def test_utc_timestamp_converts_aware_times_to_z() -> None:
    from datetime import timedelta

    moment = datetime(2025, 1, 2, 5, 4, 3, 999, tzinfo=timezone(timedelta(hours=2)))
    assert utc_timestamp(moment) == "2025-01-02T03:04:03Z"


def test_phase2_maps_analysis_fields_and_omits_none() -> None:
    analysis = ImageAnalysis(
        description="d",
        mood="m",
        tags=["sea", " "],
        nsfw=True,
        safety_labels=["suggestive"],
        subject="a pier",
        style="film photograph",
        lighting="golden hour",
        clothing_or_accessories="wool coat",
        color_palette=["teal #008080"],
        aesthetic_terms=["minimal"],
    )
    assert build_metadata_phase2(analysis) == {
        "subject": "a pier",
        "lighting": "golden hour",
        "materials": "wool coat",
        "art_style": "film photograph",
        "color_palette": ["teal #008080"],
        "tags": ["sea"],
        "aesthetic_terms": ["minimal"],
        "moderation": ["nsfw", "suggestive"],
    }


def test_phase2_of_a_bare_analysis_is_empty() -> None:
    assert build_metadata_phase2(ImageAnalysis(description="d", mood="m")) == {}


# -- sidecar text ------------------------------------------------------------------------------------------


def test_sidecar_text_has_the_documented_layout() -> None:
    text = build_caption_sidecar(
        "a pier at dusk,\nteal water",
        {"image_file": "a.jpg", "tags": ["sea", "pier"], "moderation": {"nsfw": False}, "note": "two\nlines"},
    )
    assert text == (
        "a pier at dusk, teal water\n"
        "\n"
        "# ---\n"
        "# image_file: a.jpg\n"
        '# tags: ["sea","pier"]\n'
        '# moderation: {"nsfw":false}\n'
        "# note: two lines\n"
    )


def test_parse_reads_caption_and_decodes_json_values() -> None:
    caption, meta = parse_sidecar_text(
        'sd caption\n\n# ---\n# tags: ["a","b"]\n# moderation: {"nsfw": true}\n# sha256: abc\n# empty:\n'
    )
    assert caption == "sd caption"
    assert meta == {"tags": ["a", "b"], "moderation": {"nsfw": True}, "sha256": "abc", "empty": ""}


def test_parse_skips_garbage_lines_and_keeps_good_ones() -> None:
    text = (
        "\ufeffcaption here\r\n\r\n# ---\r\n"
        "garbage without hash\r\n#\r\n# : no key\r\n# no colon here\r\n"
        "# tags: [broken json\r\n# 9lives: bad key\r\n# image_file: a.jpg\r\n\x00\x01\r\n"
    )
    caption, meta = parse_sidecar_text(text)
    assert caption == "caption here"
    assert meta == {"tags": "[broken json", "image_file": "a.jpg"}


def test_parse_without_separator_has_no_metadata() -> None:
    assert parse_sidecar_text("just a caption\n# key: value\n") == ("just a caption", None)
    assert parse_sidecar_text("\n\n  spaced caption  \r") == ("spaced caption", None)


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n", "\r\n \r\n"])
def test_empty_sidecars_parse_to_nothing(text: str) -> None:
    assert parse_sidecar_text(text) == (None, None)


def test_a_sidecar_with_only_metadata_has_no_caption() -> None:
    assert parse_sidecar_text("# ---\n# a: b\n") == (None, {"a": "b"})


def test_cr_only_line_ends_are_understood() -> None:
    assert parse_sidecar_text("cap\r\r# ---\r# a: 1\r") == ("cap", {"a": "1"})


def _random_text(rng: random.Random, length: int) -> str:
    pieces = [
        *string.ascii_letters,
        " ",
        "#",
        ": ",
        "# ---",
        '"',
        "[",
        "{",
        "}",
        "]",
        ",",
        "\n",
        "\r\n",
        "\u2028",
        "\x85",
        "\u00e9",
        "\u65e5\u672c",
        "\U0001f305",
        "\\",
        "\t",
    ]
    return "".join(rng.choice(pieces) for _ in range(length))


def _normalised(text: str) -> str:
    return " ".join(text.splitlines()).strip()


def test_random_sidecars_round_trip() -> None:
    rng = random.Random(1234)
    for _ in range(400):
        caption = _random_text(rng, rng.randint(1, 80))
        metadata: Dict[str, Any] = {}
        for i in range(rng.randint(0, 8)):
            kind = rng.random()
            key = rng.choice(["tags", "subject", "note", "created", "x_y", f"k{i}"])
            if kind < 0.5:
                metadata[key] = _random_text(rng, rng.randint(0, 40))
            elif kind < 0.8:
                metadata[key] = [_random_text(rng, rng.randint(0, 10)) for _ in range(rng.randint(0, 4))]
            else:
                metadata[key] = {"nsfw": rng.random() < 0.5, "labels": [_random_text(rng, 5)]}
        text = build_caption_sidecar(caption, metadata)
        parsed_caption, parsed_meta = parse_sidecar_text(text)
        expected_caption = _normalised(caption)
        if expected_caption.startswith("#") and re.fullmatch(r"#\s*-{3,}\s*", expected_caption):
            continue  # a caption that IS the separator line cannot be told apart from it
        assert parsed_caption == (expected_caption or None), repr(caption)
        expected = {k: _normalised(v) if isinstance(v, str) else v for k, v in metadata.items()}
        assert parsed_meta == expected, repr(text)
        # Every line is one physical line for any reader, not just ours.
        assert len(text.splitlines()) == len(text.split("\n")) - 1


def test_round_trip_of_a_real_looking_sidecar() -> None:
    metadata = {
        **build_metadata_phase1("IMG 1.jpg", "e" * 64, model_version="gpt-4o", artist_alias="A: B #1"),
        "subject": "[draft] title",
        "color_palette": ["sky blue #87ceeb", "sand"],
        "moderation": [],
    }
    text = build_caption_sidecar("portrait, 50mm, #1 favourite: soft light", metadata)
    assert parse_sidecar_text(text) == ("portrait, 50mm, #1 favourite: soft light", metadata)


def test_none_metadata_writes_only_the_caption() -> None:
    text = build_caption_sidecar("only this", None)
    assert text == "only this\n" and parse_sidecar_text(text) == ("only this", None)
