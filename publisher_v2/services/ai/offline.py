"""The embedded default AI: an offline vision analyser (Pillow) and a template caption generator.

They make a config with no API key run end to end, behind the same protocols as the OpenAI adapter. The
analyser measures what pixels and EXIF can tell (size, orientation, brightness, contrast, dominant colours,
camera) and turns it into an ImageAnalysis; it never guesses content, so it cannot judge safety. Everything is
deterministic: the same bytes give the same analysis, the same analysis gives the same captions.
"""

from __future__ import annotations

import asyncio
import colorsys
import contextlib
import hashlib
import io
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple

from PIL import Image, ImageStat, UnidentifiedImageError

from publisher_v2.domain.errors import AIServiceError
from publisher_v2.domain.models import CaptionResult, CaptionSpec, ImageAnalysis, ImageContent

#: Hue bands (upper bound in degrees) and their names when (dark, muted, vivid, light).
HUE_NAMES: Tuple[Tuple[int, str, str, str, str], ...] = (
    (12, "maroon", "dusty rose", "red", "pink"),
    (40, "brown", "tan", "orange", "peach"),
    (55, "bronze", "sand", "gold", "cream"),
    (70, "olive", "khaki", "yellow", "pale yellow"),
    (95, "moss green", "sage", "lime", "pale green"),
    (160, "forest green", "sage", "green", "mint"),
    (190, "dark teal", "slate teal", "teal", "turquoise"),
    (215, "navy", "steel blue", "azure", "sky blue"),
    (255, "navy", "slate blue", "blue", "periwinkle"),
    (290, "indigo", "mauve", "purple", "lavender"),
    (335, "plum", "mauve", "magenta", "orchid"),
    (360, "maroon", "dusty rose", "crimson", "pink"),
)
#: Names of the greys by value (upper bound of value, name).
GREY_NAMES: Tuple[Tuple[float, str], ...] = (
    (0.12, "black"),
    (0.32, "charcoal"),
    (0.6, "grey"),
    (0.85, "silver"),
    (1.01, "white"),
)

#: EXIF tags worth reading (base IFD and Exif IFD) → our key. A whitelist: GPS, serial numbers, owner and
#: maker notes are never read, for privacy and because they are binary blobs.
_EXIF_BASE = {0x010F: "camera_make", 0x0110: "camera_model", 0x0132: "date_modified"}
_EXIF_IFD = {
    0xA434: "lens",
    0x829A: "exposure_time",
    0x829D: "f_number",
    0x8827: "iso",
    0x920A: "focal_length",
    0x9003: "date_taken",
}
_EXIF_IFD_POINTER = 0x8769
_EXIF_ORIENTATION = 0x0112
_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}:\d{2}:\d{2})")
_MAX_EXIF_TEXT = 64
_THUMBNAIL = (160, 160)


def color_name(rgb: Tuple[int, int, int]) -> str:
    """A friendly name for `rgb`, from its hue band and how dark, muted or light it is."""
    hue, saturation, value = colorsys.rgb_to_hsv(*(channel / 255 for channel in rgb))
    if value < 0.12 or saturation < 0.12 or (saturation < 0.2 and value < 0.3):
        return next(name for limit, name in GREY_NAMES if value < limit)
    degrees = hue * 360
    _, dark, muted, vivid, light = next(band for band in HUE_NAMES if degrees < band[0] or band[0] == 360)
    if value < 0.4:
        return dark
    if value > 0.75 and saturation < 0.5:
        return light
    if saturation < 0.35:
        return muted
    return vivid


