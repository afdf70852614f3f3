"""The FastAPI app's start-up: `create_app` assembles the routers (web/routes/), dependencies and error mapping.

Start it with `uvicorn publisher_v2.web.app:app`, with `CONFIG_PATH` (and optionally `ENV_PATH`) set.
The module-level `app` is built on first access (PEP 562 `__getattr__`), so tests can import `create_app`
without a configuration, while a server with a missing or invalid configuration refuses to start with ONE line
on stderr and exit status 1 (uvicorn imports the attribute before it starts serving, so no traceback, no
half-started server).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, Optional, Tuple

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

# Events go through the module attribute (applog.log_json), read at call time, so a wrapper put on it later
# (the telemetry's one-event-per-request gate) sees every call whatever the import order.
import publisher_v2.utils.logging as applog
from publisher_v2.config.loader import load_application_config, read_environment
from publisher_v2.config.preflight import preflight
from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.domain.errors import ConfigurationError, SocialMediaPublisherError
from publisher_v2.utils.logging import setup_logging
from publisher_v2.utils.switches import is_on
from publisher_v2.web.access import RequestScopeMiddleware
from publisher_v2.web.auth import AdminSessions, LoginThrottle, WebSettings
from publisher_v2.web.responses import install_error_handlers
from publisher_v2.web.routes import actions, admin, images, pages
from publisher_v2.web.routes.pages import STATIC_DIR
from publisher_v2.web.service import WebImageService
from publisher_v2.web.sessions import SessionStore

logger = logging.getLogger("publisher_v2.web")


def load_config_from_environment() -> Tuple[ApplicationConfig, Dict[str, Optional[str]]]:
    """Load the config named by CONFIG_PATH (and ENV_PATH); ConfigurationError names what is wrong."""
    config_path = os.environ.get("CONFIG_PATH")
    if not config_path:
        raise ConfigurationError(
            "CONFIG_PATH is not set: point it at the INI file, e.g. CONFIG_PATH=publisher.ini"
        )
    env_path = os.environ.get("ENV_PATH") or None
    config = load_application_config(config_path, env_path)
    preflight(config, publishes=False)  # a library that is not a folder refuses the start, not every request
    return config, read_environment(env_path, "ENV_PATH")


# -- the app -------------------------------------------------------------------------------------------------


def create_app(
    config: Optional[ApplicationConfig] = None,
    settings: Optional[WebSettings] = None,
    service: Optional[WebImageService] = None,
) -> FastAPI:
    """Build the app. No `config`: load CONFIG_PATH/ENV_PATH; no `settings`: read them from the env."""
    env: Optional[Dict[str, Optional[str]]] = None
    if config is None and service is None:
        config, env = load_config_from_environment()
    if settings is None:
        settings = WebSettings.from_env(
            env if env is not None else read_environment(os.environ.get("ENV_PATH") or None, "ENV_PATH")
        )
    if service is None:
        assert config is not None
        service = WebImageService.from_config(config)
    web_service = service

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        web_service.ledger.schema_version()  # open the ledger now: migrations run, a bad [State] url stops here
        applog.log_json(
            logger,
            logging.INFO,
            "web_server_start",
            storage=web_service.storage.backend_name,
            platforms=[p.platform_name for p in web_service.publishers],
            admin_configured=app.state.sessions.configured,
            api_auth=settings.api_auth_enabled,
        )
        yield
        web_service.close()
        session_store.close()

    app = FastAPI(
        title="publisher_v2",
        version="2.0.0",
        description="Browse the image library, caption images and publish them (admin).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = web_service
    session_store = SessionStore(web_service.ledger.store)  # logins and logouts shared by every worker
    app.state.sessions = AdminSessions(settings, store=session_store)
    app.state.throttle = LoginThrottle(session_store)
    install_error_handlers(app)
    app.add_middleware(RequestScopeMiddleware)  # the access event names the matched route
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for area in (pages, images, actions, admin):
        app.include_router(area.router)
    return app


# -- the module-level app for `uvicorn publisher_v2.web.app:app` ---------------------------------------------


def _server_app() -> FastAPI:
    """The app a server runs: JSON logs on stderr (DEBUG with upstream's WEB_DEBUG), config from the environment,
    a one-line refusal."""
    debug = is_on(os.environ.get("WEB_DEBUG"))
    setup_logging(logging.DEBUG if debug else logging.INFO, stream=sys.stderr)
    try:
        application = create_app()
        # Open the ledger before uvicorn's start-up: a bad or unreachable [State] url / DATABASE_URL is then this
        # one event naming the setting, not a traceback ending in "Application startup failed".
        application.state.service.ledger.schema_version()
        return application
    except SocialMediaPublisherError as exc:
        applog.log_json(logger, logging.ERROR, "web_cannot_start", error=str(exc))  # one event, redacted, like all
        raise SystemExit(1) from None


def __getattr__(name: str) -> Any:
    """Build `app` on first access (PEP 562) and keep it, so later lookups (and wrappers) see one object."""
    if name == "app":
        application = _server_app()
        globals()["app"] = application
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
