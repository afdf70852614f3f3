"""The configuration schema: one pydantic model per INI section.

Field names are the INI keys, so a validation error's location IS the section and key the operator must fix.
Secrets never come from the INI: they are read from the environment into `Secrets` (SecretStr, never logged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from publisher_v2.utils.switches import parse_switch

#: Upstream's prompt defaults (an upstream INI that leaves them out keeps meaning the same prompts).
DEFAULT_SYSTEM_PROMPT = "You are a senior social media copywriter. Write authentic, concise, platform-aware captions."
DEFAULT_ROLE_PROMPT = "Write a caption for:"


#: Upper bounds of durations (seconds): beyond them a value is a typo, and a huge one overflows the clock.
MAX_CLAIM_TTL = 365 * 24 * 3600
MAX_WAIT = 24 * 3600

def _switch(value: Any) -> bool:
    """An INI boolean in the one vocabulary (publisher_v2/utils/switches.py); anything else names the key."""
    parsed = parse_switch(value)
    if parsed is None:
        raise ValueError("not a boolean (use 1/yes/true/on or 0/no/false/off)")
    return parsed


#: A boolean INI setting.
Switch = Annotated[bool, BeforeValidator(_switch)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, validate_default=True)


class StorageConfig(_Section):
    """[Storage]: where the image library lives."""

    backend: Literal["local", "dropbox"] = "local"


class LocalConfig(_Section):
    """[Local]: the embedded default library, a folder on disk (relative paths: relative to the INI file)."""

    image_folder: Optional[Path] = None
    archive: str = "archive"


class DropboxConfig(_Section):
    """[Dropbox]: the production library."""

    image_folder: str = ""
    archive: str = "archive"
    timeout_seconds: float = Field(default=60.0, gt=0, le=MAX_WAIT)
    max_retries: int = Field(default=3, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=1.0, ge=0, le=MAX_WAIT)


class AIConfig(_Section):
    """[AI]: which analyser and caption generator run."""

    backend: Literal["offline", "openai"] = "offline"


class OpenAIConfig(_Section):
    """[openAI]: models and prompts of the production analyser and caption generator.

    Upstream's keys keep upstream's precedence: `vision_model` / `caption_model`, else the legacy `model`, else
    the default (an empty value counts as unset); the `sd_caption_*` prompts fall back to the plain ones.
    """

    vision_model: str = "gpt-4o"
    caption_model: str = "gpt-4o-mini"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    role_prompt: str = DEFAULT_ROLE_PROMPT
    sd_caption_enabled: Switch = True
    sd_caption_single_call_enabled: Switch = True
    sd_caption_model: Optional[str] = None
    sd_caption_system_prompt: Optional[str] = None
    sd_caption_role_prompt: Optional[str] = None
    model: Optional[str] = Field(default=None, description="Legacy: one model for vision and caption.")
    base_url: Optional[str] = None
    timeout_seconds: float = Field(default=60.0, gt=0, le=MAX_WAIT)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_tokens: int = Field(default=800, gt=0)
    rate_limit_per_minute: int = Field(default=20, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _upstream_precedence(cls, data: Any) -> Any:
        """Empty means unset (as upstream read it); the legacy `model` fills an unset vision/caption model."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        legacy = data.get("model")
        if legacy:
            for key in ("vision_model", "caption_model"):
                data.setdefault(key, legacy)
        return data


class ContentConfig(_Section):
    """[Content]: what to post and where (each platform is a switch)."""

    hashtag_string: str = ""
    archive: Switch = True
    debug: Switch = False
    telegram: Switch = False
    instagram: Switch = False
    fetlife: Switch = False  # historical name of the email publisher
    email: Switch = False


class PublishingConfig(_Section):
    """[Publishing]: `outbox` writes every enabled platform's post to a local folder; `live` uses the real APIs."""

    backend: Literal["outbox", "live"] = "outbox"
    outbox_folder: Path = Path("outbox")
    timeout_seconds: float = Field(default=60.0, gt=0, le=MAX_WAIT)


class TelegramConfig(_Section):
    """[Telegram]: Bot API settings (token and channel come from the environment)."""

    base_url: Optional[str] = None
    max_width: int = Field(default=1280, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=1.0, ge=0, le=MAX_WAIT)


class InstagramConfig(_Section):
    """[Instagram]: Graph API settings (the access token comes from the environment)."""

    name: str = ""
    user_id: str = ""
    graph_base_url: str = "https://graph.facebook.com/v21.0"
    max_width: int = Field(default=1080, gt=0)
    poll_interval_seconds: float = Field(default=2.0, gt=0, le=MAX_WAIT)
    poll_timeout_seconds: float = Field(default=60.0, gt=0, le=MAX_WAIT)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=1.0, ge=0, le=MAX_WAIT)