def _hex(rgb: Tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _exif_text(value: Any) -> Optional[str]:
    """A printable EXIF value as short text; binary blobs and empty values give None."""
    if isinstance(value, bytes):
        return None
    if isinstance(value, tuple):
        return _exif_text(value[0]) if value else None
    if isinstance(value, str):
        text = "".join(ch for ch in value.replace("\x00", "") if ch.isprintable()).strip()
        return text[:_MAX_EXIF_TEXT] or None
    if isinstance(value, (int, float)) or hasattr(value, "numerator"):
        try:
            number = float(value)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        if number != number or number in (float("inf"), float("-inf")):  # NaN or a 0/0 rational
            return None
        return f"{number:g}"
    return None


def _format_exif(key: str, value: Any) -> Optional[str]:
    text = _exif_text(value)
    if text is None:
        return None
    try:
        if key == "exposure_time":
            seconds = float(text)
            if 0 < seconds < 1:
                return f"1/{round(1 / seconds)} s"
            return f"{seconds:g} s"
        if key == "f_number":
            return f"f/{float(text):.1f}".replace(".0", "")
        if key == "focal_length":
            return f"{float(text):g} mm"
        if key == "iso":
            return str(int(float(text)))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    if key.startswith("date_"):
        match = _EXIF_DATE.match(text)
        return f"{match.group(1)}-{match.group(2)}-{match.group(3)}T{match.group(4)}" if match else text
    return text


def read_exif(image: Image.Image) -> Dict[str, str]:
    """Camera facts from EXIF, as strings; never GPS, serial numbers or binary data."""
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF must not cost the analysis
        return {}
    found: Dict[str, str] = {}
    sources = [(exif, _EXIF_BASE)]
    with contextlib.suppress(Exception):  # a broken Exif IFD pointer leaves the base tags
        sources.append((exif.get_ifd(_EXIF_IFD_POINTER), _EXIF_IFD))
    for table, wanted in sources:
        for tag, key in wanted.items():
            try:
                value = table.get(tag)
            except Exception:  # noqa: BLE001
                value = None
            text = _format_exif(key, value) if value is not None else None
            if text:
                found[key] = text
    return found


def camera_label(exif: Dict[str, str]) -> Optional[str]:
    """ "Make Model" without repeating the make ("Canon Canon EOS R5" → "Canon EOS R5"), plus the lens."""
    make = exif.get("camera_make", "")
    model = exif.get("camera_model", "")
    if make and model.lower().startswith(make.split()[0].lower()):
        make = ""
    label = " ".join(part for part in (make, model) if part)
    lens = exif.get("lens")
    if lens:
        label = f"{label}, {lens}" if label else lens
    return label or None


@dataclass(frozen=True)
class _Measures:
    width: int
    height: int
    brightness: float
    contrast: float
    warmth: float
    saturation: float
    colors: List[Tuple[str, Tuple[int, int, int], float]]  # (name, rgb, share), largest first
    exif: Dict[str, str]


def _orientation(width: int, height: int) -> str:
    ratio = width / height
    if ratio > 1.05:
        return "landscape"
    if ratio < 1 / 1.05:
        return "portrait"
    return "square"


def _flatten(image: Image.Image) -> Image.Image:
    """RGB pixels, with transparency composited onto white (what a viewer would see)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")


def _dominant_colors(rgb: Image.Image) -> List[Tuple[str, Tuple[int, int, int], float]]:
    """Up to four named colours covering at least 5% of the thumbnail each, largest share first."""
    quantized = rgb.quantize(colors=6, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    counts = sorted(quantized.getcolors() or [], key=lambda c: (-c[0], c[1]))
    total = sum(count for count, _ in counts) or 1
    merged: Dict[str, Tuple[Tuple[int, int, int], float]] = {}
    for count, index in counts:
        value = (palette[index * 3], palette[index * 3 + 1], palette[index * 3 + 2])
        name = color_name(value)
        share = count / total
        if name in merged:
            merged[name] = (merged[name][0], merged[name][1] + share)
        else:
            merged[name] = (value, share)
    ranked = sorted(merged.items(), key=lambda item: (-item[1][1], item[0]))
    chosen = [(name, value, round(share, 3)) for name, (value, share) in ranked if share >= 0.05]
    return chosen[:4] or [(ranked[0][0], ranked[0][1][0], round(ranked[0][1][1], 3))]


def _rotated(image: Image.Image) -> bool:
    """True when EXIF says the camera was turned (the viewer sees width and height swapped)."""
    try:
        return image.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - broken EXIF: take the pixels as they are
        return False


def measure(data: bytes, name: str) -> _Measures:
    """Decode `data` once, downscaled, and measure it; AIServiceError when it does not decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and width * height > limit:
                raise AIServiceError(f"Offline vision analysis refuses {name}: {width}x{height} pixels is too large")
            exif = read_exif(image)
            if _rotated(image):
                width, height = height, width
            # Shrink before any mode conversion: JPEGs decode scaled down (draft), others are resized once.
            image.thumbnail((_THUMBNAIL[0] * 2, _THUMBNAIL[1] * 2))
            rgb = _flatten(image)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise AIServiceError(f"Offline vision analysis cannot decode {name}: {exc}") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise AIServiceError(f"Offline vision analysis cannot decode {name}: {exc}") from None
    if width < 1 or height < 1:
        raise AIServiceError(f"Offline vision analysis cannot decode {name}: empty image")
    rgb.thumbnail(_THUMBNAIL)
    gray = ImageStat.Stat(rgb.convert("L"))
    channels = ImageStat.Stat(rgb).mean
    saturation = ImageStat.Stat(rgb.convert("HSV")).mean[1]
    return _Measures(
        width=width,
        height=height,
        brightness=round(gray.mean[0] / 255, 3),
        contrast=round(gray.stddev[0] / 255, 3),
        warmth=round((channels[0] - channels[2]) / 255, 3),
        saturation=round(saturation / 255, 3),
        colors=_dominant_colors(rgb),
        exif=exif,
    )


def _brightness_class(brightness: float) -> str:
    if brightness < 0.3:
        return "dark"
    if brightness > 0.65:
        return "bright"
    return "midtone"


def _temperature(warmth: float) -> str:
    if warmth > 0.06:
        return "warm"
    if warmth < -0.06:
        return "cool"
    return "neutral"


def _contrast_class(contrast: float) -> str:
    if contrast > 0.28:
        return "high contrast"
    if contrast < 0.12:
        return "soft contrast"
    return "moderate contrast"


def _lighting(m: _Measures) -> str:
    """ "<key> light, <contrast>": e.g. "bright high-key light, soft low contrast"."""
    if m.brightness < 0.3:
        key = "dim low-key light"
    elif m.brightness > 0.65:
        key = "bright high-key light"
    else:
        key = "even balanced light"
    contrast = {"high contrast": "strong contrast", "soft contrast": "soft low contrast"}.get(
        _contrast_class(m.contrast), "moderate contrast"
    )
    return f"{key}, {contrast}"


def _mood(m: _Measures) -> str:
    temperature = _temperature(m.warmth)
    if m.saturation < 0.08:
        return "dark and brooding" if m.brightness < 0.3 else "quiet and timeless"
    if m.brightness < 0.3:
        return "moody and mysterious"
    if m.saturation > 0.45:
        return "vivid and energetic" if temperature != "cool" else "fresh and lively"
    if temperature == "warm":
        return "warm and inviting" if m.brightness > 0.45 else "warm and intimate"
    if temperature == "cool":
        return "cool and calm"
    return "calm and balanced"


def _color_words(names: List[str]) -> str:
    if len(names) == 1:
        return f"{names[0]} tones"
    return f"{', '.join(names[:-1])} and {names[-1]} tones"


def _aspect(width: int, height: int) -> str:
    ratio = Fraction(width, height).limit_denominator(20)
    return f"{ratio.numerator}:{ratio.denominator}"


def build_analysis(m: _Measures, model_version: str) -> ImageAnalysis:
    """Turn measurements into the ImageAnalysis every later stage reads (description, mood, tags...)."""
    orientation = _orientation(m.width, m.height)
    brightness = _brightness_class(m.brightness)
    temperature = _temperature(m.warmth)
    monochrome = m.saturation < 0.08
    names = [name for name, _, _ in m.colors]
    main = names[:2]
    adjectives = [brightness if brightness != "midtone" else "softly lit"]
    if monochrome:
        adjectives.append("monochrome")
    elif temperature != "neutral":
        adjectives.append(temperature)
    style = "vivid colour photograph" if m.saturation > 0.45 and m.brightness >= 0.3 else "photograph"
    if monochrome:
        style = "monochrome photograph"
    description = f"A {', '.join(adjectives)} {orientation} photograph dominated by {_color_words(main)}."
    aesthetic = [
        {"dark": "low-key", "bright": "high-key", "midtone": "balanced exposure"}[brightness],
        "monochrome" if monochrome else f"{temperature} palette",
        _contrast_class(m.contrast),
    ]
    if m.saturation > 0.45:
        aesthetic.append("saturated colour")
    tone = "monochrome" if monochrome else temperature
    tags: List[str] = [orientation, brightness, tone, *names[:3], "photography"]
    if m.contrast > 0.28:
        tags.append("high contrast")
    elif m.contrast < 0.12:
        tags.append("soft light")
    if m.exif.get("camera_make"):
        tags.append(m.exif["camera_make"].split()[0].lower())
    unique_tags = list(dict.fromkeys(tag for tag in tags if tag))
    return ImageAnalysis(
        description=description,
        mood=_mood(m),
        tags=unique_tags,
        nsfw=False,
        safety_labels=[],
        subject=f"{orientation} scene in {_color_words(main)}",
        style=style,
        lighting=_lighting(m),
        camera=camera_label(m.exif),
        aesthetic_terms=aesthetic,
        composition=f"{orientation} frame, {_aspect(m.width, m.height)} aspect ratio",
        color_palette=[f"{name} {_hex(value)}" for name, value, _ in m.colors],
        width=m.width,
        height=m.height,
        orientation=orientation,
        brightness=m.brightness,
        exif=dict(m.exif),
        model_version=model_version,
    )


class OfflineVisionAnalyzer:
    """Describes an image from its pixels and EXIF alone (Pillow, no network).

    It does not judge content: `nsfw` is always False and `safety_labels` always empty, so an operator who
    needs moderation must use a model backend.
    """

    model_version = "offline-pillow-1"

    async def analyze(self, image: ImageContent) -> ImageAnalysis:
        """The analysis of `image`, decoded in a worker thread; AIServiceError when it does not decode."""
        measures = await asyncio.to_thread(measure, image.data, image.name)
        return build_analysis(measures, self.model_version)


#: Caption templates; the hash of the description picks one, so a caption is stable for an image.
CAPTION_TEMPLATES: Tuple[str, ...] = (
    "{Colors}, {mood}.",
    "A study in {colors}: {light}.",
    "Where {color1} meets {color2}.",
    "{Mood}: a {orientation} frame in {colors}.",
    "Light notes in {colors}, {mood}.",
    "{Brightness} {colors} under {light}.",
    "Quiet hours in {colors}.",
    "{Mood}, told in {colors}.",
)

_HASHTAG_CHARS = re.compile(r"[^0-9A-Za-z_]+")


def _plain_color(entry: str) -> str:
    """ "sky blue #87ceeb" → "sky blue" (palette entries may carry a hex code)."""
    return re.sub(r"\s*\(?#[0-9A-Fa-f]{3,8}\)?\s*$", "", entry).strip()


def _hashtag(tag: str) -> Optional[str]:
    word = _HASHTAG_CHARS.sub("", tag.replace(" ", "").replace("-", "")).lower()
    return f"#{word}" if word else None


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


class TemplateCaptionGenerator:
    """Writes captions and SD captions from an analysis with fixed templates (no I/O, deterministic)."""

    model_version = "offline-template-1"
    #: How many hashtags made from the analysis tags follow the configured hashtags.
    tag_hashtags = 3

    def _words(self, analysis: ImageAnalysis) -> Dict[str, str]:
        colors = [_plain_color(c) for c in analysis.color_palette if _plain_color(c)][:2] or ["soft", "muted"]
        color1 = colors[0]
        color2 = colors[1] if len(colors) > 1 else ""
        light = (analysis.lighting or "").split(",")[0].strip() or "natural light"
        words = {
            "colors": " and ".join(colors) if len(colors) > 1 else color1,
            "color1": color1,
            "color2": color2,
            "mood": (analysis.mood or "quiet").strip().rstrip(".") or "quiet",
            "light": light,
            "orientation": analysis.orientation or "photographic",
            "brightness": {"dark": "dark", "bright": "bright"}.get(
                next((t for t in analysis.tags if t in ("dark", "bright")), ""), "soft"
            ),
        }
        words.update({_capitalize(k): _capitalize(v) for k, v in list(words.items())})
        return words

    def _hashtags(self, analysis: ImageAnalysis, spec: CaptionSpec) -> str:
        configured = spec.hashtags.split()
        seen = {tag.lower() for tag in configured}
        extra: List[str] = []
        for tag in analysis.tags:
            hashtag = _hashtag(tag)
            if hashtag and hashtag.lower() not in seen:
                seen.add(hashtag.lower())
                extra.append(hashtag)
            if len(extra) >= self.tag_hashtags:
                break
        return " ".join(configured + extra)

    def caption_text(self, analysis: ImageAnalysis) -> str:
        """The caption body (no hashtags), chosen by the hash of the description."""
        digest = hashlib.sha256((analysis.description or "").encode("utf-8")).digest()
        words = self._words(analysis)
        templates = [t for t in CAPTION_TEMPLATES if words["color2"] or "{color2}" not in t]
        template = templates[int.from_bytes(digest[:4], "big") % len(templates)]
        return template.format(**words)

    def sd_caption_text(self, analysis: ImageAnalysis) -> str:
        """A Stable-Diffusion caption: comma-separated descriptors, one line."""
        parts = [
            analysis.subject or analysis.description,
            analysis.lighting,
            *[_plain_color(c) for c in analysis.color_palette[:3]],
            analysis.composition,
            analysis.mood and f"{analysis.mood} mood",
            analysis.style or "photograph",
        ]
        if not (analysis.style or "").endswith("photograph"):
            parts.append("photograph")
        pieces = [piece for part in parts if part for piece in str(part).split(",")]
        cleaned = [" ".join(piece.split()).rstrip(".") for piece in pieces]
        return ", ".join(dict.fromkeys(piece for piece in cleaned if piece))

    async def generate(self, analysis: ImageAnalysis, spec: CaptionSpec, with_sd_caption: bool) -> CaptionResult:
        """The caption with the configured and tag hashtags; the SD caption too when asked."""
        body = self.caption_text(analysis)
        hashtags = self._hashtags(analysis, spec)
        caption = f"{body} {hashtags}".strip()
        if len(caption) > spec.max_length:
            caption = f"{body} {spec.hashtags}".strip()[: spec.max_length].rstrip()
        return CaptionResult(
            caption=caption,
            sd_caption=self.sd_caption_text(analysis) if with_sd_caption else None,
            model_version=self.model_version,
        )
