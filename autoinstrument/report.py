"""`autoinstrument report`: latency statistics, budget checks and the slowest runs, from JSON log lines.

This module is the command-line glue and the public entry point; each job lives in its own module, imported
in one direction (no cycle):

    report_stats      exact nearest-rank statistics from counts of whole ms
    report_read       files, folders, globs, gzip, stdin → batches of lines
    report_aggregate  lines → per-event / per-route / per-field distributions, slowest runs, the run join
    report_budgets    budgets (the manifest's rule) against the pooled samples
    report_settings   what a manifest tells the report (budgets, totals, stage order, event key)
    report_text       text tables and the JSON document
    report_html       the self-contained HTML page
    report_parallel   one big plain file over two processes, and the merge of their Reports

Exit status: 0 within budget, 1 on a budget breach, 2 on an input or usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional, Sequence

from autoinstrument.report_aggregate import (
    CORRELATION_KEY,
    DEFAULT_EVENT_KEY,
    NO_MESSAGE,
    OTHER,
    SKIP_DESCRIPTIONS,
    SKIP_REASONS,
    Aggregator,
    Report,
    Run,
    aggregate,
    aggregate_streams,
    decode_line,
)
from autoinstrument.report_budgets import (
    STATISTICS,
    BudgetCheck,
    BudgetError,
    check_budgets,
    evaluate_budgets,
    normalize_budgets,
)
from autoinstrument.report_parallel import fold_parallel, jobs_for, merge
from autoinstrument.report_read import MAX_LINE_BYTES, InputError, expand_inputs, open_input, open_stdin
from autoinstrument.report_settings import Settings, load_budgets, manifest_settings, settings
from autoinstrument.report_stats import FieldStats
from autoinstrument.report_text import SCHEMA_VERSION, printable, render_text, to_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoinstrument report",
        description="Latency statistics (count, p50, p95, p99, max per event and _ms field, per route), the "
        "slowest runs' stages, and a budget check, from JSON log lines. "
        "Exit: 0 ok, 1 budget breach, 2 error.",
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
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="processes for one big plain log file (default: 2 when the machine has 2 cores and the file is "
        "over 32 MiB; 1 = read in order)",
    )
    return parser


def read(paths: Sequence[str], agg: Aggregator, jobs: Optional[int] = 1) -> Report:
    """Feed every input into `agg` (a big plain file over `jobs` processes, see report_parallel) and return
    the Report; InputError names the file that cannot be read."""
    parts: List[Report] = []
    for path in paths:
        workers = jobs_for(path, jobs)
        if workers > 1:
            parts.append(fold_parallel(path, workers, agg.options()))
            continue
        stream = open_stdin() if path == "-" else open_input(path)
        try:
            agg.feed_stream(stream)
        except (OSError, EOFError) as exc:  # a corrupt or truncated .gz, a read error
            raise InputError(f"error reading {path}: {exc}") from None
        finally:
            if path != "-":
                stream.close()
    return merge([agg.report(), *parts]) if parts else agg.report()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`autoinstrument report [PATH ...] [--json] [--html FILE] [--budgets YAML | --manifest YAML]
    [--event-key KEY] [--top N] [--jobs N]`."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help 0
        return int(exc.code or 0)
    if args.top < 0:
        print("autoinstrument report: --top must be >= 0", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print("autoinstrument report: --jobs must be >= 1", file=sys.stderr)
        return 2
    if args.event_key is not None and not args.event_key.strip():
        print("autoinstrument report: --event-key must not be empty", file=sys.stderr)
        return 2
    try:
        config = settings(args.manifest, args.budgets)
        paths = expand_inputs(args.files)  # fail before reading anything when an input is missing
        agg = Aggregator(
            top=args.top,
            totals=config.totals,
            stage_order=config.stage_order,
            total_order=config.total_order,
            event_key=args.event_key or config.event_key,
        )
        report = read(paths, agg, args.jobs)
    except (BudgetError, InputError) as exc:
        print(f"autoinstrument report: {exc}", file=sys.stderr)
        return 2
    checks = evaluate_budgets(report, config.budgets)
    if args.html:
        from autoinstrument.report_html import write_html

        try:
            write_html(report, checks, args.html)
        except OSError as exc:
            print(f"autoinstrument report: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if args.json:
        import json

        sys.stdout.write(json.dumps(to_json(report, checks), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report, checks))
    return 1 if any(check.breached for check in checks) else 0


def run(paths: Sequence[str], jobs: Optional[int] = 1, **options: Any) -> Report:
    """Library use: the Report of files/folders/globs (options as for `Aggregator`)."""
    return read(expand_inputs(paths), Aggregator(**options), jobs)


__all__ = [
    "CORRELATION_KEY",
    "NO_MESSAGE",
    "OTHER",
    "SCHEMA_VERSION",
    "SKIP_DESCRIPTIONS",
    "SKIP_REASONS",
    "STATISTICS",
    "Aggregator",
    "BudgetCheck",
    "BudgetError",
    "FieldStats",
    "InputError",
    "MAX_LINE_BYTES",
    "Report",
    "Run",
    "Settings",
    "aggregate",
    "aggregate_streams",
    "build_parser",
    "check_budgets",
    "decode_line",
    "evaluate_budgets",
    "expand_inputs",
    "load_budgets",
    "main",
    "manifest_settings",
    "normalize_budgets",
    "open_input",
    "printable",
    "render_text",
    "run",
    "to_json",
]


if __name__ == "__main__":  # `python -m autoinstrument.report`
    sys.exit(main())
