"""The runtime, above the manifest: install the wrappers (wrapt), open scopes, time stages, emit events.

- `install`: wrapt post-import hooks, the patch registry, exact uninstall;
- `wrappers`: the wrapt FunctionWrappers, one wrapper function per callable kind;
- `targets`: resolve (`wrapt.resolve_path`) and classify a target, refusing what cannot be timed;
- `scope`: the accumulator of an open scope, re-entry markers;
- `emitter`: events through the app's own log function, faults once;
- `ids`: fresh correlation ids.

Imports only `autoinstrument.manifest` below it; the web part (`autoinstrument.web`) plugs in from above.
"""
