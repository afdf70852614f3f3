"""The `--html` page of `autoinstrument report`: ONE self-contained file, readable without a network.

Why it looks like this: operators open it from a CI artefact or a laptop, often offline, so everything is
inline (CSS and SVG, no script at all) and a Content-Security-Policy forbids loading anything. Every string
that came from a log line (event names, fields, routes, correlation ids, context values) is untrusted and
goes through `html.escape` before it reaches the page.

Sections: budget table; a waterfall of the slowest runs per total field (each stage a bar, laid end to end
in run order; a stage field is the SUM of its calls in the run, and calls may overlap or leave gaps, so the
bars show where time went, not a timeline); a distribution chart per `_ms` field (histogram of the exact
counts, with p50/p95/p99 and budget markers); per-event and per-route tables; skipped lines.
"""

from __future__ import annotations

import bisect
import html
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from autoinstrument.report import (
    SCHEMA_VERSION,
    SKIP_DESCRIPTIONS,
    SKIP_REASONS,
    STAGE_ORDER,
    BudgetCheck,
    FieldStats,
    Report,
    Run,
    field_sort_key,
)

STAGE_COLORS = {
    "dropbox_list_images_ms": "#4e79a7",
    "image_selection_ms": "#76b7b2",
    "vision_analysis_ms": "#f28e2b",
    "caption_generation_ms": "#e15759",
    "sidecar_write_ms": "#59a14f",
    "publish_parallel_ms": "#b07aa1",
    "archive_ms": "#9c755f",
}
EXTRA_COLORS = ("#edc948", "#ff9da7", "#bab0ac", "#86bcb6", "#d37295", "#a0cbe8", "#8cd17d", "#fabfd2")
MAX_BINS = 40
#: Nothing may be loaded: no script, no image, no font, no fetch; only the inline style.
CSP = "default-src 'none'; style-src 'unsafe-inline'"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d1d1f;
background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 4px}
table{border-collapse:collapse;margin:6px 0 12px}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.breach{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.nodata{color:#777}
.muted{color:#666}.chart{margin:4px 0 16px}code{font-size:12px}.scroll{overflow-x:auto}
.runs td{white-space:nowrap}
svg text{font:11px system-ui,sans-serif;fill:#333}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
"""


def esc(value: Any) -> str:
    """Escape anything for HTML text and attribute values (logs are untrusted)."""
    return html.escape("" if value is None else str(value), quote=True)


def _n(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return esc(value)


def stage_colors(fields: Sequence[str]) -> Dict[str, str]:
    """A fixed colour per known stage; others get the extra palette in the order given."""
    colors: Dict[str, str] = {}
    extra = 0
    for name in fields:
        if name in STAGE_COLORS:
            colors[name] = STAGE_COLORS[name]
        elif name not in colors:
            colors[name] = EXTRA_COLORS[extra % len(EXTRA_COLORS)]
            extra += 1
    return colors


def stage_sort(names: Sequence[str]) -> List[str]:
    """The fixed run order: list → selection → analysis → caption → sidecar → publish → archive, then the
    rest alphabetically."""
    known = [n for n in STAGE_ORDER if n in names]
    return known + sorted(n for n in names if n not in STAGE_ORDER)


# ---------------------------------------------------------------------------------------------- histograms


def histogram(stats: FieldStats, bins: int = MAX_BINS, hi_at_least: int = 0) -> Tuple[List[Tuple[int, int, int]], bool]:
    """Bins (lo, hi inclusive, count) over [min, max(max, hi_at_least)], and whether they are log-spaced.

    Log spacing when the range spans more than two orders of magnitude, so a long tail does not squash
    the body.
    """
    lo, hi = min(stats.counts), max(max(stats.counts), hi_at_least)
    log = lo > 0 and hi / lo > 100
    if log:
        edges = sorted({int(round(lo * (hi / lo) ** (i / bins))) for i in range(bins + 1)})
        edges[0], edges[-1] = lo, hi + 1
        bounds = [(edges[i], edges[i + 1] - 1) for i in range(len(edges) - 1) if edges[i + 1] > edges[i]]
    else:
        width = max(1, math.ceil((hi - lo + 1) / bins))
        bounds = [(b, min(hi, b + width - 1)) for b in range(lo, hi + 1, width)]
    counts = [0] * len(bounds)
    starts = [b[0] for b in bounds]
    for value, times in stats.counts.items():
        counts[bisect.bisect_right(starts, value) - 1] += times
    return [(a, b, c) for (a, b), c in zip(bounds, counts)], log


def histogram_svg(name: str, stats: FieldStats, limits: Dict[str, float]) -> str:
    """An inline SVG histogram with percentile markers (and budget lines when `limits` has any)."""
    if not stats.n:
        return f'<p class="muted">{esc(name)}: no valid samples.</p>'
    summary = stats.summary()
    top_limit = int(max(limits.values())) if limits else 0
    bins, log = histogram(stats, hi_at_least=top_limit)
    markers = [(f"p{p}", summary[f"p{p}"], "#333", "") for p in (50, 95, 99)]
    markers += [(f"budget {stat}", limit, "#b00020", ' stroke-dasharray="5,3"') for stat, limit in limits.items()]
    # One label row per marker, so close percentiles never print over each other.
    width, left, right, bottom, plot_h = 720, 48, 12, 34, 110
    top = 10 + 12 * len(markers)
    height = top + plot_h + bottom
    plot_w = width - left - right
    lo, hi = bins[0][0], bins[-1][1] + 1
    peak = max(c for _, _, c in bins) or 1

    def x_of(value: float) -> float:
        value = min(max(value, lo), hi)
        if log:
            return left + plot_w * math.log(value / lo) / math.log(hi / lo)
        return left + plot_w * (value - lo) / (hi - lo)

    parts = [
        f'<svg role="img" aria-label="distribution of {esc(name)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#999"/>',
    ]
    for a, b, count in bins:
        x0, x1 = x_of(a), x_of(b + 1)
        h = plot_h * count / peak
        parts.append(
            f'<rect x="{x0:.1f}" y="{top + plot_h - h:.1f}" width="{max(0.5, x1 - x0 - 0.5):.1f}" '
            f'height="{h:.1f}" fill="#4e79a7"><title>{_n(a)}–{_n(b)} ms: {_n(count)}</title></rect>'
        )
    for i, (label, value, color, dash) in enumerate(markers):
        x = x_of(value)
        y = 18 + 12 * i
        # right half: the label goes left of its line so it is never cut off at the edge
        anchor = f'x="{x - 3:.1f}" text-anchor="end"' if x > left + plot_w / 2 else f'x="{x + 3:.1f}"'
        parts.append(
            f'<line x1="{x:.1f}" y1="{y - 9}" x2="{x:.1f}" y2="{top + plot_h}" stroke="{color}"{dash}/>'
            f'<text {anchor} y="{y}" fill="{color}">{esc(label)} {_n(int(value))}</text>'
        )
    scale = "log scale" if log else "linear"
    parts.append(
        f'<text x="{left}" y="{height - 14}">{_n(lo)} ms</text>'
        f'<text x="{width - right}" y="{height - 14}" text-anchor="end">{_n(hi - 1)} ms</text>'
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 2}" text-anchor="middle">{esc(name)} ({scale}, '
        f"{_n(stats.n)} samples)</text>"
        f'<text x="4" y="{top + 8}">{_n(peak)}</text><text x="4" y="{top + plot_h}">0</text></svg>'
    )
    return "".join(parts)


# ---------------------------------------------------------------------------------------------- waterfall


def waterfall_svg(total_field: str, runs: Sequence[Run]) -> str:
    """One row per slow run: its stages as bars end to end in run order, over an outline of the total."""
    if not runs:
        return ""
    names = stage_sort(sorted({k for run in runs for k in run.stages}))
    colors = stage_colors(names)
    label_w, width, row_h, top = 300, 1000, 22, 8
    plot_w = width - label_w - 70
    scale = max(max(run.total_ms, sum(run.stages.values())) for run in runs) or 1
    height = top + row_h * len(runs) + 6
    parts = [
        f'<svg role="img" aria-label="slowest runs by {esc(total_field)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    for i, run in enumerate(runs):
        y = top + i * row_h
        cid = run.correlation_id or "(no correlation_id)"
        short = cid if len(cid) <= 38 else cid[:37] + "…"
        parts.append(
            f'<text x="0" y="{y + 14}"><title>{esc(cid)} {esc(run.event)} {esc(run.timestamp or "")}</title>'
            f"{esc(short)}</text>"
        )
        total_w = plot_w * run.total_ms / scale
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{total_w:.1f}" height="{row_h - 6}" fill="#f4f4f4" '
            f'stroke="#999"><title>{esc(total_field)}: {_n(run.total_ms)} ms</title></rect>'
        )
        x = float(label_w)
        for name in names:
            value = run.stages.get(name)
            if not value:
                continue
            w = plot_w * value / scale
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{max(w, 0.5):.1f}" height="{row_h - 10}" '
                f'fill="{colors[name]}"><title>{esc(name)}: {_n(value)} ms</title></rect>'
            )
            x += w
        parts.append(
            f'<text x="{label_w + max(total_w, x - label_w) + 6:.1f}" y="{y + 14}">{_n(run.total_ms)} ms</text>'
        )
    parts.append("</svg>")
    legend = "".join(f'<span><i class="sw" style="background:{colors[n]}"></i>{esc(n)}</span>' for n in names)
    return "".join(parts) + (f'<div class="legend">{legend}</div>' if legend else "")


def _runs_table(runs: Sequence[Run]) -> str:
    names = stage_sort(sorted({k for run in runs for k in run.stages}))
    head = "".join(f'<th class="n">{esc(n)}</th>' for n in names)
    rows = []
    for rank, run in enumerate(runs, 1):
        cells = "".join(f'<td class="n">{_n(run.stages.get(n))}</td>' for n in names)
        context = " ".join(f"{esc(k)}={esc(v)}" for k, v in run.context.items())
        rows.append(
            f'<tr><td class="n">{rank}</td><td><code>{esc(run.correlation_id or "–")}</code></td>'
            f"<td>{esc(run.event)}</td><td>{esc(run.timestamp or '')}</td>"
            f'<td class="n">{_n(run.total_ms)}</td>{cells}<td>{context}</td></tr>'
        )
    return (
        f'<table class="runs"><tr><th class="n">#</th><th>correlation_id</th><th>event</th><th>timestamp</th>'
        f'<th class="n">total ms</th>{head}<th>context</th></tr>{"".join(rows)}</table>'
    )


# ---------------------------------------------------------------------------------------------- page


def _stats_cells(summary: Dict[str, Any]) -> str:
    return "".join(
        f'<td class="n">{_n(summary[k])}</td>' for k in ("count", "p50", "p95", "p99", "max", "mean", "invalid")
    )


_STATS_HEAD = "".join(f'<th class="n">{h}</th>' for h in ("count", "p50", "p95", "p99", "max", "mean", "invalid"))


def render_html(report: Report, checks: Sequence[BudgetCheck] = (), title: str = "autoinstrument report") -> str:
    """The whole page as a string (see the module docstring)."""
    out: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f'<meta name="generator" content="autoinstrument report, schema {SCHEMA_VERSION}">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{_n(report.lines)} lines, {_n(report.events_used)} events with <code>_ms</code> '
        f"fields, {_n(sum(report.skipped.values()))} skipped. All durations in ms; percentiles are exact, "
        "nearest-rank "
        "(the smallest observed value with at least p% of the samples at or below it).</p>",
    ]
    # Budgets
    limits_by_field: Dict[str, Dict[str, float]] = {}
    for check in checks:
        limits_by_field.setdefault(check.field, {})[check.statistic] = check.limit
    if checks:
        failed = sum(1 for c in checks if c.breached)
        verdict = (
            f'<p class="breach">{failed} budget(s) breached.</p>' if failed else '<p class="ok">All budgets met.</p>'
        )
        rows = []
        for c in checks:
            cls = "breach" if c.breached else ("nodata" if c.observed is None else "ok")
            rows.append(
                f"<tr><td>{esc(c.field)}</td><td>{esc(c.statistic)}</td>"
                f'<td class="{cls}">{esc(c.status)}</td>'
                f'<td class="n">{_n(int(c.limit))}</td><td class="n">{_n(c.observed)}</td>'
                f'<td class="n">{_n(c.count)}</td><td class="n">{_n(c.over_limit)}</td>'
                f"<td>{esc(', '.join(c.events))}</td></tr>"
            )
        out.append(
            "<h2>Budgets</h2>" + verdict + "<table><tr><th>field</th><th>statistic</th><th>status</th>"
            '<th class="n">limit</th><th class="n">observed</th><th class="n">samples</th>'
            f'<th class="n">over limit</th><th>events</th></tr>{"".join(rows)}</table>'
            '<p class="muted">A breach is an observed statistic strictly above its limit; a bare number '
            "in the budgets is a p95 limit.</p>"
        )
    # Waterfalls
    if report.slowest:
        out.append(
            '<h2>Slowest runs</h2><p class="muted">Each row is one run (its correlation id joins every log '
            "line of that run). Stages are drawn end to end in run order (list → selection → analysis → "
            "caption → sidecar → publish → archive, then others). A stage value is the <em>sum</em> of its "
            "calls within the run; calls may run in parallel or leave gaps, so the bars show where time "
            "went, not a timeline. The grey outline is the run's total.</p>"
        )
        for total_field, runs in report.slowest.items():
            out.append(f"<h3>By {esc(total_field)}</h3>")
            out.append(f'<div class="chart">{waterfall_svg(total_field, runs)}</div>')
            out.append(f'<div class="scroll">{_runs_table(runs)}</div>')
    # Distributions
    fields = report.fields()
    if fields:
        out.append("<h2>Distributions</h2>")
        for name in fields:
            stats = report.field_stats(name)
            events = ", ".join(report.events_with(name))
            out.append(
                f'<h3 id="field-{esc(name)}">{esc(name)}</h3><p class="muted">from: {esc(events)}'
                + (f"; {_n(stats.invalid)} invalid values ignored" if stats.invalid else "")
                + "</p>"
            )
            out.append(f'<div class="chart">{histogram_svg(name, stats, limits_by_field.get(name, {}))}</div>')
    # Tables
    if report.events:
        rows = []
        for event, group in sorted(report.events.items()):
            for i, name in enumerate(sorted(group.fields, key=field_sort_key)):
                label = f"{esc(event)} ({_n(group.count)})" if i == 0 else ""
                rows.append(
                    f"<tr><td>{label}</td><td>{esc(name)}</td>{_stats_cells(group.fields[name].summary())}</tr>"
                )
        out.append(f"<h2>Events</h2><table><tr><th>event</th><th>field</th>{_STATS_HEAD}</tr>{''.join(rows)}</table>")
    if report.routes:
        rows = []
        for (family, method, route), group in sorted(report.routes.items()):
            status = ", ".join(f"{esc(code)}: {_n(n)}" for code, n in sorted(group.status.items())) or "–"
            for i, name in enumerate(sorted(group.fields, key=field_sort_key)):
                head = (
                    f"<td><code>{esc(method)} {esc(route)}</code></td><td>{esc(family)}</td><td>{status}</td>"
                    if i == 0
                    else "<td></td><td></td><td></td>"
                )
                rows.append(f"<tr>{head}<td>{esc(name)}</td>{_stats_cells(group.fields[name].summary())}</tr>")
        out.append(
            "<h2>Routes</h2><table><tr><th>route</th><th>family</th><th>status codes</th><th>field</th>"
            f"{_STATS_HEAD}</tr>{''.join(rows)}</table>"
        )
    rows = [
        f"<tr><td>{esc(r)}</td><td>{esc(SKIP_DESCRIPTIONS[r])}</td>"
        f'<td class="n">{_n(report.skipped.get(r, 0))}</td></tr>'
        for r in SKIP_REASONS
    ]
    out.append(f"<h2>Skipped lines</h2><table>{''.join(rows)}</table>")
    if report.dropped:
        items = ", ".join(f"{esc(k)}: {_n(v)}" for k, v in sorted(report.dropped.items()))
        out.append(f'<p class="muted">Over the caps (folded into "(other)" or not recorded): {items}</p>')
    out.append("</body></html>\n")
    return "\n".join(out)


def write_html(report: Report, checks: Sequence[BudgetCheck], path: str, title: Optional[str] = None) -> None:
    """Write the page atomically-enough (temp file + rename) so a CI artefact is never half a page."""
    text = render_html(report, checks, title or "autoinstrument report")
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


__all__ = ["render_html", "write_html", "histogram", "histogram_svg", "waterfall_svg", "esc"]
