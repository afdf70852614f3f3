"""The `publisher` command: run the workflow once on a configuration.

Exit 0 when the run did what was asked, 1 otherwise. Expected failures (bad config, nothing to post, unknown
image) print ONE line on stderr; only bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import List, NoReturn, Optional, Tuple

from publisher_v2.config.loader import load_application_config
from publisher_v2.config.preflight import preflight
from publisher_v2.core.exceptions import SocialMediaPublisherError
from publisher_v2.core.models import WorkflowResult
from publisher_v2.ledger_cli import add_ledger_parser, run_ledger_command
from publisher_v2.ledger_migrate import add_migrate_parser, run_migrate_command
from publisher_v2.run_summary import RunMode, render_preview, summarize
from publisher_v2.utils.logging import redact_text, register_environment_secrets, setup_logging


class _Parser(argparse.ArgumentParser):
    """argparse echoes bad arguments (`unrecognized arguments: …`): its one line is redacted like ours."""

    def error(self, message: str) -> NoReturn:
        super().error(redact_text(message))


def _fail(line: str) -> int:
    """The one-line verdict on stderr, redacted: it may quote a config value, a path or a --select name."""
    print(redact_text(line), file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="publisher", description="Pick an unposted photo, caption it, publish it everywhere, archive it."
    )
    parser.add_argument("--config", required=True, help="INI configuration file")
    parser.add_argument("--env", help=".env file with secrets (the real environment wins)")
    parser.add_argument(
        "--debug", action="store_true", help="skip sidecar, publish and archive with simulated successes"
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


async def _run(args: argparse.Namespace) -> Tuple[WorkflowResult, RunMode, List[str]]:
    from publisher_v2.wiring import build_orchestrator

    config = load_application_config(args.config, args.env)
    if args.debug:
        config.content.debug = True
    mode = RunMode(debug=config.content.debug, dry_publish=args.dry_publish, preview=args.preview)
    preflight(config, publishes=not (mode.simulated or mode.debug))  # before any work
    orchestrator = build_orchestrator(config)
    result = await orchestrator.execute(
        select_filename=args.select, dry_publish=args.dry_publish, preview_mode=args.preview
    )
    return result, mode, [p.platform_name for p in orchestrator.publishers]


def main(argv: Optional[List[str]] = None) -> int:
    register_environment_secrets()  # before anything can print: even argparse's line is redacted
    args = build_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr)
    if args.preview:
        logging.getLogger().setLevel(logging.WARNING)  # the report replaces the logs
    try:
        if args.command == "ledger":
            return run_ledger_command(args)
        if args.command == "migrate-to-postgres":
            return run_migrate_command(args)
        result, mode, platforms = asyncio.run(_run(args))
    except SocialMediaPublisherError as exc:
        return _fail(f"publisher: error: {exc}")
    except KeyboardInterrupt:
        print("publisher: interrupted", file=sys.stderr)
        return 1
    if args.preview and result.success:
        print(redact_text(render_preview(result)))
        return 0
    for notice in result.notices:
        print(redact_text(f"publisher: warning: {notice}"))
    summary = summarize(result, mode, platforms)
    print(redact_text(summary.stdout))
    if summary.stderr is not None:
        return _fail(f"publisher: {summary.stderr}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
