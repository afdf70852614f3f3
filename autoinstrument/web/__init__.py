"""The web part, above the runtime: a pure ASGI middleware in front of the manifest's app.

- `middleware`: one event per mapped request, correlation id in and out;
- `routes`: the manifest's route templates, matched without the framework;
- `ids`: which request ids and path parameters may be echoed or logged;
- `gate`: one event per request (the app's own event merged into ours) and the status level;
- `attachment`: wrapping the manifest's `web.app` when its module is imported.

Imports the runtime and the manifest, never the other way round.
"""
