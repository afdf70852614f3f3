"""The `--html` page of `autoinstrument report`: ONE self-contained file, readable without a network.

Why it looks like this: operators open it from a CI artefact or a laptop, often offline, so everything is
inline (CSS and SVG, no script at all) and a Content-Security-Policy forbids loading anything. Every string
that came from a log line (event names, fields, routes, correlation ids, context values) is untrusted and
goes through `html.escape` before it reaches the page.

Sections: a summary row per field (what budgets see); budget table; a waterfall of the slowest runs per total
field (each stage a bar, laid end to end in the manifest's stage order; a stage field is the SUM of its calls
in the run, so the bars show where time went, not a timeline); a distribution per `_ms` field (histogram of
the exact counts with tick-labelled axes in ms, p50/p95/p99 markers; a budget outside the data's range is
drawn past an axis break so it never squeezes the data); per-event and per-route tables; skipped lines.
"""

from __future__ import annotations

import html
import math
import os
from typing import Any, Dict, List, Optional, Sequence

from autoinstrument.report.budgets import BudgetCheck, verdict
from autoinstrument.report.decode import SKIP_DESCRIPTIONS, SKIP_REASONS
from autoinstrument.report.document import SCHEMA_VERSION, field_rows
from autoinstrument.report.records import Report, Run
from autoinstrument.report.stats import SUMMARY_KEYS, FieldStats, histogram

#: A colour-blind-friendly qualitative palette (Tableau 10), given to stages in their run order.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#76b7b2",
    "#e15759",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