class EmailConfig(_Section):
    """[Email]: SMTP delivery (the password comes from the environment)."""

    sender: str = ""
    recipient: str = ""
    smtp_server: str = "smtp.gmail.com"
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    confirmation_to_sender: Switch = True
    confirmation_tags_count: int = Field(default=5, ge=0)
    confirmation_tags_nature: str = "short, lowercase, human-friendly topical nouns; no hashtags; no emojis"
    caption_target: Literal["subject", "body", "both"] = "subject"
    subject_mode: Literal["normal", "private", "avatar"] = "normal"


class CaptionFileConfig(_Section):
    """[CaptionFile]: the Stable-Diffusion caption sidecar."""

    enabled: Switch = True
    extended_metadata_enabled: Switch = False
    artist_alias: str = ""


class StateConfig(_Section):
    """[State]: the dedup ledger (a SQLite file, or PostgreSQL when `url` or DATABASE_URL is set) and the hash cache."""

    ledger_path: Path = Path("publisher_state.sqlite")
    #: At most a year: a claim outliving that is a mistake, and a larger number overflows the clock's arithmetic.
    claim_ttl_seconds: int = Field(default=3600, gt=0, le=MAX_CLAIM_TTL)
    #: postgresql://user:password@host:port/database: the ledger on PostgreSQL, shared by several machines.
    url: Optional[str] = None
    _url_setting: str = PrivateAttr(default="[State] url")

    @property
    def url_setting(self) -> str:
        """Where `url` came from ('[State] url' or DATABASE_URL), for messages about it."""
        return self._url_setting


class Secrets(BaseModel):
    """Secrets, only ever from the environment (or the --env file)."""

    model_config = ConfigDict(extra="ignore")

    DROPBOX_APP_KEY: Optional[SecretStr] = None
    DROPBOX_APP_SECRET: Optional[SecretStr] = None
    DROPBOX_REFRESH_TOKEN: Optional[SecretStr] = None
    OPENAI_API_KEY: Optional[SecretStr] = None
    TELEGRAM_BOT_TOKEN: Optional[SecretStr] = None
    TELEGRAM_CHANNEL_ID: Optional[str] = None
    EMAIL_PASSWORD: Optional[SecretStr] = None
    INSTA_PASSWORD: Optional[SecretStr] = None


class ApplicationConfig(BaseModel):
    """The whole configuration, as loaded from one INI file plus the environment."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config_path: Path
    storage: StorageConfig = StorageConfig()
    local: LocalConfig = LocalConfig()
    dropbox: DropboxConfig = DropboxConfig()
    ai: AIConfig = AIConfig()
    openai: OpenAIConfig = OpenAIConfig()
    content: ContentConfig = ContentConfig()
    publishing: PublishingConfig = PublishingConfig()
    telegram: TelegramConfig = TelegramConfig()
    instagram: InstagramConfig = InstagramConfig()
    email: EmailConfig = EmailConfig()
    captionfile: CaptionFileConfig = CaptionFileConfig()
    state: StateConfig = StateConfig()
    secrets: Secrets = Secrets()

    def enabled_platforms(self) -> list[str]:
        """Platform names switched on in [Content], in a stable order."""
        names = []
        if self.content.telegram:
            names.append("telegram")
        if self.content.instagram:
            names.append("instagram")
        if self.content.email or self.content.fetlife:
            names.append("email")
        return names


#: Every platform the program can publish to (the names the ledger records), in enabled_platforms' order.
ALL_PLATFORMS = ("telegram", "instagram", "email")

#: INI section name → (attribute on ApplicationConfig, model). Section names match case-insensitively.
SECTIONS: dict[str, tuple[str, type[_Section]]] = {
    "Storage": ("storage", StorageConfig),
    "Local": ("local", LocalConfig),
    "Dropbox": ("dropbox", DropboxConfig),
    "AI": ("ai", AIConfig),
    "openAI": ("openai", OpenAIConfig),
    "Content": ("content", ContentConfig),
    "Publishing": ("publishing", PublishingConfig),
    "Telegram": ("telegram", TelegramConfig),
    "Instagram": ("instagram", InstagramConfig),
    "Email": ("email", EmailConfig),
    "CaptionFile": ("captionfile", CaptionFileConfig),
    "State": ("state", StateConfig),
}
