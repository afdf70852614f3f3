"""The `--html` page of `autoinstrument report`: ONE self-contained file, readable without a network.

Why it looks like this: operators open it from a CI artefact or a laptop, often offline, so everything is
inline (CSS and SVG, no script at all) and a Content-Security-Policy forbids loading anything. Every string
that came from a log line (event names, fields, routes, correlation ids, context values) is untrusted and
goes through `html.escape` before it reaches the page.

Sections: a summary row per field (what budgets see); budget table; a waterfall of the slowest runs per total
field (each stage a bar in the manifest's stage order; the stages its `parallel:` lists are drawn overlapping
inside their outer stage, see `timeline`; a stage field is the SUM of its calls in the run); a distribution per
`_ms` field (histogram of the exact counts with tick-labelled axes in ms, p50/p95/p99 markers; a budget outside
the data's range is drawn past an axis break so it never squeezes the data); per-event and per-route tables;
skipped lines.

Phone and desktop: the page is never wider than the screen (a viewport meta tag, text that wraps); every table
and histogram sits in a box of its own that scrolls sideways when it is wider; the waterfall's bars stretch to
the width there is.
"""

from __future__ import annotations

import html
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from autoinstrument.report.budgets import BudgetCheck, verdict
from autoinstrument.report.decode import SKIP_DESCRIPTIONS, SKIP_REASONS
from autoinstrument.report.document import SCHEMA_VERSION, field_rows
from autoinstrument.report.records import Report, Run
from autoinstrument.report.stats import SUMMARY_KEYS, FieldStats, histogram
from autoinstrument.report.timeline import lanes_of, layout, stage_names

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
#: Every table sits in a box of its own that scrolls sideways when the table is wider than the screen (a phone),
#: so the page itself is never wider than the viewport.
BOX = '<div class="scroll">'
#: Nothing may be loaded: no script, no image, no font, no fetch; only the inline style.
CSP = "default-src 'none'; style-src 'unsafe-inline'"

