"""What the `publisher` command says about a run, in words that match what happened.

An operator reads stdout to learn what a run did: a debug run that simulated its posts must not say
"Published", a dry run must say what it WOULD have done, a partial success must name the platforms that failed
and why. The one-line verdict on stderr (exit 1) carries the first cause of a failure, never only a summary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Dict, List, Optional

from publisher_v2.domain.models import PublishResult, WorkflowResult
from publisher_v2.utils.logging import sanitize

#: A reason longer than this is cut, so one platform's stack of errors never floods the line.
MAX_REASON = 200


@dataclass(frozen=True)
class RunMode:
    """How the run was asked to behave (the CLI flags plus `[Content] debug`)."""

    debug: bool = False
    dry_publish: bool = False
    preview: bool = False

    @property
    def simulated(self) -> bool:
        """True when nothing may be posted: a dry run or a preview (debug simulates its posts separately)."""
        return self.dry_publish or self.preview


#: Exit status of a run that posted, but not everywhere: the post is recorded and archived, and a platform
#: waits for `publisher ledger retry` (1 stays "nothing was posted"; cron and monitors see both as failures).
PARTIAL_EXIT = 3
#: The verdict event of such a run.
PARTIAL_EVENT = "cli_partial_failure"


@dataclass(frozen=True)
class Summary:
    """The words for one run: a line for stdout, and the one-line verdict for stderr when the run failed
    (exit 1), or posted only partly (exit PARTIAL_EXIT)."""

    stdout: str
    stderr: Optional[str] = None
    exit_code: int = 0


def ledger_command(config_path: Optional[str], *words: str) -> str:
    """The operator command to run, as a person types it: `publisher --config FILE ledger …`."""
    return " ".join(["publisher", "--config", config_path or "FILE", "ledger", *words])


def attention_note(images: List[str], config_path: Optional[str]) -> str:
    """'; 2 posts need attention: run `publisher --config FILE ledger list`' ('' when nothing waits)."""
    count = len(set(images))
    if not count:
        return ""
    noun = "1 post needs" if count == 1 else f"{count} posts need"
    return f"; {noun} attention: run `{ledger_command(config_path, 'list')}`"


def first_reason(error: Optional[str]) -> str:
    """The first line of an error, trimmed to MAX_REASON characters ("unknown error" when there is none)."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    text = lines[0]
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _names(names: List[str]) -> str:
    return ", ".join(names) if names else "no platform (none is enabled)"


def _failures(results: Dict[str, PublishResult]) -> List[str]:
    return [f"{name} ({first_reason(r.error)})" for name, r in results.items() if not r.success]


def _cid(result: WorkflowResult) -> str:
    return f" [correlation_id={result.correlation_id}]" if result.correlation_id else ""


def summarize(
    result: WorkflowResult, mode: RunMode, platforms: List[str], config_path: Optional[str] = None
) -> Summary:
    """The stdout line (and stderr verdict on failure) for `result`; `platforms` are the enabled ones.

    When posts wait for the operator (`result.attention`), the stdout line says how many and what to run.
    Both lines go through the log redaction: a platform's error text may quote a token or a URL holding one.
    """
    summary = _summarize(result, mode, platforms, config_path)
    return Summary(
        sanitize(summary.stdout),
        sanitize(summary.stderr) if summary.stderr is not None else None,
        summary.exit_code,
    )


def _summarize(result: WorkflowResult, mode: RunMode, platforms: List[str], config_path: Optional[str]) -> Summary:
    cid = attention_note(result.attention, config_path) + _cid(result)
    if not result.success:
        return _failure(result, cid)
    name = result.image_name
    if mode.simulated:
        return Summary(
            f"Would publish {name} to {_names(platforms)} (dry run: nothing was written, posted, archived "
            f"or recorded){cid}"
        )
    if mode.debug:
        return Summary(
            f"Debug run (simulated, nothing posted): {name} for {_names(list(result.publish_results))}; "
            f"no sidecar, archive or record{cid}"
        )
    posted = [n for n, r in result.publish_results.items() if r.success]
    line = f"Published {name} to {_names(posted)}"
    failed = _failures(result.publish_results)
    if failed:
        line += "; failed on " + "; ".join(failed)
    line += "; archived" if result.archived else "; not archived"
    if not failed:
        return Summary(line + cid)
    first = next(r for r in result.publish_results.values() if not r.success)
    return Summary(
        line + cid,
        f"posted {name} only partly: {first.platform}: {first_reason(first.error)}; send the failed platforms"
        f" again with `{ledger_command(config_path, 'retry', name or '')}`",
        PARTIAL_EXIT,
    )


def _failure(result: WorkflowResult, cid: str) -> Summary:
    error = result.error or "the run failed"
    failed = _failures(result.publish_results)
    if failed:
        # Every platform failed: each reason on stdout, the first one in the verdict.
        first = next(r for r in result.publish_results.values() if not r.success)
        return Summary(
            f"Not published: {result.image_name} failed on " + "; ".join(failed) + cid,
            f"{error}: {first.platform}: {first_reason(first.error)}",
            exit_code=1,
        )
    subject = f"{result.image_name}: " if result.image_name else ""
    return Summary(f"Nothing posted: {subject}{error}{cid}", error, exit_code=1)


# -- the --preview report ---------------------------------------------------------------------------------


def readable(value: Any) -> str:
    """A value as a person writes it: lists joined with commas, yes/no, no Python reprs."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(readable(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {readable(v)}" for k, v in value.items()) if value else "(none)"
    if value is None:
        return "(none)"
    return str(value)


def _fields(value: Any) -> Dict[str, Any]:
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if v not in (None, [], {}, "")}


def render_preview(result: WorkflowResult) -> str:
    """The --preview report: what a real run would post, in plain words, without posting anything."""
    preview = result.preview or {}
    lines = [f"Image:    {preview.get('image')}", f"SHA-256:  {preview.get('sha256')}", "", "Analysis:"]
    lines += [f"  {key}: {readable(value)}" for key, value in _fields(preview.get("analysis")).items()]
    lines += [
        "",
        f"Caption:     {readable(preview.get('caption'))}",
        f"SD caption:  {readable(preview.get('sd_caption'))}",
        "",
    ]
    if preview.get("sidecar"):
        lines += ["Sidecar:", *("  " + line for line in preview["sidecar"].splitlines()), ""]
    platforms = preview.get("platforms") or {}
    lines.append("Platforms:")
    lines += [f"  {platform}: {caption}" for platform, caption in platforms.items()]
    if not platforms:
        lines.append("  (none enabled)")
    email = preview.get("email")
    if email:
        lines += [
            "",
            f"Email plan: caption in the {email.get('caption_target')}, subject mode {email.get('subject_mode')}, "
            f"confirmation to the sender: {readable(email.get('confirmation_to_sender'))}",
        ]
    lines += [
        "",
        f"Archive after posting: {readable(preview.get('archive'))}",
        f"Preview only (dry run): would publish to {_names(list(platforms))}; "
        "nothing was written, posted, archived or recorded.",
    ]
    return "\n".join(lines)
