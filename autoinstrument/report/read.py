"""Where the report's lines come from: files, folders, globs, gzip, stdin; read in large binary chunks.

Why chunks: reading a 1 MiB block and splitting it at newlines in C costs a fraction of `readline` per line,
and memory stays at one block plus one partial line. A line longer than `max_line` bytes is counted and
dropped without being held (the reader skips to its end).
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import sys
from typing import IO, Iterator, List, Sequence, Tuple

from autoinstrument.report.errors import InputError

MAX_LINE_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
#: What a folder given on the command line contributes.
FOLDER_PATTERNS = ("*.log", "*.jsonl", "*.gz")
STDIN = "-"


def expand_inputs(paths: Sequence[str]) -> List[str]:
    """Files in the order given; a folder becomes its `*.log`, `*.jsonl`, `*.gz` files (sorted, not recursive);
    a glob becomes its matches (sorted). Raises InputError naming the first input that yields nothing."""
    out: List[str] = []
    for path in paths or [STDIN]:
        if path == STDIN:
            out.append(path)
        elif os.path.isdir(path):
            found = sorted({f for pattern in FOLDER_PATTERNS for f in glob.glob(os.path.join(path, pattern))})
            found = [f for f in found if os.path.isfile(f)]
            if not found:
                raise InputError(f"{path}: a folder without any {', '.join(FOLDER_PATTERNS)} file")
            out.extend(found)
        elif os.path.isfile(path):
            out.append(path)
        elif glob.has_magic(path):
            found = sorted(f for f in glob.glob(path) if os.path.isfile(f))
            if not found:
                raise InputError(f"{path}: no file matches this pattern")
            out.extend(found)
        else:
            raise InputError(f"cannot read {path}: no such file or folder")
    return out


def open_input(path: str) -> IO[bytes]:
    """A binary stream of the file's bytes; gzip (by its magic bytes, whatever the name) is decompressed."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, closed there
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if handle.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def open_stdin() -> IO[bytes]:
    """stdin as bytes (gzip detected like files)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None and hasattr(buffer, "peek") and buffer.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffer, mode="rb")  # type: ignore[return-value]
    if buffer is not None:
        return buffer
    return io.BytesIO(sys.stdin.read().encode("utf-8", "replace"))  # a text-only stdin replacement


def line_batches(
    stream: IO[bytes], chunk_bytes: int = CHUNK_BYTES, max_line: int = MAX_LINE_BYTES
) -> Iterator[Tuple[List[bytes], int]]:
    """Yield (lines, each with its newline except maybe the last, how many over-long lines were dropped) per
    chunk read.

    A final line without a newline counts; a trailing newline does not add an empty line (as `readline`).
    """
    read = stream.read
    rest = b""
    draining = False  # inside an over-long line: discard until its newline
    while True:
        data = read(chunk_bytes)
        if not data:
            break
        if draining:
            cut = data.find(b"\n")
            if cut < 0:
                continue
            data = data[cut + 1 :]
            draining = False
            if not data:
                continue
        lines = io.BytesIO(data).readlines()  # memchr per line, unlike bytes.split's byte-by-byte loop
        if rest:
            lines[0] = rest + lines[0]
        rest = lines.pop() if not lines[-1].endswith(b"\n") else b""
        dropped = 0
        if len(rest) > max_line:
            rest = b""
            draining = True
            dropped = 1
        # Only a line that began in an earlier chunk can be longer than one chunk: check the first line alone
        # when chunks are not longer than the limit.
        longest = len(lines[0]) if lines and chunk_bytes <= max_line else max(map(len, lines), default=0)
        if longest > max_line + 1:
            kept = [line for line in lines if len(line) <= max_line + 1]
            dropped += len(lines) - len(kept)
            lines = kept
        if lines or dropped:
            yield lines, dropped
    if rest:
        yield [rest], 0


__all__ = [
    "CHUNK_BYTES",
    "FOLDER_PATTERNS",
    "MAX_LINE_BYTES",
    "expand_inputs",
    "line_batches",
    "open_input",
    "open_stdin",
]