MAX_BINS = 40
#: Nothing may be loaded: no script, no image, no font, no fetch; only the inline style.
CSP = "default-src 'none'; style-src 'unsafe-inline'"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d1d1f;
background:#fff;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;padding-bottom:2px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:22px 0 2px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
table{border-collapse:collapse;margin:6px 0 12px}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.breach{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.nodata{color:#777}
.muted{color:#666}.chart{margin:4px 0 16px}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:12.5px}.scroll{overflow-x:auto}
.runs td{white-space:nowrap}
table.summary td,table.summary th{padding:3px 8px}table.summary td.n{white-space:nowrap}
svg text{font:11px system-ui,sans-serif;fill:#333}
svg text.title{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
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


def stage_colors(stages: Sequence[str]) -> Dict[str, str]:
    """One colour per stage, by its place in the run order (the same stage keeps its colour on the page)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(stages)}


# ---------------------------------------------------------------------------------------------- axes


def nice_step(span: float, ticks: int = 6) -> float:
    """A 1-2-5 step giving about `ticks` intervals over `span`."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return max(1.0, factor * power)
    return max(1.0, 10 * power)  # pragma: no cover - the loop always returns


def linear_ticks(lo: float, hi: float, ticks: int = 6) -> List[float]:
    step = nice_step(hi - lo, ticks)
    first = math.ceil(lo / step) * step
    out = []
    value = first
    while value <= hi + 1e-9:
        out.append(value)
        value += step
    return out


def log_ticks(lo: float, hi: float) -> List[float]:
    """1-2-5 ticks per decade inside [lo, hi]; only powers of ten when that gives too many."""
    out: List[float] = []
    decade = 10 ** math.floor(math.log10(max(lo, 1)))
    while decade <= hi:
        for factor in (1, 2, 5):
            value = decade * factor
            if lo <= value <= hi:
                out.append(value)
        decade *= 10
    if len(out) > 9:
        out = [v for v in out if math.log10(v).is_integer()] or out[:: len(out) // 6 + 1]
    return out


def ms_label(value: float) -> str:
    """Axis text: `250 ms`, `1.5 s`, `2 min`: short and with its unit."""
    if value < 1000:
        return f"{value:,.0f} ms"
    if value < 60_000:
        seconds = value / 1000
        return f"{seconds:,.{0 if seconds.is_integer() else 1}f} s"
    minutes = value / 60_000
    return f"{minutes:,.{0 if minutes.is_integer() else 1}f} min"


# ---------------------------------------------------------------------------------------------- histograms


def histogram_svg(name: str, stats: FieldStats, limits: Dict[str, float]) -> str:
    """An inline SVG histogram: x axis in ms with ticks, count axis, p50/p95/p99 and budget markers.

    The x range is the data's own; a budget outside it is drawn past an axis break beside the plot (with
    its distance in words), so a far budget never squeezes the distribution into a corner.
    """
    if not stats.n:
        return f'<p class="muted">{esc(name)}: no valid samples.</p>'
    summary = stats.summary()
    bins, log = histogram(stats, MAX_BINS)
    lo, hi = bins[0][0], bins[-1][1] + 1
    inside = {stat: v for stat, v in limits.items() if lo <= v <= hi}
    above = {stat: v for stat, v in limits.items() if v > hi}
    below = {stat: v for stat, v in limits.items() if v < lo}
    markers = [(f"p{p}", float(summary[f"p{p}"]), "#333", "") for p in (50, 95, 99)]
    markers += [(f"budget {stat}", v, "#b00020", ' stroke-dasharray="5,3"') for stat, v in inside.items()]
    width, axis_w, bottom, plot_h = 760, 64, 44, 120
    strip = 120  # room past the axis break for budgets outside the range
    left = axis_w + (strip if below else 0)
    plot_w = width - left - 16 - (strip if above else 0)
    top = 10 + 13 * len(markers)
    height = top + plot_h + bottom
    base = top + plot_h
    peak = max(c for _, _, c in bins) or 1

    def x_of(value: float) -> float:
        value = min(max(value, lo), hi)
        if log:
            return left + plot_w * math.log(value / lo) / math.log(hi / lo)
        return left + plot_w * (value - lo) / (hi - lo)

    parts = [
        f'<svg role="img" aria-label="distribution of {esc(name)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#888"/>',
    ]
    for tick in linear_ticks(0, peak, 4):  # count axis
        y = base - plot_h * tick / peak
        parts.append(
            f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,.0f}</text>'
        )
    parts.append(f'<text x="{left - 6}" y="{top - 12}" text-anchor="end" class="muted">samples</text>')
    for a, b, count in bins:
        x0, x1 = x_of(a), x_of(b + 1)
        h = plot_h * count / peak
        parts.append(
            f'<rect x="{x0:.1f}" y="{base - h:.1f}" width="{max(0.5, x1 - x0 - 0.5):.1f}" '
            f'height="{h:.1f}" fill="#4e79a7"><title>{_n(a)}–{_n(b)} ms: {_n(count)}</title></rect>'
        )
    ticks = log_ticks(lo, hi) if log else linear_ticks(lo, hi)
    last_x = -100.0
    for tick in ticks:  # x axis: ticks with their unit, never overlapping
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" stroke="#888"/>')
        if x - last_x >= 52:
            parts.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{ms_label(tick)}</text>')
            last_x = x
    for i, (label, value, color, dash) in enumerate(markers):
        x = x_of(value)
        y = 12 + 13 * i
        anchor = f'x="{x - 3:.1f}" text-anchor="end"' if x > left + plot_w / 2 else f'x="{x + 3:.1f}"'
        parts.append(
            f'<line x1="{x:.1f}" y1="{y - 9}" x2="{x:.1f}" y2="{base}" stroke="{color}"{dash}/>'
            f'<text {anchor} y="{y}" fill="{color}">{esc(label)} {_n(int(value))} ms</text>'
        )
    for side, outside in (("above", above), ("below", below)):
        if not outside:
            continue
        edge = left + plot_w if side == "above" else left
        bx = edge + 24 if side == "above" else edge - 24
        mx = edge + strip - 40 if side == "above" else edge - strip + 40
        parts.append(  # the break: two slashes on the axis, a dashed gap, then the budget's own tick
            f'<path d="M{bx - 5:.1f},{base + 5} l6,-10 M{bx + 1:.1f},{base + 5} l6,-10" stroke="#888"/>'
            f'<line x1="{min(edge, mx):.1f}" y1="{base}" x2="{max(edge, mx):.1f}" y2="{base}" stroke="#bbb" '
            'stroke-dasharray="2,3"/>'
        )
        ordered = sorted(outside.items(), key=lambda kv: kv[1])
        for k, (stat, value) in enumerate(ordered):
            y = top + 13 * k
            parts.append(
                f'<line x1="{mx:.1f}" y1="{y + 3}" x2="{mx:.1f}" y2="{base}" stroke="#b00020" stroke-dasharray="5,3"/>'
                f'<text x="{mx:.1f}" y="{y}" text-anchor="middle" fill="#b00020">budget {esc(stat)} '
                f"{_n(int(value))} ms</text>"
            )
        nearest = ordered[0][1] if side == "above" else ordered[-1][1]
        factor = nearest / hi if side == "above" else lo / nearest
        words = "× the max" if side == "above" else "× under the min"
        parts.append(
            f'<text x="{mx:.1f}" y="{base + 16}" text-anchor="middle" fill="#b00020">axis break</text>'
            f'<text x="{mx:.1f}" y="{base + 28}" text-anchor="middle">{factor:,.1f}{words}</text>'
        )
    scale = "log scale" if log else "linear scale"
    parts.append(
        f'<text class="title" x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle">'
        f"{esc(name)} in ms ({scale}, {_n(stats.n)} samples)</text></svg>"
    )
    return "".join(parts)


# ---------------------------------------------------------------------------------------------- waterfall


def waterfall_svg(total_field: str, runs: Sequence[Run], order: Sequence[str] = ()) -> str:
    """One row per slow run: its stages as bars end to end in run order (`order`, then as they come), over an
    outline of the total, with a time axis."""
    if not runs:
        return ""
    names = _stage_names(runs, order)
    colors = stage_colors(list(order) + [n for n in names if n not in order])
    label_w, width, row_h, top = 300, 1000, 22, 24
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
    for tick in linear_ticks(0, scale, 6):  # the time axis on top
        x = label_w + plot_w * tick / scale
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 4}" stroke="#e4e4e4"/>'
            f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle">{ms_label(tick)}</text>'
        )
    parts.append("</svg>")
    legend = "".join(f'<span><i class="sw" style="background:{colors[n]}"></i>{esc(n)}</span>' for n in names)
    return "".join(parts) + (f'<div class="legend">{legend}</div>' if legend else "")


def _stage_names(runs: Sequence[Run], order: Sequence[str]) -> List[str]:
    seen = {k: None for run in runs for k in run.stages}
    return [n for n in order if n in seen] + [n for n in seen if n not in order]


def _runs_table(runs: Sequence[Run], order: Sequence[str] = ()) -> str:
    names = _stage_names(runs, order)
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
    return "".join(f'<td class="n">{_n(summary[k])}</td>' for k in SUMMARY_KEYS)


_STATS_HEAD = "".join(f'<th class="n">{h}</th>' for h in SUMMARY_KEYS)


def _summary_table(report: Report, checks: Sequence[BudgetCheck]) -> str:
    """One row per field, the first thing on the page: what an operator scans for a regression."""
    by_field: Dict[str, List[BudgetCheck]] = {}
    for check in checks:
        by_field.setdefault(check.field, []).append(check)
    rows = []
    for row in field_rows(report):
        name = row["field"]
        own = by_field.get(name, [])
        if not own:
            status, cls = "–", "nodata"
        elif any(c.breached for c in own):
            status, cls = "BREACH", "breach"
        elif all(c.observed is None for c in own):
            status, cls = "no data", "nodata"
        else:
            status, cls = "ok", "ok"
        budget = ", ".join(f"{esc(c.statistic)} ≤ {_n(int(c.limit))}" for c in own) or "–"
        rows.append(
            f'<tr><td><a href="#field-{esc(name)}"><code>{esc(name)}</code></a></td>'
            + "".join(f'<td class="n">{_n(row[k])}</td>' for k in ("count", "p50", "p95", "p99", "max"))
            + f'<td class="n">{budget}</td><td class="{cls}">{status}</td><td class="n">{_n(row["joined"])}</td>'
            f"<td>{esc(', '.join(row['events']))}</td></tr>"
        )
    head = "".join(f'<th class="n">{h}</th>' for h in ("count", "p50", "p95", "p99", "max"))
    return (
        '<h2>Fields</h2><p class="muted">One row per <code>_ms</code> field, in ms, pooled over every event that '
        "carries it, each run's sample once (joined on <code>correlation_id</code>; <em>joined</em> counts the "
        "second copies left out). This is what the budgets are checked against.</p>"
        f'<table class="summary"><tr><th>field</th>{head}<th class="n">budget (ms)</th><th>status</th>'
        f'<th class="n">joined</th><th>events</th></tr>{"".join(rows)}</table>'
    )


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
    if report.fields():
        out.append(_summary_table(report, checks))
    # Budgets
    limits_by_field: Dict[str, Dict[str, float]] = {}
    for check in checks:
        limits_by_field.setdefault(check.field, {})[check.statistic] = check.limit
    if checks:
        said = verdict(checks)
        cls = "breach" if any(c.breached for c in checks) else ("ok" if said == "all budgets met" else "nodata")
        summary = f'<p class="{cls}">{esc(said[0].upper() + said[1:])}.</p>'
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
            "<h2>Budgets</h2>" + summary + "<table><tr><th>field</th><th>statistic</th><th>status</th>"
            '<th class="n">limit</th><th class="n">observed</th><th class="n">samples</th>'
            f'<th class="n">over limit</th><th>events</th></tr>{"".join(rows)}</table>'
            '<p class="muted">A breach is an observed statistic strictly above its limit; a bare number '
            "in the budgets is a p95 limit.</p>"
        )
    # Waterfalls
    stage_order = report.stages()
    if report.slowest:
        out.append(
            '<h2>Slowest runs</h2><p class="muted">Each row is one run (its correlation id joins every log '
            "line of that run). Stages are drawn end to end in run order (the manifest's <code>stages:</code> "
            "order, then fields it does not list, as they first appear). A stage value is the <em>sum</em> of its "
            "calls within the run; calls may run in parallel or leave gaps, so the bars show where time "
            "went, not a timeline. The grey outline is the run's total.</p>"
        )
        for total_field, runs in report.slowest.items():
            out.append(f"<h3>By {esc(total_field)}</h3>")
            out.append(f'<div class="chart">{waterfall_svg(total_field, runs, stage_order)}</div>')
            out.append(f'<div class="scroll">{_runs_table(runs, stage_order)}</div>')
    # Distributions
    fields = report.fields()
    if fields:
        out.append("<h2>Distributions</h2>")
        for name in fields:
            stats = report.field_stats(name)
            summary = stats.summary()
            events = ", ".join(report.events_with(name))
            figures = " · ".join(f"{k} {_n(summary[k])}" for k in ("count", "p50", "p95", "p99", "max"))
            out.append(
                f'<h3 id="field-{esc(name)}">{esc(name)}</h3><p class="muted">{figures} (ms) · from: {esc(events)}'
                + (f"; {_n(stats.invalid)} invalid values ignored" if stats.invalid else "")
                + "</p>"
            )
            out.append(f'<div class="chart">{histogram_svg(name, stats, limits_by_field.get(name, {}))}</div>')
    # Tables
    if report.events:
        rows = []
        for event, group in sorted(report.events.items()):
            for i, name in enumerate(report.sort_fields(group.fields)):
                label = f"{esc(event)} ({_n(group.count)})" if i == 0 else ""
                rows.append(
                    f"<tr><td>{label}</td><td>{esc(name)}</td>{_stats_cells(group.fields[name].summary())}</tr>"
                )
        out.append(f"<h2>Events</h2><table><tr><th>event</th><th>field</th>{_STATS_HEAD}</tr>{''.join(rows)}</table>")
    if report.routes:
        rows = []
        for (family, method, route), group in sorted(report.routes.items()):
            status = ", ".join(f"{esc(code)}: {_n(n)}" for code, n in sorted(group.status.items())) or "–"
            for i, name in enumerate(report.sort_fields(group.fields)):
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


__all__ = ["esc", "histogram", "histogram_svg", "render_html", "stage_colors", "waterfall_svg", "write_html"]
