"""The production adapters built from a real INI file plus the environment, and the secrets they need."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Dict

import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.domain.errors import ConfigurationError
from publisher_v2.services.ai.openai_adapter import CaptionGeneratorOpenAI, VisionAnalyzerOpenAI
from publisher_v2.services.publishers.email import EmailPublisher
from publisher_v2.services.publishers.instagram import InstagramPublisher
from publisher_v2.services.publishers.telegram import TelegramPublisher
from publisher_v2.services.storage.dropbox import DropboxStorage
from publisher_v2.utils.logging import REDACTED, sanitize

SECRETS: Dict[str, str] = {
    "DROPBOX_APP_KEY": "cfgtest-app-key-11",
    "DROPBOX_APP_SECRET": "cfgtest-app-secret-22",
    "DROPBOX_REFRESH_TOKEN": "cfgtest-refresh-33",
    "OPENAI_API_KEY": "cfgtest-openai-44",
    "TELEGRAM_BOT_TOKEN": "5550001:cfgtest-telegram-token-55",
    "TELEGRAM_CHANNEL_ID": "-100777",
    "EMAIL_PASSWORD": "cfgtest-mail-66",
    "INSTA_PASSWORD": "cfgtest-graph-77",
}

LIVE_INI = """
[Storage]
backend = dropbox
[Dropbox]
image_folder = /Photos/inbox/
archive = done
timeout_seconds = 12
max_retries = 4
retry_backoff_seconds = 0.5
[AI]
backend = openai
[openAI]
vision_model = gpt-4o
caption_model = gpt-4o-mini
base_url = http://127.0.0.1:9/v1
max_tokens = 500
[Content]
telegram = true
instagram = true
fetlife = true
[Publishing]
backend = live
timeout_seconds = 20
[Telegram]
base_url = http://127.0.0.1:9/bot
max_width = 1000
[Instagram]
user_id = 1784
graph_base_url = http://127.0.0.1:9/v21.0
poll_interval_seconds = 0.5
[Email]
sender = me@example.org
recipient = upload@example.net
smtp_server = 127.0.0.1
smtp_port = 2525
caption_target = both
subject_mode = private
"""


@pytest.fixture
def ini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "live.ini"
    path.write_text(LIVE_INI, encoding="utf-8")
    return path


def test_every_production_adapter_is_built_from_the_ini_and_environment(ini: Path) -> None:
    config = load_application_config(ini)
    storage = DropboxStorage.from_config(config)
    assert (storage.folder, storage.archive_folder) == ("/Photos/inbox", "/Photos/inbox/done")
    assert (storage.max_retries, storage.retry_backoff_seconds) == (4, 0.5)
    vision, captions = VisionAnalyzerOpenAI.from_config(config), CaptionGeneratorOpenAI.from_config(config)
    assert vision.cfg.base_url == "http://127.0.0.1:9/v1" and vision.cfg.max_tokens == 500
    assert (vision.model_version, captions.model_version) == ("gpt-4o", "gpt-4o-mini")
    telegram = TelegramPublisher.from_config(config)
    assert (telegram.channel_id, telegram.base_url, telegram.max_width) == (
        "-100777",
        "http://127.0.0.1:9/bot",
        1000,
    )
    assert telegram.timeout_seconds == 20
    instagram = InstagramPublisher.from_config(config)
    assert instagram.cfg.user_id == "1784" and instagram.cfg.poll_interval_seconds == 0.5
    email = EmailPublisher.from_config(config)
    assert (email.cfg.caption_target, email.cfg.subject_mode, email.cfg.smtp_port) == (
        "both",
        "private",
        2525,
    )


def test_every_secret_is_registered_for_redaction(ini: Path) -> None:
    load_application_config(ini)
    for value in SECRETS.values():
        if len(value) > 8:
            assert sanitize(f"error near {value} here") == f"error near {REDACTED} here"


@pytest.mark.parametrize(
    "missing",
    [
        "DROPBOX_REFRESH_TOKEN",
        "OPENAI_API_KEY",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_CHANNEL_ID",
        "EMAIL_PASSWORD",
        "INSTA_PASSWORD",
    ],
)
def test_a_missing_secret_for_an_enabled_service_names_it(
    ini: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigurationError, match=missing):
        load_application_config(ini)


def test_from_config_refuses_to_build_without_its_secrets(tmp_path: Path) -> None:
    """Even a config that skipped the loader's checks cannot build an adapter without its secret."""
    config = ApplicationConfig(config_path=tmp_path / "x.ini")
    for build, name in [
        (DropboxStorage.from_config, "DROPBOX_APP_KEY"),
        (VisionAnalyzerOpenAI.from_config, "OPENAI_API_KEY"),
        (CaptionGeneratorOpenAI.from_config, "OPENAI_API_KEY"),
        (TelegramPublisher.from_config, "TELEGRAM_BOT_TOKEN"),
        (EmailPublisher.from_config, "EMAIL_PASSWORD"),
        (InstagramPublisher.from_config, "INSTA_PASSWORD"),
    ]:
        with pytest.raises(ConfigurationError, match=name):
            build(config)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("Dropbox", "max_retries", "99"),
        ("Dropbox", "retry_backoff_seconds", "-1"),
        ("Telegram", "max_width", "0"),
        ("Telegram", "max_retries", "-1"),
        ("Instagram", "poll_timeout_seconds", "0"),
        ("Email", "caption_target", "footer"),
        ("Email", "subject_mode", "loud"),
        ("openAI", "max_tokens", "0"),
    ],
)
def test_invalid_adapter_settings_name_section_and_key(ini: Path, section: str, key: str, value: str) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(LIVE_INI)
    parser.set(section, key, value)
    with ini.open("w", encoding="utf-8") as handle:
        parser.write(handle)
    with pytest.raises(ConfigurationError, match=rf"\[{section}\] {key}"):
        load_application_config(ini)


def test_live_instagram_needs_a_storage_with_public_links(ini: Path, tmp_path: Path) -> None:
    ini.write_text(
        LIVE_INI.replace("backend = dropbox", "backend = local") + "\n[Local]\nimage_folder = images\n"
    )
    with pytest.raises(ConfigurationError, match=r"instagram = true needs \[Storage\] backend = dropbox"):
        load_application_config(ini)
