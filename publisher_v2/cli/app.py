"""The `publisher` command: run the workflow once on a configuration.

Exit 0 when the run did what was asked, 1 otherwise (2 for bad arguments; 128 + N when stopped by SIGTERM or
SIGHUP, see `stop_signals`). Expected failures (bad config,
nothing to post, unknown image, bad arguments) end stderr with ONE event carrying the one-line verdict
(`verdict`: `publisher: error: …`), rendered like every other event (JSON, or a console line on a terminal), so
a log collector never sees a plain-text line; only bugs keep their traceback (itself an event, see
`setup_logging`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any, Dict, List, Optional, Tuple

from publisher_v2.cli.ledger_cli import add_ledger_parser, run_ledger_command
from publisher_v2.cli.ledger_migrate import add_migrate_parser, run_migrate_command
from publisher_v2.cli.run_summary import PARTIAL_EVENT, PARTIAL_EXIT, RunMode, ledger_command, render_preview, summarize
from publisher_v2.cli.stop_signals import Stopped, stop_signals_as_interrupt
from publisher_v2.cli.verdict import FAILED, INTERRUPTED, VerdictParser, verdict
from publisher_v2.config.loader import load_application_config
from publisher_v2.config.preflight import preflight
from publisher_v2.domain.errors import SocialMediaPublisherError
from publisher_v2.domain.models import WorkflowResult
from publisher_v2.utils.logging import bound_correlation_id, setup_logging
from publisher_v2.utils.terminal import quiet_broken_pipe, say


def build_parser() -> argparse.ArgumentParser:
    parser = VerdictParser(
        prog="publisher", description="Pick an unposted photo, caption it, publish it everywhere, archive it."
    )
    parser.add_argument("--config", required=True, help="INI configuration file")
    parser.add_argument("--env", help=".env file with secrets (the real environment wins)")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="a simulated run: skip sidecar, publish and archive with simulated successes (logging unchanged)",
    )
    parser.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        help="how much goes to stderr (default INFO; WARNING with --preview); independent of --debug",
    )
    parser.add_argument(
        "--select", metavar="NAME", help="post this file (claimed like any run; a posted one is posted again, loudly)"
    )
    parser.add_argument(
        "--dry-publish",
        action="store_true",
        help="analyse and caption only: no sidecar, publish, archive or record",
    )
    parser.add_argument(
        "--preview", action="store_true", help="dry-publish and print a human-readable report"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_ledger_parser(commands)
    add_migrate_parser(commands)
    return parser


def _drop_reported_interrupt(loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
    """Ctrl-C is reported once, by the `cli_interrupted` verdict. On Python < 3.11 `asyncio.run` leaves the
    KeyboardInterrupt in its main task, whose finaliser would log "Task exception was never retrieved" with a
    traceback AFTER the verdict; every other loop error still goes to asyncio's default handler."""
    if not isinstance(context.get("exception"), KeyboardInterrupt):
        loop.default_exception_handler(context)


async def _run(args: argparse.Namespace) -> Tuple[WorkflowResult, RunMode, List[str]]:
    from publisher_v2.wiring import build_orchestrator

    asyncio.get_running_loop().set_exception_handler(_drop_reported_interrupt)

    config = load_application_config(args.config, args.env)
    if args.debug:
        config.content.debug = True
    mode = RunMode(debug=config.content.debug, dry_publish=args.dry_publish, preview=args.preview)
    preflight(config, publishes=not (mode.simulated or mode.debug))  # before any work
    orchestrator = build_orchestrator(config)
    result = await orchestrator.execute(
        select_filename=args.select, dry_publish=args.dry_publish, preview_mode=args.preview, report_attention=True
    )
    return result, mode, [p.platform_name for p in orchestrator.publishers]


def main(argv: Optional[List[str]] = None) -> int:
    setup_logging(logging.INFO, stream=sys.stderr)  # before anything can print: argparse's error is an event too
    args = build_parser().parse_args(argv)
    if args.log_level:
        logging.getLogger().setLevel(args.log_level)
    elif args.preview:
        logging.getLogger().setLevel(logging.WARNING)  # the report replaces the logs
    # One correlation id for the whole command (the workflow reuses it): every event and the verdict carry it.
    with bound_correlation_id() as cid, stop_signals_as_interrupt():
        try:
            return _command(args, cid)
        except BrokenPipeError:  # `publisher ledger list | head -3`: the reader has all it wanted
            return quiet_broken_pipe()


def _command(args: argparse.Namespace, cid: str) -> int:
    try:
        if args.command == "ledger":
            return run_ledger_command(args)
        if args.command == "migrate-to-postgres":
            return run_migrate_command(args)
        result, mode, platforms = asyncio.run(_run(args))
    except SocialMediaPublisherError as exc:
        return verdict(FAILED, f"publisher: error: {exc}", correlation_id=cid)
    except Stopped as exc:
        hint = f"a post it left unfinished is listed by `{ledger_command(args.config, 'list')}`"
        return verdict(
            INTERRUPTED, f"publisher: stopped by {exc.name}; {hint}", exc.exit_code, correlation_id=cid, signal=exc.name
        )
    except KeyboardInterrupt:
        hint = f"a post it left unfinished is listed by `{ledger_command(args.config, 'list')}`"
        return verdict(INTERRUPTED, f"publisher: interrupted; {hint}", correlation_id=cid)
    if args.preview and result.success:
        say(render_preview(result), keep_newlines=True)
        return 0
    for notice in result.notices:
        say(f"publisher: warning: {notice}")
    summary = summarize(result, mode, platforms, args.config)
    say(summary.stdout)
    if summary.stderr is not None:
        event = PARTIAL_EVENT if summary.exit_code == PARTIAL_EXIT else FAILED
        return verdict(
            event, f"publisher: {summary.stderr}", summary.exit_code, correlation_id=result.correlation_id or cid
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
