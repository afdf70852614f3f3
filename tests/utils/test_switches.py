"""One vocabulary for every boolean setting (publisher_v2/utils/switches.py): the INI through the real loader,
the web's environment switches through WebSettings, the analyser's answers through the same words."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.domain.errors import ConfigurationError
from publisher_v2.utils.switches import FALSE_WORDS, TRUE_WORDS, is_on
from publisher_v2.web.auth import WebSettings


def _archive(tmp_path: Path, value: str) -> bool:
    ini = tmp_path / "publisher.ini"
    ini.write_text(f"[Local]\nimage_folder = images\n[Content]\narchive = {value}\n", encoding="utf-8")
    return load_application_config(ini).content.archive


@pytest.mark.parametrize("word", sorted(TRUE_WORDS | {w.upper() for w in TRUE_WORDS} | {" On "}))
def test_every_true_word_switches_on_in_the_ini_and_the_environment(tmp_path: Path, word: str) -> None:
    assert _archive(tmp_path, word) is True
    assert WebSettings.from_env({"WEB_SECURE_COOKIES": word}).secure_cookies is True
    assert is_on(word) is True


@pytest.mark.parametrize("word", sorted(FALSE_WORDS | {"OFF", "No"}))
def test_every_false_word_switches_off_in_the_ini_and_the_environment(tmp_path: Path, word: str) -> None:
    assert _archive(tmp_path, word) is False
    assert WebSettings.from_env({"WEB_SECURE_COOKIES": word}).secure_cookies is False


@pytest.mark.parametrize("word", ["y", "t", "perhaps", "enabled"])
def test_a_word_outside_the_vocabulary_is_an_ini_error_naming_the_key_and_off_in_the_environment(
    tmp_path: Path, word: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"\[Content\] archive: .*not a boolean"):
        _archive(tmp_path, word)
    assert WebSettings.from_env({"WEB_SECURE_COOKIES": word}).secure_cookies is False
    assert is_on(word) is False
