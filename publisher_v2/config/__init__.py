"""Configuration: pydantic models (schema) and the INI + environment loader."""

from publisher_v2.config.loader import load_application_config
from publisher_v2.config.schema import ApplicationConfig

__all__ = ["ApplicationConfig", "load_application_config"]
