"""The offline AI (Pillow analyser, template captions), the AIService around it, and the rate limiter."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import List, Optional, Tuple

import pytest
from PIL import Image

from publisher_v2.domain.errors import AIServiceError
from publisher_v2.domain.models import CaptionResult, CaptionSpec, ImageAnalysis, ImageContent
from publisher_v2.services.ai import (
    AIService,
    AsyncRateLimiter,
    OfflineVisionAnalyzer,
    TemplateCaptionGenerator,
)
from publisher_v2.services.ai.base import CaptionGenerator, VisionAnalyzer
from publisher_v2.services.ai.offline import color_name


def jpeg(
    size: Tuple[int, int], colour: Tuple[int, int, int], exif: Optional[Image.Exif] = None, fmt: str = "JPEG"
) -> bytes:
    image = Image.new("RGB", size, colour)
    buffer = io.BytesIO()
    if exif is not None:
        image.save(buffer, format=fmt, exif=exif.tobytes())
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def content(data: bytes, name: str = "photo.jpg") -> ImageContent:
    return ImageContent(name=name, data=data, sha256="0" * 64)


async def analyze(data: bytes, name: str = "photo.jpg") -> ImageAnalysis:
    return await OfflineVisionAnalyzer().analyze(content(data, name))


def test_offline_classes_satisfy_the_ai_protocols() -> None:
    assert isinstance(OfflineVisionAnalyzer(), VisionAnalyzer)
    assert isinstance(TemplateCaptionGenerator(), CaptionGenerator)


@pytest.mark.parametrize(
    ("size", "orientation"),
    [
        ((1600, 900), "landscape"),
        ((900, 1600), "portrait"),
        ((1000, 1000), "square"),
        ((1020, 1000), "square"),
    ],
)
async def test_orientation_follows_the_aspect_ratio(size: Tuple[int, int], orientation: str) -> None:
    analysis = await analyze(jpeg(size, (120, 120, 120)))
    assert (analysis.width, analysis.height) == size
    assert analysis.orientation == orientation and orientation in analysis.tags


async def test_brightness_separates_dark_and_bright_images() -> None:
    dark = await analyze(jpeg((400, 300), (12, 14, 30)))
    bright = await analyze(jpeg((400, 300), (240, 240, 235)))
    assert dark.brightness is not None and bright.brightness is not None
    assert 0 <= dark.brightness < 0.15 < 0.85 < bright.brightness <= 1
    assert "dark" in dark.tags and "bright" in bright.tags
    assert "low-key" in (dark.lighting or "") and "high-key" in (bright.lighting or "")
    assert dark.mood != bright.mood


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((220, 30, 30), "red"),
        ((30, 60, 220), "blue"),
        ((135, 200, 235), "sky blue"),
        ((40, 160, 60), "green"),
        ((10, 10, 10), "black"),
        ((250, 250, 250), "white"),
        ((128, 128, 128), "grey"),
        ((245, 140, 30), "orange"),
        ((20, 30, 90), "navy"),
    ],
)
def test_colours_get_friendly_names(rgb: Tuple[int, int, int], name: str) -> None:
    assert color_name(rgb) == name


async def test_dominant_colours_are_named_with_hex_and_described() -> None:
    image = Image.new("RGB", (600, 400), (135, 200, 235))
    image.paste((214, 190, 150), (0, 250, 600, 400))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    analysis = await analyze(buffer.getvalue(), "beach.png")
    names = [entry.rsplit(" #", 1)[0] for entry in analysis.color_palette]
    assert names[0] == "sky blue" and len(names) >= 2
    assert all(
        entry.rsplit(" ", 1)[1].startswith("#") and len(entry.rsplit(" ", 1)[1]) == 7
        for entry in analysis.color_palette
    )
    assert "sky blue" in analysis.description and "landscape" in analysis.description
    assert "sky blue" in analysis.tags and "photography" in analysis.tags


async def test_exif_camera_facts_are_read_as_strings_and_gps_and_blobs_are_not() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R6"
    details = exif.get_ifd(0x8769)
    details[0xA434] = "RF50mm F1.8 STM"
    details[0x829A] = 1 / 250
    details[0x829D] = 2.8
    details[0x8827] = 400
    details[0x9003] = "2024:05:01 12:30:00"
    details[0x927C] = b"\x00\x01binary maker note"
    details[0xA431] = "SERIAL-123456"
    gps = exif.get_ifd(0x8825)
    gps[2] = (52.0, 31.0, 12.0)
    gps[4] = (13.0, 24.0, 36.0)
    analysis = await analyze(jpeg((800, 600), (90, 120, 60), exif))
    assert analysis.exif == {
        "camera_make": "Canon",
        "camera_model": "Canon EOS R6",
        "lens": "RF50mm F1.8 STM",
        "exposure_time": "1/250 s",
        "f_number": "f/2.8",
        "iso": "400",
        "date_taken": "2024-05-01T12:30:00",
    }
    assert all(isinstance(v, str) for v in analysis.exif.values())
    assert analysis.camera == "Canon EOS R6, RF50mm F1.8 STM"
    text = json.dumps(analysis.__dict__)
    assert "SERIAL" not in text and "52.0" not in text and "binary" not in text


async def test_exif_rotation_reports_the_orientation_a_viewer_sees() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    analysis = await analyze(jpeg((1200, 800), (100, 100, 100), exif))
    assert (analysis.width, analysis.height, analysis.orientation) == (800, 1200, "portrait")


async def test_transparent_png_is_analysed_as_seen_on_white() -> None:
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    analysis = await analyze(buffer.getvalue(), "clear.png")
    assert analysis.brightness is not None and analysis.brightness > 0.95


async def test_offline_analysis_does_not_judge_content() -> None:
    analysis = await analyze(jpeg((300, 200), (200, 150, 140)))
    assert analysis.nsfw is False and analysis.safety_labels == []
    assert analysis.model_version == "offline-pillow-1"
    assert "does not judge content" in (OfflineVisionAnalyzer.__doc__ or "")


@pytest.mark.parametrize("data", [b"", b"not an image at all", jpeg((300, 200), (1, 2, 3))[:200]])
async def test_undecodable_bytes_raise_ai_service_error_naming_the_image(data: bytes) -> None:
    with pytest.raises(AIServiceError, match="broken.jpg"):
        await analyze(data, "broken.jpg")


async def test_analysis_is_deterministic_for_the_same_bytes() -> None:
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    first = await analyze(buffer.getvalue())
    second = await analyze(buffer.getvalue())
    assert first == second


async def test_template_caption_appends_configured_and_tag_hashtags_once() -> None:
    analysis = await analyze(jpeg((1600, 900), (135, 200, 235)))
    spec = CaptionSpec(hashtags="#photography #sample")
    result = await TemplateCaptionGenerator().generate(analysis, spec, with_sd_caption=False)
    assert result.sd_caption is None and result.model_version == "offline-template-1"
    tags = [word for word in result.caption.split() if word.startswith("#")]
    assert tags[:2] == ["#photography", "#sample"]
    assert "#landscape" in tags and len(tags) == len(set(tags)) and len(tags) <= 5
    assert not result.caption.startswith("#")


async def test_sd_caption_is_one_line_of_descriptors_ending_in_photograph() -> None:
    analysis = await analyze(jpeg((900, 1600), (20, 30, 90)))
    result = await TemplateCaptionGenerator().generate(analysis, CaptionSpec(), with_sd_caption=True)
    assert result.sd_caption is not None and "\n" not in result.sd_caption
    parts = result.sd_caption.split(", ")
    assert parts[-1].endswith("photograph") and "navy" in parts and len(parts) >= 5
    assert any("portrait" in part for part in parts)


async def test_captions_are_deterministic_and_templates_vary_across_images() -> None:
    generator = TemplateCaptionGenerator()
    captions = set()
    for i in range(40):
        analysis = ImageAnalysis(
            description=f"image number {i}",
            mood="calm",
            tags=["landscape"],
            color_palette=["teal #008080", "sand #d6be96"],
            lighting="even balanced light, soft low contrast",
            orientation="landscape",
        )
        one = await generator.generate(analysis, CaptionSpec(), True)
        two = await generator.generate(analysis, CaptionSpec(), True)
        assert one == two
        captions.add(one.caption)
    assert len(captions) >= 4


async def test_template_caption_works_on_a_sparse_analysis() -> None:
    result = await TemplateCaptionGenerator().generate(
        ImageAnalysis(description="", mood=""), CaptionSpec(hashtags="#x"), True
    )
    assert result.caption.strip() and result.caption.endswith("#x")
    assert result.sd_caption and "photograph" in result.sd_caption


# -- AIService -----------------------------------------------------------------------------------------------


class ExplodingAnalyzer:
    """A vision backend with a bug: raises something that is not an AIServiceError."""

    model_version = "exploding-1"

    async def analyze(self, image: ImageContent) -> ImageAnalysis:
        raise ValueError("backend bug")


class SDFailingCaptioner:
    """A caption backend whose combined caption + SD caption call fails, while a plain caption works."""

    model_version = "sd-failing-1"

    def __init__(self) -> None:
        self.calls: List[bool] = []

    async def generate(
        self, analysis: ImageAnalysis, spec: CaptionSpec, with_sd_caption: bool
    ) -> CaptionResult:
        self.calls.append(with_sd_caption)
        if with_sd_caption:
            raise AIServiceError("model returned malformed JSON")
        return CaptionResult(caption="plain caption", model_version=self.model_version)


def events(caplog: pytest.LogCaptureFixture) -> List[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]


async def test_service_logs_analysis_and_caption_events_without_image_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="publisher_v2.ai")
    service = AIService(OfflineVisionAnalyzer(), TemplateCaptionGenerator())
    data = jpeg((500, 400), (200, 100, 50))
    analysis = await service.analyze(content(data))
    result = await service.generate_caption(analysis, CaptionSpec(hashtags="#a"))
    by_name = {e["message"]: e for e in events(caplog)}
    assert by_name["vision_analysis_start"]["model"] == "offline-pillow-1"
    assert by_name["vision_analysis_complete"]["tags_count"] == len(analysis.tags)
    generated = by_name["caption_generated"]
    assert generated["length"] == len(result.caption) and generated["sd_caption"] is True
    assert generated["fallback_used"] is False
    assert all(len(r.getMessage()) < 2000 for r in caplog.records)  # no image bytes in any event


async def test_service_turns_backend_bugs_into_ai_service_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="publisher_v2.ai")
    service = AIService(ExplodingAnalyzer(), TemplateCaptionGenerator())
    with pytest.raises(AIServiceError, match=r"photo\.jpg.*exploding-1.*ValueError: backend bug"):
        await service.analyze(content(b"irrelevant"))
    assert "vision_analysis_error" in [e["message"] for e in events(caplog)]


async def test_service_falls_back_to_a_plain_caption_when_the_sd_call_fails() -> None:
    captioner = SDFailingCaptioner()
    service = AIService(OfflineVisionAnalyzer(), captioner, sd_caption_enabled=True)
    result = await service.generate_caption(ImageAnalysis(description="d", mood="m"), CaptionSpec())
    assert captioner.calls == [True, False]
    assert result.caption == "plain caption" and result.sd_caption is None and result.fallback_used is True


async def test_service_without_sd_captions_asks_for_a_plain_caption_only() -> None:
    captioner = SDFailingCaptioner()
    service = AIService(OfflineVisionAnalyzer(), captioner, sd_caption_enabled=False)
    result = await service.generate_caption(ImageAnalysis(description="d", mood="m"), CaptionSpec())
    assert captioner.calls == [False]
    assert result.sd_caption is None and result.fallback_used is False


class BrokenCaptioner:
    """A caption backend that always fails."""

    model_version = "broken-1"

    async def generate(
        self, analysis: ImageAnalysis, spec: CaptionSpec, with_sd_caption: bool
    ) -> CaptionResult:
        raise ConnectionError("model unreachable")


async def test_service_raises_when_the_plain_caption_fallback_fails_too() -> None:
    service = AIService(OfflineVisionAnalyzer(), BrokenCaptioner(), sd_caption_enabled=True)
    with pytest.raises(AIServiceError, match="broken-1.*model unreachable"):
        await service.generate_caption(ImageAnalysis(description="d", mood="m"), CaptionSpec())


async def test_every_service_call_goes_through_the_rate_limiter() -> None:
    limiter = AsyncRateLimiter(per_minute=600)  # one call per 0.1 s
    service = AIService(OfflineVisionAnalyzer(), TemplateCaptionGenerator(), rate_limiter=limiter)
    loop = asyncio.get_running_loop()
    start = loop.time()
    analysis = await service.analyze(content(jpeg((64, 64), (1, 2, 3))))
    await service.generate_caption(analysis, CaptionSpec())
    await service.generate_caption(analysis, CaptionSpec())
    assert loop.time() - start >= 0.19


# -- AsyncRateLimiter ----------------------------------------------------------------------------------------


async def test_rate_limiter_spaces_concurrent_callers_evenly_in_arrival_order() -> None:
    limiter = AsyncRateLimiter(per_minute=1200)  # 0.05 s apart
    loop = asyncio.get_running_loop()
    start = loop.time()
    finished: List[Tuple[int, float]] = []

    async def call(i: int) -> None:
        async with limiter:
            finished.append((i, loop.time() - start))

    await asyncio.gather(*(call(i) for i in range(5)))
    assert [i for i, _ in finished] == [0, 1, 2, 3, 4]
    times = [t for _, t in finished]
    assert times[0] < 0.04
    # Caller i never starts before its slot (i x 0.05 s). Slots are fixed at arrival, so a caller woken late on a
    # loaded machine may start closer to the next one: the gaps between start times are not the contract.
    assert all(t >= i * 0.05 - 0.005 for i, t in enumerate(times)), times


async def test_rate_limiter_allows_a_burst_then_waits() -> None:
    limiter = AsyncRateLimiter(per_minute=600, burst=3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await limiter.acquire()
    assert loop.time() - start < 0.05
    await limiter.acquire()
    assert loop.time() - start >= 0.09


async def test_rate_limiter_refills_after_idle_time() -> None:
    limiter = AsyncRateLimiter(per_minute=1200)
    loop = asyncio.get_running_loop()
    await limiter.acquire()
    await asyncio.sleep(0.06)
    start = loop.time()
    await limiter.acquire()
    assert loop.time() - start < 0.02


@pytest.mark.parametrize("kwargs", [{"per_minute": 0}, {"per_minute": 10, "burst": 0}])
def test_rate_limiter_rejects_nonsense_limits(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AsyncRateLimiter(**kwargs)


def test_openai_adapter_names_load_lazily_from_the_package() -> None:
    import publisher_v2.services.ai as ai

    with pytest.raises(AttributeError):
        ai.NoSuchThing  # noqa: B018
    pytest.importorskip("openai")
    assert ai.VisionAnalyzerOpenAI.__name__ == "VisionAnalyzerOpenAI"
    assert ai.CaptionGeneratorOpenAI.__name__ == "CaptionGeneratorOpenAI"
