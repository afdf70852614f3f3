"""A command's one-line verdict (`publisher: error: …`) as an event, never a plain-text line on stderr.

A log collector reading stderr sees only events; a person on a terminal sees the same event as a console line
that ends with the sentence. The verdict is the LAST event a failing command writes, and the only one carrying
`verdict`, so scripts and tests find it in one place.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn, Optional

from publisher_v2.utils.logging import log_json, setup_logging

logger = logging.getLogger("publisher_v2.cli")

#: The verdict events: a failed command (exit 1), Ctrl-C (exit 1), bad arguments (exit 2).
FAILED, INTERRUPTED, USAGE_ERROR = "cli_failed", "cli_interrupted", "cli_usage_error"


def verdict(event: str, line: str, exit_code: int = 1, correlation_id: Optional[str] = None, **fields: str) -> int:
    """Emit the one-line verdict `line` as `event` at ERROR and return `exit_code`.

    log_json redacts it (it may quote a config value, a path or a --select name). `verdict` comes last so the
    console line ends with the sentence a person reads.
    """
    if not any(getattr(h, "_publisher_v2", False) for h in logging.getLogger().handlers):
        setup_logging(stream=sys.stderr)  # a caller that never set logging up still gets the event
    extra = {} if correlation_id is None else {"correlation_id": correlation_id}
    log_json(logger, logging.ERROR, event, **extra, exit_code=exit_code, **fields, verdict=line)
    return exit_code


class VerdictParser(argparse.ArgumentParser):
    """argparse's error (usage, then `prog: error: …`, exit 2) as one verdict event, redacted like the others
    (argparse echoes bad arguments). `--help` stays text on stdout. Sub-command parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split())  # argparse wraps it over lines: one line in the event
        verdict(USAGE_ERROR, f"{self.prog}: error: {message}", exit_code=2, usage=usage)
        self.exit(2)
