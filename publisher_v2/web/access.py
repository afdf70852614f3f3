"""Names the matched route in the access event: the request's ASGI scope, bound for uvicorn's access line.

uvicorn writes its access line inside the `send` of `http.response.start`, in the request's own task, after
Starlette's router has put the matched route in the scope (`scope["route"]`). This pure ASGI middleware binds
that scope in `publisher_v2.utils.logging.request_scope` for the request, so the `http_access` event can
carry the route template (`/api/images/{filename}/analyze`) next to the redacted path.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, MutableMapping

from publisher_v2.utils.logging import request_scope

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class RequestScopeMiddleware:
    """Binds each HTTP request's scope for the duration of the request (nothing else: same scope, same
    messages, same exceptions)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        token = request_scope.set(scope)
        await self.app(scope, receive, send)
        # Reset only after a normal end: on an unhandled exception the 500 is sent by Starlette's outermost
        # error middleware AFTER this frame, and its access event must still name the route. The binding
        # cannot leak: each request runs in its own task, with its own copy of the context.
        request_scope.reset(token)
