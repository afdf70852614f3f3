"""The `autoinstrument` command: `check` a manifest before a release, `report` on the logs after it.

Why one entry point with subcommands: operators remember one name (`autoinstrument --help`), and CI calls
the same executable for both gates. Each subcommand lives in its own module (`check.py`, `report.py`) with its
own `main(argv)`; this module only dispatches, so `python -m autoinstrument.report` keeps working too.

`report --manifest telemetry.yaml` (or `--budgets telemetry.yaml`) reads the budgets AND the exact total field
of every event from the manifest itself (see `report.manifest_settings`).

Exit status: the subcommand's (0 ok, 1 FAIL / budget breach, 2 usage or input error).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence


def version() -> str:
    """`autoinstrument.__version__`: the library's own version (its distribution's, else `_version.py`)."""
    import autoinstrument

    return autoinstrument.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoinstrument",
        description="Manifest-driven telemetry tools. `check` resolves a manifest's targets without running "
        "the app; `report` computes latency statistics and budget checks from JSON log lines.",
    )
    parser.add_argument("--version", action="version", version=f"autoinstrument {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("check", help="resolve every manifest target; exit 1 on any FAIL", add_help=False)
    sub.add_parser("report", help="statistics and budgets from logs; exit 1 on a budget breach", add_help=False)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`autoinstrument {check,report} ...` (arguments after the subcommand go to it unchanged)."""
    args: List[str] = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser()
    if args and args[0] == "check":
        from autoinstrument.check import main as check_main

        return check_main(args[1:])
    if args and args[0] == "report":
        from autoinstrument.report import main as report_main

        return report_main(args[1:])
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exc:  # --help / --version exit 0, a usage error 2
        return int(exc.code or 0)
    if parsed.command is None:
        parser.print_usage(sys.stderr)
        print("autoinstrument: a command is required (check or report)", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse refuses unknown commands before this


if __name__ == "__main__":
    sys.exit(main())
