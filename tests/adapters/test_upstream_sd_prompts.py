"""Upstream's `sd_caption_*` keys reach the model calls with upstream's meaning (a real SDK, a local stand-in)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Tuple

import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.config.schema import OpenAIConfig
from publisher_v2.domain.models import CaptionSpec, ImageAnalysis
from publisher_v2.services.ai.openai_adapter import CaptionGeneratorOpenAI
from tests.adapters.peers.httpd import HttpPeer
from tests.adapters.peers.openai_fake import API_KEY, FakeOpenAI

SYSTEM = "You are a senior copywriter."
ROLE = "Write a caption for:"
SD_SYSTEM = "You write Stable Diffusion prompts."
SD_ROLE = "Write caption and sd_caption as JSON for this analysis."


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tuple[FakeOpenAI, str]]:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    fake = FakeOpenAI()
    with HttpPeer(fake) as server:
        yield fake, server.url
        assert not server.errors, server.errors


def analysis() -> ImageAnalysis:
    return ImageAnalysis(description="A red square.", mood="calm", tags=["red", "square"])


def openai_config(tmp_path: Path, url: str, keys: str) -> OpenAIConfig:
    ini = tmp_path / "upstream.ini"
    ini.write_text(
        f"[Storage]\nbackend = local\n[Local]\nimage_folder = images\n[openAI]\nbase_url = {url}/v1\n"
        f"system_prompt = {SYSTEM}\nrole_prompt = {ROLE}\ncaption_model = gpt-caption\n{keys}",
        encoding="utf-8",
    )
    return load_application_config(ini).openai


async def test_single_call_uses_the_sd_model_and_prompts(tmp_path: Path, peer: Tuple[FakeOpenAI, str]) -> None:
    fake, url = peer
    cfg = openai_config(
        tmp_path,
        url,
        f"sd_caption_model = gpt-sd\nsd_caption_system_prompt = {SD_SYSTEM}\nsd_caption_role_prompt = {SD_ROLE}\n",
    )
    result = await CaptionGeneratorOpenAI(API_KEY, cfg).generate(analysis(), CaptionSpec(), True)
    assert result.caption and result.sd_caption
    [call] = fake.calls
    assert call["model"] == "gpt-sd"
    assert call["messages"][0] == {"role": "system", "content": SD_SYSTEM}
    user = call["messages"][1]["content"]
    assert user.startswith(SD_ROLE) and ROLE not in user


async def test_unset_sd_keys_fall_back_to_the_caption_model_and_prompts(
    tmp_path: Path, peer: Tuple[FakeOpenAI, str]
) -> None:
    fake, url = peer
    cfg = openai_config(tmp_path, url, "sd_caption_system_prompt =\n")
    await CaptionGeneratorOpenAI(API_KEY, cfg).generate(analysis(), CaptionSpec(), True)
    [call] = fake.calls
    assert call["model"] == "gpt-caption"
    assert call["messages"][0] == {"role": "system", "content": SYSTEM}
    assert call["messages"][1]["content"].startswith(ROLE)


async def test_two_calls_send_the_sd_system_prompt_only_to_the_sd_call(
    tmp_path: Path, peer: Tuple[FakeOpenAI, str]
) -> None:
    fake, url = peer
    cfg = openai_config(
        tmp_path, url, f"sd_caption_single_call_enabled = false\nsd_caption_system_prompt = {SD_SYSTEM}\n"
    )
    await CaptionGeneratorOpenAI(API_KEY, cfg).generate(analysis(), CaptionSpec(), True)
    caption_call, sd_call = fake.calls
    assert caption_call["messages"][0]["content"] == SYSTEM
    assert sd_call["messages"][0]["content"] == SD_SYSTEM