CSS = """
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:20px 24px;
color:#1d1d1f;background:#fff;max-width:1400px;box-sizing:border-box}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;padding-bottom:2px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:22px 0 2px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
p,h1,h2,h3,.legend{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:0}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.breach{color:#b00020;font-weight:600}.ok{color:#1b7f3b}.nodata{color:#777}
.muted{color:#666}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.scroll,.chart{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}
.scroll{margin:6px 0 12px}.chart{margin:4px 0 16px}.chart svg{display:block}
table.runs{font-size:12.5px}table.runs th,table.runs td{padding:3px 6px}table.runs td.n{white-space:nowrap}
table.runs th.n{min-width:4em}table.runs td.run{min-width:16em;max-width:24em}
.run small{color:#666}.run small span{white-space:nowrap}
table.summary td,table.summary th{padding:3px 8px}table.summary td.n{white-space:nowrap}
svg text{font:11px system-ui,sans-serif;fill:#333}
svg text.title{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
td,th{white-space:nowrap}table.runs th,table.runs td.run{white-space:normal}
.waterfall{min-width:0}.wrow{display:grid;grid-template-columns:minmax(10em,19em) minmax(0,1fr) 5.5em;column-gap:8px;
align-items:start;margin:0 0 5px}.wrow>div{min-width:0}.wrow .n{text-align:right;white-space:nowrap;font-size:12.5px}
.wrow .n,.wlabel{line-height:18px}
.wlabel{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.wlabel code{font-size:12px}
svg.bars{display:block;width:100%}.axis{position:relative;height:16px;font-size:11px;color:#555}
.axis span{position:absolute;transform:translateX(-50%);white-space:nowrap}.axis span:first-child{transform:none}
@media (max-width:640px){body{padding:12px 10px}h1{font-size:19px}th,td{padding:3px 6px}
.wrow{grid-template-columns:minmax(0,1fr) 4.8em;margin-bottom:8px}.wrow .wlabel{grid-column:1/-1}
.waxis>div:first-child{display:none}}
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


def waterfall_html(
    total_field: str,
    runs: Sequence[Run],
    order: Sequence[str] = (),
    parallel: Optional[Mapping[str, Sequence[str]]] = None,
) -> str:
    """One row per slow run: its correlation id, its stages as bars over an outline of its total, and the total
    in ms, under a shared time axis. Stages run in order (`order`, then as they come); the stages that ran at
    the same time (`parallel`: outer stage → the stages inside it) are drawn from their outer stage's start, one
    lane each below the run's lane, overlapping (see `timeline`).

    Why HTML rows around one SVG per run: the bars are drawn in a 0..1000 box stretched to the row's width
    (`preserveAspectRatio="none"`), so the chart fills a phone's screen or a desktop's without scrolling and
    without shrinking any text: the texts (ids, axis, totals) are HTML beside the bars, not inside the SVG."""
    if not runs:
        return ""
    parallel = parallel or {}
    names = stage_names(runs, order)
    colors = stage_colors(list(order) + [n for n in names if n not in order])
    row_h, lane_h, span = 18, 11, 1000
    layouts = [layout(run, order, parallel) for run in runs]
    scale = max(max([run.total_ms] + [bar.end for bar in bars]) for run, bars in zip(runs, layouts)) or 1
    ticks = linear_ticks(0, scale, 5)

    def at(ms: float) -> float:
        return span * ms / scale

    axis = "".join(
        f'<span style="left:{100 * tick / scale:.2f}%">{ms_label(tick)}</span>' for tick in ticks if tick < scale * 0.97
    )
    rows = [f'<div class="wrow waxis" aria-hidden="true"><div></div><div class="axis">{axis}</div><div></div></div>']
    for run, bars in zip(runs, layouts):
        lanes = lanes_of(bars)
        height = row_h + (lane_h * lanes + 3 if lanes else 0)
        cid = run.correlation_id or "(no correlation_id)"
        parts = [
            f'<svg class="bars" role="img" aria-label="{esc(cid)}: {esc(total_field)} {_n(run.total_ms)} ms" '
            f'viewBox="0 0 {span} {height}" preserveAspectRatio="none" style="height:{height}px">'
        ]
        parts += [
            f'<line x1="{at(t):.1f}" y1="0" x2="{at(t):.1f}" y2="{height}" stroke="#e4e4e4" '
            'vector-effect="non-scaling-stroke"/>'
            for t in ticks
        ]
        parts.append(
            f'<rect class="total" x="0" y="1" width="{at(run.total_ms):.1f}" height="{row_h - 2}" fill="#f4f4f4" '
            f'stroke="#999" vector-effect="non-scaling-stroke"><title>{esc(total_field)}: {_n(run.total_ms)} ms'
            "</title></rect>"
        )
        for bar in bars:
            if bar.lane:
                y, h = row_h + 1 + lane_h * (bar.lane - 1), lane_h - 3
                note = f" (at the same time as the other stages within {esc(bar.within)})"
            else:
                y, h, note = 4, row_h - 8, ""
            parts.append(
                f'<rect class="stage" data-stage="{esc(bar.name)}" data-lane="{bar.lane}" x="{at(bar.start):.1f}" '
                f'y="{y}" width="{max(at(bar.ms), 0.5):.1f}" height="{h}" fill="{colors[bar.name]}">'
                f"<title>{esc(bar.name)}: {_n(bar.ms)} ms{note}</title></rect>"
            )
        for outer in dict.fromkeys(bar.within for bar in bars if bar.within):  # where the lanes' stages ran
            host = next((bar for bar in bars if bar.name == outer), None)
            if host is not None:
                parts.append(
                    f'<path d="M{at(host.start):.1f},{row_h - 4} V{height} M{at(host.end):.1f},{row_h - 4} '
                    f'V{height}" stroke="#777" stroke-dasharray="2,2" fill="none" vector-effect="non-scaling-stroke"/>'
                )
        parts.append("</svg>")
        rows.append(
            f'<div class="wrow run" data-total="{run.total_ms}">'
            f'<div class="wlabel" title="{esc(cid)} {esc(run.event)} {esc(run.timestamp or "")}"><code>{esc(cid)}'
            f'</code></div><div>{"".join(parts)}</div><div class="n">{_n(run.total_ms)} ms</div></div>'
        )
    inner = {name for inners in parallel.values() for name in inners}
    legend = "".join(
        f'<span><i class="sw" style="background:{colors[n]}"></i>{esc(n)}{" ∥" if n in inner else ""}</span>'
        for n in names
    )
    return (
        f'<div class="waterfall" role="group" aria-label="slowest runs by {esc(total_field)}">{"".join(rows)}</div>'
        + (f'<div class="legend">{legend}</div>' if legend else "")
    )


def _field_head(name: str) -> str:
    """A field name as a column head that may wrap after its underscores (a narrow column, the exact name)."""
    return "_<wbr>".join(esc(part) for part in name.split("_"))


def _runs_table(runs: Sequence[Run], order: Sequence[str] = ()) -> str:
    names = stage_names(runs, order)
    head = "".join(f'<th class="n">{_field_head(n)}</th>' for n in names)
    rows = []
    for rank, run in enumerate(runs, 1):
        cells = "".join(f'<td class="n">{_n(run.stages.get(n))}</td>' for n in names)
        context = " ".join(f"{esc(k)}={esc(v)}" for k, v in run.context.items())
        rows.append(
            f'<tr><td class="n">{rank}</td><td class="run"><code>{esc(run.correlation_id or "–")}</code><br>'
            f"<small><span>{esc(run.event)}</span> <span>{esc(run.timestamp or '')}</span>"
            + (f"<br>{context}" if context else "")
            + f'</small></td><td class="n">{_n(run.total_ms)}</td>{cells}</tr>'
        )
    return (
        f'{BOX}<table class="runs"><tr><th class="n">#</th><th>correlation_id, event, timestamp, context</th>'
        f'<th class="n">total ms</th>{head}</tr>{"".join(rows)}</table></div>'
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
        f'{BOX}<table class="summary"><tr><th>field</th>{head}<th class="n">budget (ms)</th><th>status</th>'
        f'<th class="n">joined</th><th>events</th></tr>{"".join(rows)}</table></div>'
    )


def render_html(report: Report, checks: Sequence[BudgetCheck] = (), title: str = "autoinstrument report") -> str:
    """The whole page as a string (see the module docstring)."""
    out: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f'<meta name="generator" content="autoinstrument report, schema {SCHEMA_VERSION}">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{_n(report.lines)} lines, {_n(report.events_used)} events with <code>_ms</code> '
        f"fields, {_n(sum(report.skipped.values()))} skipped. All durations in ms; percentiles are exact, "
        "nearest-rank "
        "(the smallest observed value with at least p% of the samples at or below it).</p>",
    ]
    if not report.events_used:
        out.append(
            '<p class="breach">No events read: not one line was a JSON event with <code>_ms</code> fields (a '
            "console-format log, an empty file?). Nothing was measured and no budget was checked.</p>"
        )
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
            f"<h2>Budgets</h2>{summary}{BOX}<table><tr><th>field</th><th>statistic</th><th>status</th>"
            '<th class="n">limit</th><th class="n">observed</th><th class="n">samples</th>'
            f'<th class="n">over limit</th><th>events</th></tr>{"".join(rows)}</table></div>'
            '<p class="muted">A breach is an observed statistic strictly above its limit; a bare number '
            "in the budgets is a p95 limit.</p>"
        )
    # Waterfalls
    stage_order = report.stages()
    if report.slowest:
        out.append(
            '<h2>Slowest runs</h2><p class="muted">Each block is one run (its correlation id joins every log '
            "line of that run). Stages are drawn one after another in run order (the manifest's "
            "<code>stages:</code> order, then fields it does not list, as they first appear). Stages the "
            "manifest lists under <code>parallel:</code> (marked ∥) ran at the same time inside their outer stage: "
            "each is drawn on a lane of its own below the run, from the outer stage's start, between the dashed "
            "lines. A stage value is the <em>sum</em> of its calls within the run, so a bar shows how long the "
            "stage took, not exactly when each call ran. The grey outline is the run's total.</p>"
        )
        for total_field, runs in report.slowest.items():
            out.append(f"<h3>By {esc(total_field)}</h3>")
            chart = waterfall_html(total_field, runs, stage_order, report.parallel)
            out.append(f'<div class="chart">{chart}</div>')
            out.append(_runs_table(runs, stage_order))
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
        out.append(
            f"<h2>Events</h2>{BOX}<table><tr><th>event</th><th>field</th>{_STATS_HEAD}</tr>{''.join(rows)}</table></div>"
        )
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
            f"<h2>Routes</h2>{BOX}<table><tr><th>route</th><th>family</th><th>status codes</th><th>field</th>"
            f"{_STATS_HEAD}</tr>{''.join(rows)}</table></div>"
        )
    rows = [
        f"<tr><td>{esc(r)}</td><td>{esc(SKIP_DESCRIPTIONS[r])}</td>"
        f'<td class="n">{_n(report.skipped.get(r, 0))}</td></tr>'
        for r in SKIP_REASONS
    ]
    out.append(f"<h2>Skipped lines</h2>{BOX}<table>{''.join(rows)}</table></div>")
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


__all__ = ["esc", "histogram", "histogram_svg", "render_html", "stage_colors", "waterfall_html", "write_html"]
