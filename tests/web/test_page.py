"""The page's static files: no HTML sinks for server values, no inline script, phone-width friendly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "publisher_v2" / "web" / "static"
JS = (STATIC / "app.js").read_text(encoding="utf-8")
HTML = (STATIC / "index.html").read_text(encoding="utf-8")
CSS = (STATIC / "style.css").read_text(encoding="utf-8")

# Every way JavaScript turns a string into markup or code. The page uses none of them, so no server value
# (a filename, a caption, an error message) can ever become HTML.
HTML_SINKS = [
    r"\binnerHTML\b",
    r"\bouterHTML\b",
    r"\binsertAdjacentHTML\b",
    r"\bdocument\s*\.\s*write(ln)?\b",
    r"\bcreateContextualFragment\b",
    r"\bDOMParser\b",
    r"\bsrcdoc\b",
    r"\beval\s*\(",
    r"\bnew\s+Function\b",
    r"\bsetTimeout\s*\(\s*[\"'`]",
    r"\bsetAttribute\s*\(\s*[\"']on",
    r"\bjavascript:",
]


@pytest.mark.parametrize("pattern", HTML_SINKS)
def test_the_script_never_uses_an_html_or_code_sink(pattern: str) -> None:
    assert re.search(pattern, JS) is None, pattern


def test_the_sink_check_would_catch_an_innerhtml_assignment() -> None:
    assert any(re.search(p, "el.innerHTML = data.filename;") for p in HTML_SINKS)
    assert any(re.search(p, "node.insertAdjacentHTML('beforeend', caption)") for p in HTML_SINKS)


def test_server_values_are_written_as_text() -> None:
    for element in ("filename", "caption", "sd-caption"):
        assert re.search(r'\$\("' + element + r'"\)\.textContent\s*=', JS), element
    assert "createTextNode(text)" in JS  # the activity panel


def test_image_sources_are_checked_before_use() -> None:
    assert "safeImageUrl(data.temp_url)" in JS
    assert re.search(r'protocol === "https:"', JS)


def test_the_html_has_no_inline_script_or_handlers() -> None:
    scripts = re.findall(r"<script\b[^>]*>", HTML)
    assert scripts and all("src=" in tag for tag in scripts)
    assert re.search(r"\son[a-z]+\s*=", HTML) is None


def test_the_page_has_every_control_of_the_issue() -> None:
    for text in ("Next image", "Analyze &amp; caption", "Publish", "Log in", "Log out", "Activity"):
        assert text in HTML, text


def test_the_page_fits_a_phone_width_screen() -> None:
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in HTML
    assert "flex-wrap: wrap" in CSS and "max-width" in CSS and "@media (max-width:" in CSS
    assert "width: 100%" in CSS  # the image scales down with the screen
