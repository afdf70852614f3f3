"""One report run, for the CLI and for library use: inputs and settings in, an `Outcome` out.

`build_report` expands the inputs (failing before anything is read when one is missing), folds every line,
checks the budgets and says how the run ends:

    0  every budget met (or none given)
    1  a budget breached
    2  an input or budgets file that cannot be used (ReportError; usage errors are the CLI's)
    3  no events read: not one line was a JSON event with `_ms` fields (with a field the manifest produces,
       when a manifest is given), so nothing was measured and a gate must not pass
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from autoinstrument.report.aggregate import Aggregator
from autoinstrument.report.budgets import BudgetCheck, evaluate_budgets
from autoinstrument.report.decode import SKIP_DESCRIPTIONS
from autoinstrument.report.errors import InputError
from autoinstrument.report.read import expand_inputs, open_input, open_stdin
from autoinstrument.report.records import Report
from autoinstrument.report.settings import settings

EXIT_OK, EXIT_BREACH, EXIT_ERROR, EXIT_NO_EVENTS = 0, 1, 2, 3


@dataclass
class Outcome:
    """What a report run found: the Report, every budget check (breached or not) and how the run ends.
    `known_fields` are the `_ms` fields the manifest produces (empty without a manifest)."""

    report: Report
    checks: List[BudgetCheck] = field(default_factory=list)
    known_fields: List[str] = field(default_factory=list)

    @property
    def events_read(self) -> int:
        """Events with `_ms` fields that count: all of them, or, with a manifest, the events (by name) that
        carry a field it produces (whatever key holds their name)."""
        if not self.known_fields:
            return self.report.events_used
        known = set(self.known_fields)
        return sum(group.count for group in self.report.events.values() if not known.isdisjoint(group.fields))

    @property
    def breached(self) -> bool:
        return any(check.breached for check in self.checks)

    @property
    def exit_code(self) -> int:
        if not self.events_read:
            return EXIT_NO_EVENTS
        return EXIT_BREACH if self.breached else EXIT_OK

    def no_events_message(self) -> str:
        """Why there is nothing to report, and what to do about it (empty when events were read)."""
        if self.events_read:
            return ""
        report = self.report
        lines = f"{report.lines:,} line{'' if report.lines == 1 else 's'} read"
        if self.known_fields:
            shown = ", ".join(self.known_fields[:3]) + (", …" if len(self.known_fields) > 3 else "")
            what = f"none of them a JSON event of the manifest (with {shown})"
            if report.events_used:
                what += f"; {report.events_used:,} JSON event(s) with _ms fields of other names"
        else:
            what = "none of them a JSON event with _ms fields"
        skipped = ", ".join(f"{SKIP_DESCRIPTIONS[r]}: {n:,}" for r, n in report.skipped.items())
        return (
            f"no events read: {lines}, {what}"
            + (f"; skipped: {skipped}" if skipped else "")
            + ".\nThe report reads the JSON events an app logs, one object per line; a console-format log (what "
            "an app prints when its stderr is a terminal) holds none. Have the app log JSON (stderr not a "
            "terminal, or its log-format switch) into a file, e.g. `APP 2>>events.jsonl`, and report on that "
            "file. Exit status 3."
        )


def read_report(paths: Sequence[str], agg: Aggregator) -> Report:
    """Feed every input into `agg`, in order, and return the Report; InputError names the file that cannot be
    read."""
    for path in paths:
        stream = open_stdin() if path == "-" else open_input(path)
        try:
            agg.feed_stream(stream)
        except (OSError, EOFError) as exc:  # a corrupt or truncated .gz, a read error
            raise InputError(f"error reading {path}: {exc}") from None
        finally:
            if path != "-":
                stream.close()
    return agg.report()


def build_report(
    paths: Sequence[str] = ("-",),
    manifest: Optional[str] = None,
    budgets: Optional[str] = None,
    event_key: Optional[str] = None,
    top: int = 10,
) -> Outcome:
    """The report of log files, folders, globs or "-" (stdin), checked against the budgets of `manifest` (a
    telemetry manifest: also its stage order, totals and event key) or of `budgets` (any YAML with a
    top-level `budgets:` mapping). Raises ReportError (InputError, BudgetError) naming what cannot be used."""
    config = settings(manifest, budgets)
    inputs = expand_inputs(paths)  # fail before reading anything when an input is missing
    agg = Aggregator(
        top=top,
        totals=config.totals,
        stage_order=config.stage_order,
        total_order=config.total_order,
        event_key=event_key or config.event_key,
    )
    report = read_report(inputs, agg)
    report.parallel = {outer: list(inner) for outer, inner in config.parallel.items()}
    known = list(config.total_order) + [name for name in config.stage_order if name not in config.total_order]
    return Outcome(report, evaluate_budgets(report, config.budgets), known)


__all__ = ["EXIT_BREACH", "EXIT_ERROR", "EXIT_NO_EVENTS", "EXIT_OK", "Outcome", "build_report", "read_report"]
