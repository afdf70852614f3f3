"""`autoinstrument report`: the command line over `build_report` (parse the options, print, choose the exit).

Exit status: 0 within budget, 1 on a budget breach, 2 on an input or usage error, 3 when no events were read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from autoinstrument.report.build import EXIT_ERROR, EXIT_NO_EVENTS, build_report
from autoinstrument.report.decode import DEFAULT_EVENT_KEY
from autoinstrument.report.document import to_json
from autoinstrument.report.errors import ReportError
from autoinstrument.report.text import render_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoinstrument report",
        description="Latency statistics (count, p50, p95, p99, max per event and _ms field, per route), the "
        "slowest runs' stages, and a budget check, from JSON log lines. "
        "Exit: 0 ok, 1 budget breach, 2 error, 3 no events read (not one JSON event with _ms fields).",
    )
    parser.add_argument(
        "files",
        nargs="*",
        metavar="PATH",
        help="log files (.gz ok), folders (their *.log, *.jsonl, *.gz) or quoted globs; none or '-' = stdin",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of the text tables")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page to FILE")
    parser.add_argument(
        "--budgets",
        metavar="YAML",
        help="a YAML file with a top-level `budgets:` mapping (telemetry.yaml works); a bare number is p95",
    )
    parser.add_argument(
        "--manifest",
        metavar="YAML",
        help="a telemetry manifest: its budgets, stage order, event key and the total field of each event",
    )
    parser.add_argument(
        "--event-key",
        metavar="KEY",
        help=f"the JSON key holding the event name (default: the manifest's log.event_key, else {DEFAULT_EVENT_KEY!r})",
    )
    parser.add_argument("--top", type=int, default=10, metavar="N", help="slowest runs kept per total (10)")
    return parser


def _fail(message: str) -> int:
    print(f"autoinstrument report: {message}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`autoinstrument report [PATH ...] [--json] [--html FILE] [--budgets YAML | --manifest YAML]
    [--event-key KEY] [--top N]`."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help 0
        return int(exc.code or 0)
    if args.top < 0:
        return _fail("--top must be >= 0")
    if args.event_key is not None and not args.event_key.strip():
        return _fail("--event-key must not be empty")
    try:
        outcome = build_report(args.files, args.manifest, args.budgets, args.event_key, args.top)
    except ReportError as exc:
        return _fail(str(exc))
    report, checks = outcome.report, outcome.checks
    if args.html:
        from autoinstrument.report.html import write_html

        try:
            write_html(report, checks, args.html)
        except OSError as exc:
            return _fail(f"cannot write {args.html}: {exc.strerror or exc}")
    if args.json:
        sys.stdout.write(json.dumps(to_json(report, checks), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report, checks))
    code = outcome.exit_code
    if code == EXIT_NO_EVENTS:
        print(f"autoinstrument report: {outcome.no_events_message()}", file=sys.stderr)
    return code


__all__ = ["build_parser", "main"]
