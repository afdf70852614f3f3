"""What the CLI writes for a person to read (stdout lines, console log lines): redacted, and inert on a terminal.

Image names come from whoever can add a file to the library (a shared Dropbox folder), platform errors from a
peer: an ESC, OSC, BEL, BS or CR in them could move the cursor, rewrite the lines an operator reads before
choosing `mark-posted` or `retry`, set the window title or ring the bell. `escape_controls` shows every C0 and C1
control character, DEL and the bidirectional overrides as `\\n`, `\\xNN` or `\\uNNNN`, so the text is seen, not obeyed.
"""

from __future__ import annotations

import os
import re
import signal
import sys

from publisher_v2.utils.redact import redact_text

#: C0 controls, DEL, C1 controls, and the Unicode bidi embeddings/overrides/isolates (text shown reordered).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """`text` with every control character shown escaped (`\\x1b`, `\\x07`, `\\u202e`…); with `keep_newlines`
    a multi-line text keeps its line breaks (each line escaped)."""
    if keep_newlines:
        return "\n".join(escape_controls(line) for line in text.split("\n"))
    return _CONTROL.sub(_escape, text)


def for_terminal(text: str, keep_newlines: bool = False) -> str:
    """`text` redacted (like every log line) and then escaped: what may reach a person's terminal."""
    return escape_controls(redact_text(text), keep_newlines)


def say(text: str, keep_newlines: bool = False) -> None:
    """Print `text` on stdout as `for_terminal` makes it (the one way the CLI prints to stdout)."""
    print(for_terminal(text, keep_newlines), flush=True)


def quiet_broken_pipe() -> int:
    """After stdout's reader went away (`publisher ledger list | head -3`): point stdout at /dev/null so the
    interpreter's final flush cannot fail again, and return 128 + SIGPIPE, what a shell reports for a tool
    stopped by a closed pipe; nothing is written to stderr, like other Unix tools."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture): nothing left to flush
        pass
    finally:
        os.close(devnull)
    return 128 + int(getattr(signal, "SIGPIPE", 13))

