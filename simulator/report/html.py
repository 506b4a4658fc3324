"""``report.html``: one self-contained page — summary, thresholds, stage table, verdict, plots.

Plots are inline SVG drawn here in Python, so the page reads without JavaScript; with it, each
is replaced by an interactive uPlot chart (hover values, drag to zoom a time range, double-click
to reset, click a legend entry to toggle a series) drawn from the same data, embedded as JSON.
uPlot is vendored (``vendor/``, MIT) and inlined: no CDN, the file opens offline. Every plot
marks the stage boundaries, because the questions a load test answers are per stage. The live
dashboard (:mod:`simulator.report.dashboard`) draws the same charts with the same script.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.report.exports import rfc3339
from simulator.report.stages import HEADERS, Assessment, StageRow, table_cells
from simulator.report.summary import warm_lines

if TYPE_CHECKING:
    from simulator.report.model import RunData

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
VERDICT_COLOURS = {
    "held": "#2e7d32",
    "graceful": "#b26a00",
    "cliff": "#c62828",
    "no data": "#555",
}

Point = tuple[float, float | None]


@dataclass
class Series:
    name: str
    points: list[Point]
    dashed: bool = False


@dataclass
class StageMark:
    start: float
    end: float
    label: str


def esc(v: object) -> str:
    return html.escape(str(v), quote=True)


def nice_max(v: float) -> float:
    """A round axis top at or above ``v`` (1, 2, 2.5, 5 × 10^n)."""
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp: float = 10.0 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp * 1.0000001:
            return m * exp
    return 10 * exp


def _fmt_num(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def _fmt_t(s: float) -> str:
    s = round(s)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def line_chart(
    key: str,
    title: str,
    unit: str,
    series: Sequence[Series],
    marks: Sequence[StageMark],
    t_max: float,
    *,
    width: int = 920,
    height: int = 230,
) -> str:
    """An SVG line chart: x is run time (s), y starts at 0; gaps where a value is None."""
    left, right, top, bottom = 62, 14, 30, 30
    pw, ph = width - left - right, height - top - bottom
    ys = [y for s in series for _, y in s.points if y is not None]
    y_top = nice_max(max(ys, default=0.0))
    t_max = max(t_max, 1e-9)

    def sx(t: float) -> float:
        return left + pw * min(max(t / t_max, 0.0), 1.0)

    def sy(y: float) -> float:
        return top + ph * (1 - min(max(y / y_top, 0.0), 1.0))

    out = [
        f'<svg class="plot" data-plot="{esc(key)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(title)}">',
        f'<text class="title" x="{left}" y="18">{esc(title)}'
        f'<tspan class="unit"> ({esc(unit)})</tspan></text>',
    ]
    for i, m in enumerate(marks):
        x0, x1 = sx(m.start), sx(m.end)
        if i % 2 == 0:
            out.append(
                f'<rect class="band" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 0):.1f}" '
                f'height="{ph}"/>'
            )
        out.append(
            f'<line class="stage" x1="{x0:.1f}" y1="{top}" x2="{x0:.1f}" y2="{top + ph}"/>'
            f'<text class="stage-label" x="{x0 + 3:.1f}" y="{top + 11}">{esc(m.label)}</text>'
        )
    if marks:
        xe = sx(marks[-1].end)
        out.append(f'<line class="stage" x1="{xe:.1f}" y1="{top}" x2="{xe:.1f}" y2="{top + ph}"/>')
    for k in range(5):
        v = y_top * k / 4
        y = sy(v)
        out.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}"/>'
            f'<text class="ytick" x="{left - 6}" y="{y + 4:.1f}">{_fmt_num(v)}</text>'
        )
    step = nice_max(t_max / 8)
    n = 0
    while n * step <= t_max + 1e-9:
        x = sx(n * step)
        out.append(f'<text class="xtick" x="{x:.1f}" y="{top + ph + 16}">{_fmt_t(n * step)}</text>')
        n += 1
    out.append(f'<rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}"/>')
    legend_x = left + pw
    for i, s in enumerate(reversed(series)):
        colour = PALETTE[(len(series) - 1 - i) % len(PALETTE)]
        label = esc(s.name)
        legend_x -= 16 + 7 * len(s.name)
        out.append(
            f'<g class="legend"><rect x="{legend_x:.0f}" y="9" width="10" height="10" '
            f'fill="{colour}"/><text x="{legend_x + 13:.0f}" y="18">{label}</text></g>'
        )
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        run: list[str] = []
        runs: list[list[str]] = []
        for t, value in s.points:
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{sx(t):.1f},{sy(value):.1f}")
        if run:
            runs.append(run)
        for r in runs:
            if len(r) == 1:
                cx, cy = r[0].split(",")
                out.append(f'<circle class="dot" cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            else:
                out.append(
                    f'<polyline class="line" data-series="{esc(s.name)}" fill="none" '
                    f'stroke="{colour}" stroke-width="1.8"{dash} points="{" ".join(r)}"/>'
                )
    if not ys:
        out.append(
            f'<text class="empty" x="{left + pw / 2:.0f}" y="{top + ph / 2:.0f}">no samples</text>'
        )
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- plots of a run


def _offered_series(rows: Sequence[StageRow], scenario: str) -> list[Point]:
    pts: list[Point] = []
    for r in rows:
        if r.scenario == scenario and r.unit == "iters/s":
            pts += [(r.start, r.target_from), (r.end, r.target_to)]
    return pts


#: Ticks shorter than this (the final partial tick at shutdown) are left out of the plots:
#: a per-second rate over a few milliseconds is noise.
MIN_PLOT_SPAN = 0.25


@dataclass
class Chart:
    """One plot as data: drawn as SVG here and by uPlot in the browser."""

    key: str
    title: str
    unit: str
    series: list[Series]
    marks: Sequence[StageMark]
    t_max: float

    def svg(self) -> str:
        return line_chart(self.key, self.title, self.unit, self.series, self.marks, self.t_max)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "tMax": self.t_max,
            "marks": [[m.start, m.end, m.label] for m in self.marks],
            "series": [
                {
                    "name": s.name,
                    "dashed": s.dashed,
                    "colour": PALETTE[i % len(PALETTE)],
                    "points": [[t, y] for t, y in s.points],
                }
                for i, s in enumerate(self.series)
            ],
        }


def plots(data: RunData) -> list[str]:
    return [c.svg() for c in charts(data.timeline, data.rows)]


def charts(timeline: Sequence[Mapping[str, Any]], rows: Sequence[StageRow]) -> list[Chart]:
    """The plots of a run (or of a run so far): from its timeline and stage rows."""
    tl = [p for p in timeline if p["span"] >= MIN_PLOT_SPAN]
    t_max = max([p["t"] for p in tl] + [r.end for r in rows] + [1.0])
    marks = [
        StageMark(r.start, r.end, f"S{r.index + 1}")
        for r in rows
        if r.scenario == (rows[0].scenario if rows else None)
    ]
    names = list(dict.fromkeys(n for p in tl for n in p.get("scenarios", {})))

    def per(name: str, fld: str, need_requests: bool = False) -> list[Point]:
        pts: list[Point] = []
        for p in tl:
            s = p.get("scenarios", {}).get(name)
            if s is None or (need_requests and not s["requests"]):
                pts.append((p["t"], None))
            else:
                pts.append((p["t"], s[fld]))
        return pts

    def sampled(key: str, scale: float = 1.0) -> list[Point]:
        return [(p["t"], None if p.get(key) is None else p[key] * scale) for p in tl]

    def line_chart(*args: Any) -> Chart:
        return Chart(*args)

    out = []
    for name in names:
        label = f" — {name}" if len(names) > 1 else ""
        out.append(
            line_chart(
                "latency" if len(names) == 1 else f"latency-{name}",
                f"Latency percentiles{label}",
                "ms",
                [Series(f"p{q}", per(name, f"p{q}_ms", True)) for q in (50, 95, 99)],
                marks,
                t_max,
            )
        )
    rps = [Series(f"{n} req/s", per(n, "rps")) for n in names]
    for n in names:
        offered = _offered_series(rows, n)
        if offered:
            rps.append(Series(f"{n} offered iters/s", offered, dashed=True))
    out.append(line_chart("rps", "Throughput", "requests/s", rps, marks, t_max))

    def rate_of(fld: str) -> list[Point]:
        return [
            (p["t"], sum(s[fld] for s in p.get("scenarios", {}).values()) / (p["span"] or 1))
            for p in tl
        ]

    conn = [
        (p["t"], sum(v or 0 for k, v in p.items() if k.startswith("conn_errors.")) / p["span"])
        for p in tl
    ]
    out.append(
        line_chart(
            "errors",
            "Errors",
            "per second",
            [
                Series("failed", rate_of("failed")),
                Series("dropped", rate_of("dropped")),
                Series("no answer", conn),
            ],
            marks,
            t_max,
        )
    )
    out.append(
        line_chart(
            "active",
            "Active devices",
            "devices",
            [Series("active", [(p["t"], p.get("active", 0)) for p in tl])],
            marks,
            t_max,
        )
    )
    cpu = [
        Series("server", sampled("server.cpu_percent")),
        Series("busiest server process", sampled("server.cpu_hottest")),
        Series("host (prometheus)", sampled("node.cpu_percent")),
        Series("generator", sampled("gen.cpu_percent")),  # with workers: the busiest
        Series("generator, all workers", sampled("gen.cpu_percent_sum")),
    ]
    cpu = [s for s in cpu if any(y is not None for _, y in s.points)]
    out.append(line_chart("cpu", "CPU", "% of one core; host: % of all", cpu, marks, t_max))
    mem = [Series("server RSS", sampled("server.rss_bytes", 1e-6))]
    if any(p.get("node.mem_used_bytes") is not None for p in tl):
        mem.append(Series("host used", sampled("node.mem_used_bytes", 1e-6)))
    out.append(line_chart("memory", "Memory", "MB", mem, marks, t_max))
    return out


# --------------------------------------------------------------------------- interactive charts

VENDOR = Path(__file__).parent / "vendor"

#: Draws (or, on the live dashboard, updates) each chart with uPlot; the SVG of the same key,
#: if any, is hidden once its chart exists, so a failure leaves the SVG in place.
CHART_JS = r"""
const scfleetPlots = {};
function scfleetMarks(u, marks) {
  const ctx = u.ctx, b = u.bbox, r = devicePixelRatio || 1;
  ctx.save(); ctx.beginPath(); ctx.rect(b.left, b.top, b.width, b.height); ctx.clip();
  marks.forEach((m, i) => {
    const x0 = u.valToPos(m[0], 'x', true), x1 = u.valToPos(m[1], 'x', true);
    if (i % 2 === 0) { ctx.fillStyle = '#f3f6fb'; ctx.fillRect(x0, b.top, x1 - x0, b.height); }
    ctx.strokeStyle = '#8a8a8a'; ctx.lineWidth = r; ctx.setLineDash([3 * r, 3 * r]);
    ctx.beginPath(); ctx.moveTo(x0, b.top); ctx.lineTo(x0, b.top + b.height); ctx.stroke();
    ctx.fillStyle = '#666'; ctx.font = (10 * r) + 'px sans-serif';
    ctx.fillText(m[2], x0 + 3 * r, b.top + 11 * r);
  });
  ctx.restore();
}
function scfleetCharts(specs, container) {
  for (const c of specs) {
    const xs = [...new Set(c.series.flatMap(s => s.points.map(p => p[0])))].sort((a, b) => a - b);
    const data = [xs];
    for (const s of c.series) {
      const m = new Map(s.points.map(p => [p[0], p[1]]));
      data.push(xs.map(x => (m.has(x) ? m.get(x) : undefined)));  // undefined: spanned
    }
    let plot = scfleetPlots[c.key];
    if (plot && plot.names === c.series.map(s => s.name).join('|')) {
      plot.marks = c.marks; plot.u.setData(data, !plot.zoomed); continue;
    }
    try {
      const svg = document.querySelector('svg.plot[data-plot="' + c.key + '"]');
      const host = document.createElement('div');
      host.className = 'uplot-host'; host.dataset.plot = c.key;
      if (plot) { plot.u.destroy(); plot.host.replaceWith(host); }
      else if (svg) svg.before(host);
      else (container || document.body).appendChild(host);
      plot = {marks: c.marks, zoomed: false, host: host, names: c.series.map(s => s.name).join('|')};
      const fmt = v => (v == null ? '–' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
      const opts = {
        title: c.title + ' (' + c.unit + ')', width: 920, height: 250,
        scales: {x: {time: false}, y: {range: (u, lo, hi) => [0, hi > 0 ? hi * 1.05 : 1]}},
        cursor: {drag: {x: true, y: false}},
        axes: [{values: (u, vals) => vals.map(v => v + 's')}, {size: 56}],
        series: [{label: 't', value: (u, v) => (v == null ? '–' : v.toFixed(1) + ' s')}].concat(
          c.series.map(s => ({label: s.name, stroke: s.colour, width: 1.8,
            dash: s.dashed ? [6, 4] : undefined, value: (u, v) => fmt(v)}))),
        hooks: {
          drawClear: [u => scfleetMarks(u, plot.marks)],
          setSelect: [u => { if (u.select.width > 0) plot.zoomed = true; }],
        },
      };
      host.addEventListener('dblclick', () => { plot.zoomed = false; });
      plot.u = new uPlot(opts, data, host);
      scfleetPlots[c.key] = plot;
      if (svg) svg.style.display = 'none';
    } catch (e) {
      console.error('scfleet chart ' + c.key, e);
    }
  }
}
"""


@cache
def uplot_assets() -> tuple[str, str]:
    """uPlot's minified script and stylesheet (vendored; see vendor/README.md)."""
    return (VENDOR / "uPlot.iife.min.js").read_text(), (VENDOR / "uPlot.min.css").read_text()


def _finite(v: Any) -> Any:
    return v if not isinstance(v, float) or math.isfinite(v) else None


def charts_json(chart_list: Sequence[Chart]) -> str:
    """The charts as JSON safe inside a <script> element."""
    docs = [c.to_json() for c in chart_list]
    for d in docs:
        for s in d["series"]:
            s["points"] = [[t, _finite(y)] for t, y in s["points"]]
    return json.dumps(docs, allow_nan=False).replace("</", "<\\/")


def chart_scripts() -> str:
    """uPlot and the chart script, inline: the page needs nothing from the network."""
    js, css = uplot_assets()
    return f"<style>{css}</style><script>{js}</script><script>{CHART_JS}</script>"


# --------------------------------------------------------------------------- the page

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:980px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#555} table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f4f5f7} td.l,th.l{text-align:left}
.ok{color:#2e7d32;font-weight:600} .bad{color:#c62828;font-weight:600} .na{color:#888}
.verdict{border-left:6px solid;padding:8px 12px;margin:8px 0;background:#fafafa}
.verdict b{text-transform:uppercase} .cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px;min-width:120px}
.card .v{font-size:20px;font-weight:600} .card .k{color:#666;font-size:12px}
svg.plot{display:block;margin:10px 0;max-width:100%;height:auto}
svg .title{font-size:13px;font-weight:600;fill:#1d2330} svg .unit{font-weight:400;fill:#666}
svg .grid{stroke:#e6e6e6} svg .frame{fill:none;stroke:#999}
svg .band{fill:#f3f6fb} svg .stage{stroke:#8a8a8a;stroke-dasharray:3 3}
svg .stage-label{font-size:10px;fill:#666} svg text{font-size:11px;fill:#333}
svg .ytick{text-anchor:end} svg .xtick{text-anchor:middle} svg .empty{text-anchor:middle;fill:#999}
.warn{background:#fff4e5;border:1px solid #f0c36d;padding:6px 10px}
.uplot-host{margin:14px 0} .uplot .u-title{font-size:13px;font-weight:600}
"""


def _cards(summary: Mapping[str, Any]) -> str:
    from simulator.report.summary import figures

    reqs = figures(summary, "http_reqs")
    dur = figures(summary, "http_req_duration")
    failed = figures(summary, "http_req_failed")
    items = [
        ("requests", f"{int(reqs.get('count', 0))}"),
        ("req/s", f"{reqs.get('rate', 0):.1f}"),
        ("error rate", f"{failed.get('value', 0) * 100:.2f}%"),
    ]
    for stat in ("med", "p(95)", "p(99)", "max"):
        if stat in dur:
            items.append((f"latency {stat}", f"{dur[stat]:.1f} ms"))
    return cards(items)


def cards(items: Sequence[tuple[str, str]]) -> str:
    """The figure cards atop report.html and the live dashboard: (label, value) each."""
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
            for k, v in items
        )
        + "</div>"
    )


def _thresholds(summary: Mapping[str, Any]) -> str:
    rows = summary["scfleet"].get("thresholds", [])
    if summary["scfleet"].get("options", {}).get("noThresholds"):
        return (
            "<p class='na'>Thresholds were off (--no-thresholds): none was judged. The stage "
            "table judges each stage by its defaults (http_req_failed rate&lt;0.01, "
            "http_req_duration p(95)&lt;2000).</p>"
        )
    if not rows:
        return "<p class='na'>No thresholds were set.</p>"
    body = []
    for t in rows:
        obs = "no samples" if t.get("observed") is None else f"{t['observed']:.4g}"
        mark = '<td class="ok">✓ pass</td>' if t["ok"] else '<td class="bad">✗ fail</td>'
        body.append(
            f"<tr>{mark}<td class='l'>{esc(t['metric'])}</td><td class='l'>"
            f"{esc(t['expression'])}</td><td>{esc(obs)}</td><td class='l'>{esc(t.get('note') or '')}"
            "</td></tr>"
        )
    return (
        '<table id="thresholds"><tr><th></th><th class="l">metric</th><th class="l">expression'
        '</th><th>observed</th><th class="l">note</th></tr>' + "".join(body) + "</table>"
    )


def _custom_metrics(summary: Mapping[str, Any]) -> str:
    """Python devices' own metrics (counter, rate, gauge, trend), as k6's summary lists them."""
    from simulator.report.summary import custom_metrics

    rows = custom_metrics(summary)
    if not rows:
        return ""
    body = "".join(
        f"<tr><td class='l'>{esc(n)}</td><td class='l'>{esc(t)}</td><td class='l'>{esc(f)}</td>"
        "</tr>"
        for n, t, f in rows
    )
    return (
        '<h2>Custom metrics</h2><table id="custom-metrics"><tr><th class="l">metric</th>'
        '<th class="l">type</th><th class="l">figures</th></tr>' + body + "</table>"
    )


def _failures(summary: Mapping[str, Any]) -> str:
    """Failed requests by reason (``error``, k6's ``error_code``) and status."""
    rows = summary.get("scfleet", {}).get("failures") or []
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{int(f['count'])}</td><td>{int(f['status'])}</td>"
        f"<td class='l'>{esc(f['error'] or '—')}</td><td>{int(f['error_code']) or '—'}</td></tr>"
        for f in rows
    )
    return (
        '<h2>Failures</h2><table id="failures"><tr><th>requests</th><th>status</th>'
        '<th class="l">error</th><th>error_code</th></tr>' + body + "</table>"
    )


def _stage_table(rows: Sequence[StageRow], a: Assessment) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in HEADERS)
    body = []
    for r in rows:
        cells = table_cells(r)
        cls = {True: "ok", False: "bad", None: "na"}[r.thresholds_ok]
        tds = [f'<td class="{cls}">{esc(cells[0])}</td>'] + [
            f"<td>{esc(c)}</td>" for c in cells[1:]
        ]
        knee = ' class="knee"' if a.knee == r.index else ""
        title = "; ".join(r.failed_thresholds)
        body.append(f'<tr{knee} title="{esc(title)}">{"".join(tds)}</tr>')
    return (
        f'<table class="stages" data-scenario="{esc(a.scenario)}"><tr>{head}</tr>'
        + "".join(body)
        + "</table>"
    )


def _verdict(a: Assessment) -> str:
    colour = VERDICT_COLOURS.get(a.verdict, "#555")
    text = a.generator_warning_text
    warn = f'<p class="warn">{esc(text[:1].upper() + text[1:])}.</p>' if text else ""
    return (
        f'<div class="verdict" data-verdict="{esc(a.verdict)}" style="border-color:{colour}">'
        f"<div><b style='color:{colour}'>{esc(a.verdict)}</b> — {esc(a.reason)}</div>"
        f"<div>Knee (highest stage meeting every threshold): <b>{esc(a.knee_label)}</b></div>"
        f"<div>Bottleneck: {esc(a.hint)}</div></div>{warn}"
    )


def render(data: RunData) -> str:
    s = data.summary
    state = s["scfleet"].get("state", {})
    opts = s["scfleet"].get("options", {})
    status = "interrupted" if state.get("interrupted") else "complete"
    if state.get("abortedBy"):
        status = f"aborted by threshold {state['abortedBy']}"
    ok = state.get("thresholdsOk", True)
    verdict, mark = ("thresholds passed", "ok") if ok else ("thresholds failed", "bad")
    if opts.get("noThresholds"):
        verdict, mark = "thresholds off", "na"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>scfleet report — {esc(opts.get('source', ''))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>scfleet load test report <span class='{mark}'>{verdict}</span></h1>",
        f"<p class='meta'>{esc(opts.get('source', ''))} → {esc(opts.get('target', ''))}<br>"
        f"started {esc(rfc3339(state.get('startedAt', 0))[:19])}Z · "
        f"{state.get('testRunDurationMs', 0) / 1000:.1f} s · {esc(status)}"
        + "".join(f"<br>{esc(line.strip())}" for line in warm_lines(opts))
        + "</p>",
        "<h2>Summary</h2>",
        _cards(s),
        "<h2>Verdict</h2>",
    ]
    for a in data.assessments:
        if len(data.assessments) > 1:
            parts.append(f"<h3>{esc(a.scenario)}</h3>")
        parts.append(_verdict(a))
    parts += ["<h2>Thresholds</h2>", _thresholds(s), _custom_metrics(s), _failures(s)]
    parts.append("<h2>Stages</h2>")
    for a in data.assessments:
        mine = [r for r in data.rows if r.scenario == a.scenario]
        parts.append(f"<p class='meta'>{esc(a.scenario)}: offered in {esc(mine[0].unit)}</p>")
        parts.append(_stage_table(mine, a))
    drawn = charts(data.timeline, data.rows)
    parts += ["<h2>Over time</h2>", *(c.svg() for c in drawn)]
    parts += [
        chart_scripts(),
        f'<script type="application/json" id="scfleet-charts">{charts_json(drawn)}</script>',
        "<script>scfleetCharts(JSON.parse("
        "document.getElementById('scfleet-charts').textContent))</script>",
    ]
    notes = s["scfleet"].get("notes") or []
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)
