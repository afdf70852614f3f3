"""VisionAnalyzerOpenAI and CaptionGeneratorOpenAI: the real `openai` SDK against a local stand-in."""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from typing import Iterator

import pytest
from PIL import Image

from publisher_v2.config.schema import OpenAIConfig
from publisher_v2.domain.errors import AIServiceError
from publisher_v2.domain.models import CaptionSpec, ImageAnalysis, ImageContent
from publisher_v2.services.ai.base import CaptionGenerator, VisionAnalyzer
from publisher_v2.services.ai.openai_adapter import CaptionGeneratorOpenAI, VisionAnalyzerOpenAI
from publisher_v2.services.ai.rate_limit import AsyncRateLimiter
from publisher_v2.services.ai.service import AIService
from tests.adapters.peers.httpd import HttpPeer, Reply
from tests.adapters.peers.openai_fake import API_KEY, CAPTION, SD_CAPTION, FakeOpenAI

ROUTE = "/v1/chat/completions"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    app = FakeOpenAI()
    with HttpPeer(app) as peer:
        app.peer = peer  # type: ignore[attr-defined]
        yield app
        assert not peer.errors, peer.errors


def peer_of(fake: FakeOpenAI) -> HttpPeer:
    return fake.peer  # type: ignore[attr-defined,no-any-return]


def cfg(fake: FakeOpenAI, **overrides: object) -> OpenAIConfig:
    values = dict(
        base_url=peer_of(fake).url + "/v1",
        timeout_seconds=3.0,
        max_retries=2,
        max_tokens=321,
        vision_model="gpt-vision-test",
        caption_model="gpt-caption-test",
    )
    values.update(overrides)
    return OpenAIConfig(**values)  # type: ignore[arg-type]


def image(public: bool = True) -> ImageContent:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(buffer, "JPEG")
    data = buffer.getvalue()
    return ImageContent(
        "red.jpg",
        data,
        "0" * 64,
        temp_url="https://files.example/red.jpg" if public else None,
        public_url=public,
    )


def analysis() -> ImageAnalysis:
    return ImageAnalysis(description="A red square.", mood="calm", tags=["red", "square"])


def image_part(body: dict) -> str:
    content = body["messages"][1]["content"]
    return next(p for p in content if p["type"] == "image_url")["image_url"]["url"]


# -- analysis ------------------------------------------------------------------------------------------------


async def test_adapters_satisfy_the_ai_protocols(fake: FakeOpenAI) -> None:
    assert isinstance(VisionAnalyzerOpenAI(API_KEY, cfg(fake)), VisionAnalyzer)
    assert isinstance(CaptionGeneratorOpenAI(API_KEY, cfg(fake)), CaptionGenerator)


async def test_analysis_sends_the_public_link_in_json_mode_and_keeps_lists(fake: FakeOpenAI) -> None:
    result = await VisionAnalyzerOpenAI(API_KEY, cfg(fake)).analyze(image(public=True))
    body = fake.calls[0]
    assert body["model"] == "gpt-vision-test"
    assert body["response_format"] == {"type": "json_object"}
    assert body["max_tokens"] == 321
    assert image_part(body) == "https://files.example/red.jpg"
    assert result.tags == ["Red", "square", "minimal"]
    assert result.color_palette == ["red", "white"]
    assert result.aesthetic_terms == ["clean", "geometric"]
    assert result.description == "A red square on a quiet background."
    assert result.composition == "centered" and result.camera is None
    assert result.model_version == "gpt-vision-test-2024-fake"


async def test_analysis_without_public_links_sends_the_bytes_as_a_data_url(fake: FakeOpenAI) -> None:
    img = image(public=False)
    await VisionAnalyzerOpenAI(API_KEY, cfg(fake)).analyze(img)
    url = image_part(fake.calls[0])
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :]) == img.data


async def test_analysis_coerces_strings_and_defaults_missing_keys(fake: FakeOpenAI) -> None:
    fake.script.append(
        json.dumps(
            {
                "description": "Two cats",
                "tags": "cat, sofa; afternoon",
                "subject": ["cat", "cat"],
                "nsfw": "no",
                "lighting": 5600,
                "unexpected": "ignored",
            }
        )
    )
    result = await VisionAnalyzerOpenAI(API_KEY, cfg(fake)).analyze(image())
    assert result.tags == ["cat", "sofa", "afternoon"]
    assert result.subject == "cat, cat"
    assert result.lighting == "5600"
    assert result.nsfw is False
    assert result.mood == "unspecified" and result.safety_labels == [] and result.pose is None


