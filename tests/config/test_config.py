"""Configuration loading: every error names the file, the section and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.domain.errors import ConfigurationError
from tests.conftest import SECRET_VARS


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)


def write_ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "publisher.ini"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_runs_on_embedded_defaults(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "[Local]\nimage_folder = images\n")
    config = load_application_config(path)
    assert config.storage.backend == "local"
    assert config.ai.backend == "offline"
    assert config.publishing.backend == "outbox"
    assert config.local.image_folder == (tmp_path / "images").resolve()
    assert config.publishing.outbox_folder == (tmp_path / "outbox").resolve()
    assert config.state.ledger_path == (tmp_path / "publisher_state.sqlite").resolve()


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ini"
    with pytest.raises(ConfigurationError, match=r"nope\.ini: configuration file not found"):
        load_application_config(missing)


def test_directory_instead_of_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a file"):
        load_application_config(tmp_path)


def test_unreadable_ini_syntax_names_the_file(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "this is not ini\n[Local\n")
    with pytest.raises(ConfigurationError, match=r"publisher\.ini:1: not a valid INI file"):
        load_application_config(path)


def test_unknown_choice_names_section_key_and_value(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "[Local]\nimage_folder = images\n[Email]\ncaption_target = sideways\n")
    with pytest.raises(ConfigurationError) as info:
        load_application_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "[Email] caption_target" in message
    assert "sideways" in message


def test_bad_number_names_section_and_key(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "[Local]\nimage_folder = images\n[Email]\nsmtp_port = many\n")
    with pytest.raises(ConfigurationError, match=r"\[Email\] smtp_port"):
        load_application_config(path)


def test_bad_boolean_names_section_and_key(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "[Local]\nimage_folder = images\n[Content]\narchive = perhaps\n")
    with pytest.raises(ConfigurationError, match=r"\[Content\] archive"):
        load_application_config(path)


def test_section_names_match_case_insensitively(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "[local]\nimage_folder = images\n[content]\ntelegram = true\n")
    assert load_application_config(path).enabled_platforms() == ["telegram"]


def test_local_backend_needs_an_image_folder(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "[Content]\ntelegram = true\n")
    with pytest.raises(ConfigurationError, match=r"\[Local\] image_folder: required"):
        load_application_config(path)


def test_live_platform_without_its_secret_names_the_variable(tmp_path: Path) -> None:
    path = write_ini(
        tmp_path, "[Local]\nimage_folder = images\n[Content]\ntelegram = true\n[Publishing]\nbackend = live\n"
    )
    with pytest.raises(ConfigurationError, match="TELEGRAM_BOT_TOKEN"):
        load_application_config(path)


def test_outbox_publishing_needs_no_secrets(tmp_path: Path) -> None:
    path = write_ini(
        tmp_path, "[Local]\nimage_folder = images\n[Content]\ntelegram = true\ninstagram = true\n"
    )
    assert load_application_config(path).enabled_platforms() == ["telegram", "instagram"]


def test_openai_backend_without_key_names_the_variable(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "[Local]\nimage_folder = images\n[AI]\nbackend = openai\n")
    with pytest.raises(ConfigurationError, match=r"\[AI\] backend = openai needs .*OPENAI_API_KEY"):
        load_application_config(path)


def test_env_file_supplies_secrets_and_real_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_ini(tmp_path, "[Local]\nimage_folder = images\n[AI]\nbackend = openai\n")
    env = tmp_path / ".env"
    env.write_text("OPENAI_API_KEY=from-file-123456\nTELEGRAM_CHANNEL_ID=@file\n", encoding="utf-8")
    monkeypatch.setenv("TELEGRAM_CHANNEL_ID", "@real")
    config = load_application_config(path, env)
    assert config.secrets.OPENAI_API_KEY is not None
    assert config.secrets.OPENAI_API_KEY.get_secret_value() == "from-file-123456"
    assert config.secrets.TELEGRAM_CHANNEL_ID == "@real"


def test_missing_env_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = write_ini(tmp_path, "[Local]\nimage_folder = images\n")
    with pytest.raises(ConfigurationError, match=r"missing\.env: environment file not found"):
        load_application_config(path, tmp_path / "missing.env")


def test_secrets_are_registered_for_redaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher_v2.utils.logging import sanitize

    monkeypatch.setenv("EMAIL_PASSWORD", "correct-horse-battery")
    path = write_ini(tmp_path, "[Local]\nimage_folder = images\n")
    load_application_config(path)
    assert sanitize("login failed for correct-horse-battery") == "login failed for [REDACTED]"
