"""The `publisher` console script's entry point: Ctrl-C at ANY moment ends with the `cli_interrupted` verdict.

`publisher_v2.cli.app` imports asyncio, pydantic and the adapters, which takes a noticeable part of a second; a
Ctrl-C then used to print a raw KeyboardInterrupt traceback. This module imports nothing heavy itself, so the
console script reaches `main` at once, and anything interrupted before `app.main` has its own handler in place
(imports, argument parsing, logging set-up) becomes the same one-line verdict event. (Not even `typing`: its
import alone takes about 20 ms; `signal` is imported only when needed.)
"""

from __future__ import annotations


def _interrupted() -> int:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the verdict short
    from publisher_v2.cli.verdict import INTERRUPTED, verdict

    return verdict(INTERRUPTED, "publisher: interrupted")


def main(argv: list[str] | None = None) -> int:
    """Run `publisher_v2.cli.app.main`; a KeyboardInterrupt it did not report itself becomes the verdict."""
    try:
        from publisher_v2.cli.app import main as run

        return run(argv)
    except KeyboardInterrupt:
        return _interrupted()


if __name__ == "__main__":
    raise SystemExit(main())
