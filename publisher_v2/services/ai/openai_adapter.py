"""The production analyser and caption generator on the official `openai` SDK (chat completions).

Both ask for JSON (`response_format={"type": "json_object"}`) and read the answer defensively: a model
is not a parser, so lists stay lists, strings are coerced, missing keys get defaults, and output that
cannot be used becomes an AIServiceError with a clear message (analysis) or a recorded fallback (caption).
Every call has an explicit model, max_tokens, timeout and retry budget; the SDK retries 429, 5xx and
timeouts with backoff. `base_url` comes from [openAI] base_url, else the SDK reads OPENAI_BASE_URL. The
key is never logged: every error text passes through `sanitize`.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
from typing import Any, Dict, List, Optional, Tuple

import openai
from openai import AsyncOpenAI

from publisher_v2.config.schema import ApplicationConfig, OpenAIConfig
from publisher_v2.domain.errors import AIServiceError, ConfigurationError
from publisher_v2.domain.models import CaptionResult, CaptionSpec, ImageAnalysis, ImageContent
from publisher_v2.utils.logging import log_json, sanitize
from publisher_v2.utils.switches import is_on

logger = logging.getLogger("publisher_v2.ai.openai")

ANALYSIS_PROMPT = (
    "You analyse photographs for a publishing pipeline. "
    "Reply with ONE JSON object and nothing else, with keys: "
    '"description" (one or two sentences), "mood" (a word or two), '
    '"tags" (array of 5-15 short lowercase tags), '
    '"nsfw" (boolean), "safety_labels" (array of strings, empty when none), "subject", "style", "lighting", '
    '"camera", "clothing_or_accessories", "pose", "composition", "background" (strings, null when unknown), '
    '"aesthetic_terms" (array of strings), "color_palette" (array of colour names).'
)

SD_CAPTION_RULES = (
    "The sd_caption is a Stable-Diffusion training caption: one line of comma-separated descriptive phrases "
    "(subject, pose, clothing, lighting, composition, style, palette), "
    "no hashtags, no emojis, under 400 characters."
)

_LIST_FIELDS = ("tags", "safety_labels", "aesthetic_terms", "color_palette")
_TEXT_FIELDS = (
    "subject",
    "style",
    "lighting",
    "camera",
    "clothing_or_accessories",
    "pose",
    "composition",
    "background",
)
_ALIASES = {
    "art_style": "style",
    "colors": "color_palette",
    "colour_palette": "color_palette",
    "safety": "safety_labels",
}


# -- coercion of model output ------------------------------------------------------------------------------


def _as_text(value: Any) -> Optional[str]:
    """A model's value as one string: lists are joined, objects are JSON, blanks are None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):
        joined = ", ".join(t for t in (_as_text(v) for v in value) if t)
        return joined or None
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _as_list(value: Any) -> List[str]:
    """A model's value as a list of strings: a comma/semicolon/newline separated string is split."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,;\n]", value) if part.strip()]
    if isinstance(value, (list, tuple)):
        return [t for t in (_as_text(v) for v in value) if t]
    text = _as_text(value)
    return [text] if text else []


def parse_json_object(text: Optional[str]) -> Optional[Dict[str, Any]]:
    """The JSON object in `text` (also inside a ```json fence), or None when there is none."""
    if not text:
        return None
    candidate = text.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", candidate, re.DOTALL | re.IGNORECASE)
    if fenced:
        candidate = fenced.group(1)
    try:
        value = json.loads(candidate)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def analysis_from_json(data: Dict[str, Any], model_version: str) -> ImageAnalysis:
    """Build an ImageAnalysis from a model's JSON object; AIServiceError when nothing in it is usable."""
    data = {_ALIASES.get(k, k): v for k, v in data.items()}
    lists = {name: _as_list(data.get(name)) for name in _LIST_FIELDS}
    texts = {name: _as_text(data.get(name)) for name in _TEXT_FIELDS}
    description = _as_text(data.get("description")) or texts["subject"] or ", ".join(lists["tags"][:5])
    if not description:
        raise AIServiceError(
            f"OpenAI vision model {model_version} returned JSON without a description, subject or tags"
        )
    return ImageAnalysis(
        description=description,
        mood=_as_text(data.get("mood")) or "unspecified",
        nsfw=is_on(data.get("nsfw")),
        model_version=model_version,
        **lists,
        **texts,
    )


# -- shared client plumbing --------------------------------------------------------------------------------


def _sniff_mime(data: bytes, name: str) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return mimetypes.guess_type(name)[0] or "image/jpeg"


def image_url_for(image: ImageContent) -> str:
    """The link when the storage has public links (the model fetches it), else the bytes as a data: URL."""
    if image.public_url and image.temp_url:
        return image.temp_url
    encoded = base64.b64encode(image.data).decode("ascii")
    return f"data:{_sniff_mime(image.data, image.name)};base64,{encoded}"


class _OpenAIClient:
    """One chat-completion call with explicit limits, errors mapped to AIServiceError (sanitised)."""

    def __init__(self, api_key: str, cfg: OpenAIConfig) -> None:
        self._api_key = api_key
        self.cfg = cfg

    @staticmethod
    def _api_key_from(config: ApplicationConfig) -> str:
        secret = config.secrets.OPENAI_API_KEY
        if secret is None:
            raise ConfigurationError("[AI] backend = openai needs the environment variable OPENAI_API_KEY")
        return secret.get_secret_value()

    async def complete(
        self, what: str, model: str, messages: List[Dict[str, Any]], json_mode: bool
    ) -> Tuple[Optional[str], str]:
        """(message content, model that answered); a refusal or an API failure is an AIServiceError."""
        extra: Dict[str, Any] = {"response_format": {"type": "json_object"}} if json_mode else {}
        # A client per call: closed with its connections, it never outlives the event loop that used it.
        try:
            async with AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.cfg.base_url or None,
                timeout=self.cfg.timeout_seconds,
                max_retries=self.cfg.max_retries,
            ) as client:
                completion = await client.chat.completions.create(
                    model=model,
                    messages=messages,
                    max_tokens=self.cfg.max_tokens,
                    **extra,  # type: ignore[arg-type]
                )
        except openai.APITimeoutError:
            raise AIServiceError(
                f"OpenAI {what} ({model}) timed out after {self.cfg.timeout_seconds}s "
                f"and {self.cfg.max_retries} retries"
            ) from None
        except openai.APIStatusError as exc:
            raise AIServiceError(
                sanitize(f"OpenAI {what} ({model}) failed: HTTP {exc.status_code}: {exc.message}")
            ) from None
        except openai.APIConnectionError as exc:
            raise AIServiceError(sanitize(f"OpenAI {what} ({model}) cannot reach the API: {exc}")) from None
        except openai.OpenAIError as exc:
            raise AIServiceError(
                sanitize(f"OpenAI {what} ({model}) failed: {type(exc).__name__}: {exc}")
            ) from None
        try:
            choice = completion.choices[0]
            message = choice.message
            refusal = getattr(message, "refusal", None)
            content = message.content
            answered_by = getattr(completion, "model", None) or model
        except (AttributeError, IndexError, TypeError):
            raise AIServiceError(f"OpenAI {what} ({model}) returned a response without a message") from None
        if refusal:
            raise AIServiceError(sanitize(f"OpenAI {what} ({model}) refused: {refusal}"))
        return (content if isinstance(content, str) else None), str(answered_by)


class _OpenAIRole:
    """What both roles share: a client built from [openAI] and the key, and the model they report."""

    def __init__(self, api_key: str, cfg: OpenAIConfig) -> None:
        self._client = _OpenAIClient(api_key, cfg)
        self.cfg = cfg
        self.model_version = self._model(cfg)

    @staticmethod
    def _model(cfg: OpenAIConfig) -> str:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: ApplicationConfig) -> Any:
        return cls(_OpenAIClient._api_key_from(config), config.openai)


class VisionAnalyzerOpenAI(_OpenAIRole):
    """Describes an image with a vision model, as JSON, into ImageAnalysis."""

    @staticmethod
    def _model(cfg: OpenAIConfig) -> str:
        return cfg.vision_model

    async def analyze(self, image: ImageContent) -> ImageAnalysis:
        messages = [
            {"role": "system", "content": ANALYSIS_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"Analyse this image ({image.name})."},
                    {"type": "image_url", "image_url": {"url": image_url_for(image)}},
                ],
            },
        ]
        content, model = await self._client.complete(
            "vision analysis", self.cfg.vision_model, messages, json_mode=True
        )
        data = parse_json_object(content)
        if data is None:
            log_json(
                logger,
                logging.WARNING,
                "ai_output_malformed",
                stage="analysis",
                model=model,
                output=(content or "")[:200],
            )
            raise AIServiceError(f"OpenAI vision model {model} returned no JSON object for {image.name}")
        return analysis_from_json(data, model)


class CaptionGeneratorOpenAI(_OpenAIRole):
    """Writes the caption, plus the SD caption in the same JSON call when enabled (plain caption fallback)."""

    @staticmethod
    def _model(cfg: OpenAIConfig) -> str:
        return cfg.caption_model

    def _brief(self, analysis: ImageAnalysis, spec: CaptionSpec, role: Optional[str] = None) -> str:
        facts = {
            k: v
            for k, v in {
                "description": analysis.description,
                "mood": analysis.mood,
                "tags": analysis.tags,
                "subject": analysis.subject,
                "style": analysis.style,
                "lighting": analysis.lighting,
                "pose": analysis.pose,
                "composition": analysis.composition,
                "background": analysis.background,
                "color_palette": analysis.color_palette,
                "clothing_or_accessories": analysis.clothing_or_accessories,
            }.items()
            if v
        }
        lines = [
            role or self.cfg.role_prompt,
            f"Platform: {spec.platform}. Style: {spec.style}. At most {spec.max_length} characters.",
            "Do not add hashtags; they are appended separately.",
        ]
        if spec.extra_instructions:
            lines.append(spec.extra_instructions)
        lines.append("What the image shows (JSON): " + json.dumps(facts, ensure_ascii=False))
        return "\n".join(lines)

    def _messages(self, user: str, system: Optional[str] = None) -> List[Dict[str, Any]]:
        return [{"role": "system", "content": system or self.cfg.system_prompt}, {"role": "user", "content": user}]

    @staticmethod
    def _finish(caption: str, spec: CaptionSpec) -> str:
        caption = caption.strip().strip('"').strip()
        tags = spec.hashtags.strip()
        if tags and not all(tag in caption for tag in tags.split()):
            caption = f"{caption} {tags}"
        return caption

    async def generate(
        self, analysis: ImageAnalysis, spec: CaptionSpec, with_sd_caption: bool
    ) -> CaptionResult:
        if with_sd_caption and self.cfg.sd_caption_single_call_enabled:
            # Upstream's single call: the sd_caption_* model and prompts, each falling back to the plain one.
            return await self._single_call(self._brief(analysis, spec, self.cfg.sd_caption_role_prompt), spec)
        brief = self._brief(analysis, spec)
        result = await self._plain_caption(brief, spec)
        if with_sd_caption:
            result.sd_caption = await self._sd_caption(analysis)
        return result

    async def _single_call(self, brief: str, spec: CaptionSpec) -> CaptionResult:
        user = (
            f"{brief}\nReply with ONE JSON object with exactly two string keys: "
            f'"caption" and "sd_caption". {SD_CAPTION_RULES}'
        )
        model = self.cfg.sd_caption_model or self.cfg.caption_model
        content, answered_by = await self._client.complete(
            "caption", model, self._messages(user, self.cfg.sd_caption_system_prompt), json_mode=True
        )
        data = parse_json_object(content) or {}
        caption = data.get("caption")
        sd_caption = data.get("sd_caption")
        if isinstance(caption, str) and caption.strip():
            return CaptionResult(
                caption=self._finish(caption, spec),
                sd_caption=_as_text(sd_caption),
                model_version=answered_by,
            )
        log_json(
            logger,
            logging.WARNING,
            "ai_caption_fallback",
            model=answered_by,
            reason="single-call output is not a JSON object with a caption",
            output=(content or "")[:200],
        )
        result = await self._plain_caption(brief, spec)
        result.fallback_used = True
        return result

    async def _plain_caption(self, brief: str, spec: CaptionSpec) -> CaptionResult:
        user = f"{brief}\nReply with the caption text only."
        model = self.cfg.caption_model
        content, answered_by = await self._client.complete(
            "caption", model, self._messages(user), json_mode=False
        )
        text = (content or "").strip()
        data = parse_json_object(text)
        if data is not None and isinstance(data.get("caption"), str):
            text = data["caption"]  # a model that answers JSON anyway
        if not text.strip():
            raise AIServiceError(f"OpenAI caption model {answered_by} returned an empty caption")
        return CaptionResult(caption=self._finish(text, spec), model_version=answered_by)

    async def _sd_caption(self, analysis: ImageAnalysis) -> Optional[str]:
        """The SD caption in its own call (single call disabled); a malformed answer leaves it None."""
        model = self.cfg.sd_caption_model or self.cfg.caption_model
        user = (
            "Write a Stable-Diffusion caption for this image. Reply with ONE JSON object with the string key "
            f'"sd_caption". {SD_CAPTION_RULES}\nWhat the image shows: {analysis.description}; tags: '
            + ", ".join(analysis.tags)
        )
        content, answered_by = await self._client.complete(
            "sd caption", model, self._messages(user, self.cfg.sd_caption_system_prompt), json_mode=True
        )
        sd_caption = _as_text((parse_json_object(content) or {}).get("sd_caption"))
        if sd_caption is None:
            log_json(
                logger,
                logging.WARNING,
                "ai_output_malformed",
                stage="sd_caption",
                model=answered_by,
                output=(content or "")[:200],
            )
        return sd_caption