async def test_analysis_reads_json_inside_a_code_fence(fake: FakeOpenAI) -> None:
    fake.script.append('```json\n{"description": "A bridge", "mood": "grey", "nsfw": true}\n```')
    result = await VisionAnalyzerOpenAI(API_KEY, cfg(fake)).analyze(image())
    assert (result.description, result.mood, result.nsfw) == ("A bridge", "grey", True)


@pytest.mark.parametrize("content", ["I cannot see the image, sorry.", "[1, 2, 3]", "", '{"mood": "calm"}'])
async def test_unusable_analysis_output_is_a_clear_ai_service_error(fake: FakeOpenAI, content: str) -> None:
    fake.script.append(content)
    with pytest.raises(AIServiceError, match="gpt-vision-test"):
        await VisionAnalyzerOpenAI(API_KEY, cfg(fake)).analyze(image())


# -- captions ------------------------------------------------------------------------------------------------


async def test_caption_and_sd_caption_come_from_one_json_call(fake: FakeOpenAI) -> None:
    spec = CaptionSpec(hashtags="#red #minimal")
    result = await CaptionGeneratorOpenAI(API_KEY, cfg(fake)).generate(analysis(), spec, with_sd_caption=True)
    assert fake.kinds() == ["json_caption"]
    assert fake.calls[0]["model"] == "gpt-caption-test" and fake.calls[0]["max_tokens"] == 321
    assert result.caption == f"{CAPTION} #red #minimal"
    assert result.sd_caption == SD_CAPTION
    assert result.fallback_used is False
    assert result.model_version == "gpt-caption-test-2024-fake"


async def test_malformed_single_call_output_falls_back_to_a_plain_caption(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script.append('{"caption": ')  # truncated JSON
    with caplog.at_level(logging.WARNING, logger="publisher_v2.ai.openai"):
        result = await CaptionGeneratorOpenAI(API_KEY, cfg(fake)).generate(analysis(), CaptionSpec(), True)
    assert fake.kinds() == ["json_caption", "caption"]
    assert result.caption == CAPTION
    assert result.sd_caption is None
    assert result.fallback_used is True
    assert any("ai_caption_fallback" in r.getMessage() for r in caplog.records)


async def test_single_call_json_without_a_caption_also_falls_back(fake: FakeOpenAI) -> None:
    fake.script.append(json.dumps({"sd_caption": "only this"}))
    result = await CaptionGeneratorOpenAI(API_KEY, cfg(fake)).generate(analysis(), CaptionSpec(), True)
    assert result.fallback_used is True and result.caption == CAPTION


async def test_without_sd_caption_one_plain_call_is_made(fake: FakeOpenAI) -> None:
    result = await CaptionGeneratorOpenAI(API_KEY, cfg(fake)).generate(analysis(), CaptionSpec(), False)
    assert fake.kinds() == ["caption"]
    assert "response_format" not in fake.calls[0]
    assert result.caption == CAPTION and result.sd_caption is None


async def test_single_call_disabled_asks_for_the_sd_caption_separately(fake: FakeOpenAI) -> None:
    gen = CaptionGeneratorOpenAI(
        API_KEY, cfg(fake, sd_caption_single_call_enabled=False, sd_caption_model="gpt-sd-test")
    )
    fake.script.extend([CAPTION, json.dumps({"sd_caption": "a red square, studio"})])
    result = await gen.generate(analysis(), CaptionSpec(), True)
    assert fake.kinds() == ["caption", "json_caption"]
    assert fake.calls[1]["model"] == "gpt-sd-test"
    assert (result.caption, result.sd_caption, result.fallback_used) == (
        CAPTION,
        "a red square, studio",
        False,
    )


async def test_an_empty_plain_caption_is_an_ai_service_error(fake: FakeOpenAI) -> None:
    fake.script.append("   ")
    with pytest.raises(AIServiceError, match="empty caption"):
        await CaptionGeneratorOpenAI(API_KEY, cfg(fake)).generate(analysis(), CaptionSpec(), False)


# -- transport: retries, timeouts, errors ------------------------------------------------------------------


async def test_a_429_then_success_is_retried_by_the_sdk(fake: FakeOpenAI) -> None:
    peer_of(fake).inject(
        ROUTE,
        Reply.json(
            {"error": {"message": "Rate limit reached", "type": "requests"}},
            status=429,
            headers={"retry-after-ms": "10"},
        ),
    )
    result = await VisionAnalyzerOpenAI(API_KEY, cfg(fake)).analyze(image())
    assert result.tags == ["Red", "square", "minimal"]
    assert peer_of(fake).paths().count(ROUTE) == 2


async def test_a_5xx_then_success_is_retried_by_the_sdk(fake: FakeOpenAI) -> None:
    peer_of(fake).inject(
        ROUTE, Reply.json({"error": {"message": "overloaded"}}, status=503, headers={"retry-after-ms": "10"})
    )
    result = await CaptionGeneratorOpenAI(API_KEY, cfg(fake)).generate(analysis(), CaptionSpec(), False)
    assert result.caption == CAPTION
    assert peer_of(fake).paths().count(ROUTE) == 2


async def test_retries_are_bounded(fake: FakeOpenAI) -> None:
    busy = Reply.json({"error": {"message": "overloaded"}}, status=500, headers={"retry-after-ms": "5"})
    peer_of(fake).inject(ROUTE, *[busy] * 5)
    with pytest.raises(AIServiceError, match="HTTP 500"):
        await VisionAnalyzerOpenAI(API_KEY, cfg(fake, max_retries=1)).analyze(image())
    assert peer_of(fake).paths().count(ROUTE) == 2


async def test_a_slow_server_times_out_into_an_ai_service_error(fake: FakeOpenAI) -> None:
    peer_of(fake).inject(ROUTE, Reply.json({}, delay=1.5))
    with pytest.raises(AIServiceError, match="timed out"):
        await VisionAnalyzerOpenAI(API_KEY, cfg(fake, timeout_seconds=0.3, max_retries=0)).analyze(image())


async def test_a_non_json_http_body_is_an_ai_service_error(fake: FakeOpenAI) -> None:
    peer_of(fake).inject(ROUTE, Reply.text("<html>bad gateway page</html>", status=200))
    with pytest.raises(AIServiceError):
        await CaptionGeneratorOpenAI(API_KEY, cfg(fake, max_retries=0)).generate(
            analysis(), CaptionSpec(), False
        )


async def test_a_response_without_choices_is_an_ai_service_error(fake: FakeOpenAI) -> None:
    peer_of(fake).inject(
        ROUTE, Reply.json({"id": "x", "object": "chat.completion", "model": "m", "choices": []})
    )
    with pytest.raises(AIServiceError, match="without a message"):
        await VisionAnalyzerOpenAI(API_KEY, cfg(fake)).analyze(image())


async def test_a_refusal_is_an_ai_service_error(fake: FakeOpenAI) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
            }
        ],
    }
    peer_of(fake).inject(ROUTE, Reply.json(body))
    with pytest.raises(AIServiceError, match="refused"):
        await VisionAnalyzerOpenAI(API_KEY, cfg(fake)).analyze(image())


