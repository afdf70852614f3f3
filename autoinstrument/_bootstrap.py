"""Start-up activation, imported by `autoinstrument.pth` only when PUBLISHER_AUTOINSTRUMENT is on.

The `.pth` line checks the environment variable itself, so with it unset or `0` not even this module is
imported: no hook, no finder, no wrapper. Here the check is repeated (someone may import this module
directly), then `install()` runs with its report deferred: at interpreter start-up the app has not configured
its logging yet, so the `autoinstrument_installed` event (and any fault) is sent when the first scope opens,
or at exit. Nothing may escape from here: an exception in a `.pth` import line would print a traceback in
every interpreter.

Note: PEP 829 deprecates `import` lines in `.pth` files from Python 3.15 (with a long window), in favour of
`.start` entry points; when that lands this module is the one to name there.
"""

import os

ENV_ENABLE = "PUBLISHER_AUTOINSTRUMENT"


def enabled(environ=os.environ) -> bool:
    return environ.get(ENV_ENABLE, "").strip().lower() in ("1", "true", "yes", "on")


def activate() -> bool:
    if not enabled():
        return False
    try:
        import logging  # noqa: F401  (imported first so that logging's atexit flush runs after ours)

        from autoinstrument.hooks import install

        return install(None, defer_report=True)
    except BaseException as exc:  # pragma: no cover - last resort, must not break interpreter start-up
        try:
            import json
            import sys

            sys.stderr.write(
                json.dumps(
                    {
                        "level": "WARNING",
                        "message": "autoinstrument_fault",
                        "fault": "bootstrap_failed",
                        "detail": f"{type(exc).__name__}: {exc}",
                    }
                )
                + "\n"
            )
        except BaseException:
            pass
        return False


ACTIVE = activate()
