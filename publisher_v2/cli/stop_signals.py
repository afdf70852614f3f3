"""SIGTERM and SIGHUP (what systemd, `timeout` and container runtimes send) end a command the way Ctrl-C does.

Python's default for both is to die on the spot: no `cli_interrupted` verdict, and a claim left in the ledger
until its TTL (an hour) passes. While a command runs, each is turned into `Stopped`, a KeyboardInterrupt, so it
takes exactly Ctrl-C's path: the workflow releases (or abandons) its claim, the verdict names the signal, and the
exit code is 128 + the signal's number (143 for SIGTERM, 129 for SIGHUP), as a shell reports a process the
signal ended. A second signal during that clean-up is ignored, so the clean-up itself is not cut short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Dict, Iterator

#: The signals handled like Ctrl-C (SIGHUP does not exist on Windows).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop signal arrived: handled wherever Ctrl-C is (every `except KeyboardInterrupt`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """`SIGTERM`, `SIGHUP`."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal."""
        return 128 + self.signum


def _stop(signum: int, frame: Any) -> None:
    for other in STOP_SIGNALS:  # the clean-up that follows must not be interrupted by a repeated signal
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Stopped`; the previous handlers come back after it. Outside
    the main thread (where Python allows no handler) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: Dict[int, Any] = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.getsignal(signum)
        if previous[signum] != signal.SIG_IGN:  # `nohup` asked to ignore SIGHUP: keep ignoring it
            signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