async def test_a_rejected_key_is_reported_without_the_key(fake: FakeOpenAI) -> None:
    wrong = "sk-test-wrongkey-ABCDEFGHIJKLMNOP0987"
    with pytest.raises(AIServiceError, match="HTTP 401") as info:
        await VisionAnalyzerOpenAI(wrong, cfg(fake)).analyze(image())
    assert wrong not in str(info.value)
    assert peer_of(fake).paths().count(ROUTE) == 1  # a 401 is not retried


async def test_base_url_falls_back_to_the_openai_base_url_environment_variable(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", peer_of(fake).url + "/v1")
    result = await VisionAnalyzerOpenAI(API_KEY, cfg(fake, base_url=None)).analyze(image())
    assert result.description and peer_of(fake).paths() == [ROUTE]


# -- through AIService and its rate limiter (as wired in production) ---------------------------------------


async def test_calls_go_through_ai_service_and_its_rate_limiter(fake: FakeOpenAI) -> None:
    config = cfg(fake)
    service = AIService(
        VisionAnalyzerOpenAI(API_KEY, config),
        CaptionGeneratorOpenAI(API_KEY, config),
        sd_caption_enabled=True,
        rate_limiter=AsyncRateLimiter(600, burst=1),  # one call per 100 ms
    )
    started = time.monotonic()
    seen = await service.analyze(image())
    first = await service.generate_caption(seen, CaptionSpec(hashtags="#x"))
    second = await service.generate_caption(seen, CaptionSpec())
    assert time.monotonic() - started >= 0.18  # three calls, two waits
    assert fake.kinds() == ["vision", "json_caption", "json_caption"]
    assert (first.caption, first.sd_caption) == (f"{CAPTION} #x", SD_CAPTION)
    assert second.caption == CAPTION


async def test_ai_service_surfaces_adapter_failures_as_ai_service_errors(fake: FakeOpenAI) -> None:
    peer_of(fake).inject(ROUTE, Reply.json({}, status=400))
    service = AIService(VisionAnalyzerOpenAI(API_KEY, cfg(fake)), CaptionGeneratorOpenAI(API_KEY, cfg(fake)))
    with pytest.raises(AIServiceError, match="HTTP 400"):
        await service.analyze(image())
