"""The `publisher` command: run the workflow once on a configuration.

Exit 0 when the run did what was asked, 1 otherwise. Expected failures (bad config, nothing to post, unknown
image) print ONE line on stderr; only bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict, is_dataclass
from typing import Any, List, NoReturn, Optional

from publisher_v2.config.loader import load_application_config
from publisher_v2.core.exceptions import SocialMediaPublisherError
from publisher_v2.core.models import WorkflowResult
from publisher_v2.ledger_cli import add_ledger_parser, run_ledger_command
from publisher_v2.ledger_migrate import add_migrate_parser, run_migrate_command
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


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: v for k, v in asdict(value).items() if v not in (None, [], {}, "")}
    return value


def render_preview(result: WorkflowResult) -> str:
    """The --preview report: what a real run would post, without posting anything."""
    preview = result.preview or {}
    lines = [f"Image:    {preview.get('image')}", f"SHA-256:  {preview.get('sha256')}", "", "Analysis:"]
    for key, value in (_plain(preview.get("analysis")) or {}).items():
        lines.append(f"  {key}: {value}")
    lines += ["", f"Caption:     {preview.get('caption')}", f"SD caption:  {preview.get('sd_caption')}", ""]
    if preview.get("sidecar"):
        lines += ["Sidecar:", *("  " + line for line in preview["sidecar"].splitlines()), ""]
    lines.append("Platforms:")
    for platform, caption in (preview.get("platforms") or {}).items():
        lines.append(f"  {platform}: {caption}")
    if not preview.get("platforms"):
        lines.append("  (none enabled)")
    if preview.get("email"):
        lines += ["", "Email plan: " + json.dumps(preview["email"])]
    lines += [
        "",
        f"Archive after posting: {preview.get('archive')}",
        "Preview only: nothing was written or published.",
    ]
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> WorkflowResult:
    from publisher_v2.wiring import build_orchestrator

    config = load_application_config(args.config, args.env)
    if args.debug:
        config.content.debug = True
    orchestrator = build_orchestrator(config)
    return await orchestrator.execute(
        select_filename=args.select, dry_publish=args.dry_publish, preview_mode=args.preview
    )


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
        result = asyncio.run(_run(args))
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
    if not result.success:
        return _fail(f"publisher: {result.error}")
    platforms = ", ".join(f"{k}={'ok' if v.success else 'failed'}" for k, v in result.publish_results.items())
    summary = (
        f"Published {result.image_name}"
        + (f" ({platforms})" if platforms else " (dry run: nothing published)")
        + (", archived" if result.archived else "")
        + f" [correlation_id={result.correlation_id}]"
    )
    print(redact_text(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
