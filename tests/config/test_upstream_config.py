"""An upstream (1c2ca10) INI and environment load here with upstream's meaning; new keys stay additive."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.config.schema import DEFAULT_ROLE_PROMPT, DEFAULT_SYSTEM_PROMPT
from publisher_v2.domain.errors import ConfigurationError
from tests.conftest import SECRET_VARS
from tests.ledger.conftest import logged

DATA = Path(__file__).resolve().parent / "upstream_data"
UPSTREAM_ENV = {
    "DROPBOX_APP_KEY": "app-key-1234",
    "DROPBOX_APP_SECRET": "app-secret-1234",
    "DROPBOX_REFRESH_TOKEN": "refresh-token-1234",
    "OPENAI_API_KEY": "sk-test-0123456789abcdef0123",
    "EMAIL_PASSWORD": "mail-password-1234",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*SECRET_VARS, "SMTP_SERVER", "SMTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout is found


@pytest.fixture
def upstream_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in UPSTREAM_ENV.items():
        monkeypatch.setenv(name, value)


def write_ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "upstream.ini"
    path.write_text(text, encoding="utf-8")
    return path


def test_upstream_email_example_means_dropbox_openai_live_email(upstream_env: None) -> None:
    config = load_application_config(DATA / "email_service.ini")
    assert (config.storage.backend, config.ai.backend, config.publishing.backend) == ("dropbox", "openai", "live")
    assert config.dropbox.image_folder == "/Photos/to_post" and config.dropbox.archive == "archive"
    assert config.content.fetlife is True and config.enabled_platforms() == ["email"]
    assert config.content.hashtag_string == "" and config.content.archive is True and config.content.debug is False
    # Inline `;` comments are gone from every value, as upstream's parser dropped them.
    assert config.openai.vision_model == "gpt-4o" and config.openai.caption_model == "gpt-4o-mini"
    assert config.email.caption_target == "subject" and config.email.subject_mode == "normal"
    assert config.email.sender == "me@gmail.com" and config.email.smtp_port == 587
    assert config.email.confirmation_tags_count == 5
    assert config.openai.role_prompt.endswith("End with an open question.")
    assert config.secrets.EMAIL_PASSWORD is not None


def test_upstream_v1_style_example_loads_with_hash_comments_and_ignored_v1_keys(
    upstream_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="publisher_v2.config")
    config = load_application_config(DATA / "social_media.ini")
    assert config.storage.backend == "dropbox" and config.dropbox.image_folder == "/YourFolder/Images"
    # `# …` after whitespace is a comment upstream, so the whole hashtag line is empty there and here.
    assert config.content.hashtag_string == ""
    assert config.content.archive is True and config.enabled_platforms() == []
    assert config.email.smtp_server == "smtp.gmail.com" and config.email.smtp_port == 587
    # v1 keys change nothing: upstream's defaults hold.
    assert config.openai.vision_model == "gpt-4o" and config.openai.caption_model == "gpt-4o-mini"
    assert config.openai.system_prompt == DEFAULT_SYSTEM_PROMPT and config.openai.role_prompt == DEFAULT_ROLE_PROMPT
    assert logged(caplog, "config_unknown_section")[0]["section"] == "Replicate"
    unknown = logged(caplog, "config_unknown_keys")
    assert unknown and unknown[0]["keys"] == ["engine", "rolecontent", "systemcontent"]


def test_upstream_ini_without_secrets_names_the_missing_variables(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_application_config(DATA / "email_service.ini")
    message = str(info.value)
    assert "email_service.ini" in message and "[Dropbox]" in message and "DROPBOX_APP_KEY" in message
    assert "no [Storage] section" in message


@pytest.mark.parametrize(
    "keys, vision, caption",
    [
        ("model = gpt-4.1", "gpt-4.1", "gpt-4.1"),
        ("model = gpt-4.1\nvision_model = gpt-4o", "gpt-4o", "gpt-4.1"),
        ("model = gpt-4.1\ncaption_model = gpt-4o-mini", "gpt-4.1", "gpt-4o-mini"),
        ("model = gpt-4.1\nvision_model =\ncaption_model =", "gpt-4.1", "gpt-4.1"),
        ("vision_model =", "gpt-4o", "gpt-4o-mini"),
        ("", "gpt-4o", "gpt-4o-mini"),
    ],
)
def test_legacy_model_key_precedence(tmp_path: Path, upstream_env: None, keys: str, vision: str, caption: str) -> None:
    path = write_ini(tmp_path, f"[Dropbox]\nimage_folder = /p\n[openAI]\n{keys}\n")
    config = load_application_config(path)
    assert (config.openai.vision_model, config.openai.caption_model) == (vision, caption)


def test_sd_caption_keys_load_and_fall_back(tmp_path: Path, upstream_env: None) -> None:
    path = write_ini(
        tmp_path,
        "[Dropbox]\nimage_folder = /p\n[openAI]\nsd_caption_enabled = no\nsd_caption_single_call_enabled = off\n"
        "sd_caption_model = gpt-4o\nsd_caption_system_prompt = You write SD prompts.  ; comment\n"
        "sd_caption_role_prompt = Describe pose and light.\n",
    )
    openai = load_application_config(path).openai
    assert openai.sd_caption_enabled is False and openai.sd_caption_single_call_enabled is False
    assert openai.sd_caption_model == "gpt-4o"
    assert openai.sd_caption_system_prompt == "You write SD prompts."
    assert openai.sd_caption_role_prompt == "Describe pose and light."
    unset = load_application_config(write_ini(tmp_path, "[Dropbox]\nimage_folder = /p\n[openAI]\nsd_caption_model =\n"))
    assert unset.openai.sd_caption_model is None and unset.openai.sd_caption_system_prompt is None


def test_smtp_environment_is_the_fallback_after_the_ini(
    tmp_path: Path, upstream_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_SERVER", "mail.example.net")
    monkeypatch.setenv("SMTP_PORT", "2525")
    base = "[Dropbox]\nimage_folder = /p\n[Content]\nfetlife = true\n[Email]\nsender = a@b.c\nrecipient = d@e.f\n"
    from_env = load_application_config(write_ini(tmp_path, base)).email
    assert (from_env.smtp_server, from_env.smtp_port) == ("mail.example.net", 2525)
    from_ini = load_application_config(write_ini(tmp_path, base + "smtp_server = smtp.x.org\nsmtp_port = 465\n")).email
    assert (from_ini.smtp_server, from_ini.smtp_port) == ("smtp.x.org", 465)
    monkeypatch.setenv("SMTP_PORT", "not-a-port")
    with pytest.raises(ConfigurationError, match=r"upstream\.ini: \[environment\] SMTP_PORT"):
        load_application_config(write_ini(tmp_path, base))
    # The INI's port wins, so a bad SMTP_PORT is not even read (upstream failed here; we need not).
    assert load_application_config(write_ini(tmp_path, base + "smtp_port = 465\n")).email.smtp_port == 465


def test_platform_switched_on_without_its_section_is_off_as_upstream_made_it(
    tmp_path: Path, upstream_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="publisher_v2.config")
    path = write_ini(tmp_path, "[Dropbox]\nimage_folder = /p\n[Content]\nfetlife = true\ninstagram = yes\n")
    config = load_application_config(path)
    assert config.enabled_platforms() == []
    assert {e["key"] for e in logged(caplog, "config_platform_disabled")} == {"fetlife", "instagram"}


def test_upstream_instagram_login_is_a_clear_error(
    tmp_path: Path, upstream_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_ini(
        tmp_path, "[Dropbox]\nimage_folder = /p\n[Content]\ninstagram = true\n[Instagram]\nname = someone\n"
    )
    with pytest.raises(
        ConfigurationError,
        match=r"upstream\.ini: 2 settings to fix: \[Content\] instagram = true needs .*INSTA_PASSWORD; "
        r"\[Instagram\] user_id: required .*instagrapi",
    ):  # both in one error (issue 22.6)
        load_application_config(path)
    monkeypatch.setenv("INSTA_PASSWORD", "an-upstream-password")
    with pytest.raises(ConfigurationError, match=r"upstream\.ini: \[Instagram\] user_id: required .*instagrapi"):
        load_application_config(path)


def test_percent_interpolation_and_case_insensitive_keys_as_upstream(tmp_path: Path, upstream_env: None) -> None:
    path = write_ini(
        tmp_path,
        "[Dropbox]\nImage_Folder = /p\n[openAI]\nrole_prompt = 100%% real\nsystem_prompt = 5% off\n",
    )
    config = load_application_config(path)
    assert config.dropbox.image_folder == "/p"
    assert config.openai.role_prompt == "100% real"
    assert config.openai.system_prompt == "5% off"  # upstream refused a bare %; kept as written here


def test_native_ini_keeps_hashtags_and_drops_inline_comments(tmp_path: Path) -> None:
    path = write_ini(
        tmp_path,
        "[Storage]\nbackend = local ; the default\n[Local]\nimage_folder = images  # here\n"
        "[Content]\nhashtag_string = #photo #art  # two tags\ndebug = true;not a comment\n"
        "[openAI]\nrole_prompt = 100%% real\n",
    )
    with pytest.raises(ConfigurationError, match=r"\[Content\] debug"):
        load_application_config(path)
    path.write_text(path.read_text().replace("debug = true;not a comment\n", "telegram = true ;on\n"))
    config = load_application_config(path)
    assert config.storage.backend == "local" and config.local.image_folder == (tmp_path / "images").resolve()
    assert config.content.hashtag_string == "#photo #art" and config.content.telegram is True
    assert config.openai.role_prompt == "100%% real"  # no interpolation in this project's own INI files
    assert config.ai.backend == "offline" and config.publishing.backend == "outbox"


def test_explicit_sections_override_the_upstream_meaning(tmp_path: Path, upstream_env: None) -> None:
    path = write_ini(
        tmp_path, "[Dropbox]\nimage_folder = /p\n[AI]\nbackend = offline\n[Publishing]\nbackend = outbox\n"
    )
    config = load_application_config(path)
    assert (config.storage.backend, config.ai.backend, config.publishing.backend) == ("dropbox", "offline", "outbox")


def test_a_dotenv_in_the_working_directory_is_read_like_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("\n".join(f"{k}={v}" for k, v in UPSTREAM_ENV.items()) + "\n")
    nested = tmp_path / "run"
    nested.mkdir()
    path = write_ini(nested, "[Dropbox]\nimage_folder = /p\n")
    monkeypatch.chdir(nested)  # found upwards, as python-dotenv's search did upstream
    config = load_application_config(path)
    assert config.secrets.OPENAI_API_KEY is not None
    assert config.secrets.OPENAI_API_KEY.get_secret_value() == UPSTREAM_ENV["OPENAI_API_KEY"]
