"""A second app (a small shop), telemetry through autoinstrument's public API only.

It has its own log function (`shoplog.emit`, event name under "event"), its own ContextVar, a sync and an async
stage, a scope, a raw ASGI app wrapped by hand in `autoinstrument.TelemetryMiddleware`, and its manifest
`telemetry.yaml` beside this package. `python -m shop_app` runs two checkouts and three web requests.
"""
