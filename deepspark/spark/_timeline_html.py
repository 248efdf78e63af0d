"""The self-contained HTML training report: Gantt timeline, phase histograms, totals and advice as inline SVG."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

import numpy as np

from deepspark.spark.events import DRIVER_PHASES, PHASE_FIT, WORKER_PHASES, PhaseEvent
from deepspark.spark.stats import TrainingStats

if TYPE_CHECKING:
    from deepspark.spark.advice import Finding

# Most bars the timeline draws; past it, consecutive same-phase events and then whole rounds are merged.
MAX_BARS = 4000
LABEL_W, PLOT_W, RIGHT_W = 150, 1150, 20
AXIS_H, LANE_H, BAR_PAD = 36, 38, 7
HIST_BINS = 24

_COLORS = {
    "count": "#8c6d31",
    "broadcast": "#1f77b4",
    "repartition": "#9467bd",
    "split": "#b59ad6",
    "map": "#cfd5de",
    "aggregate": "#ff7f0e",
    "process_params": "#d62728",
    "broadcast_get": "#17becf",
    "model_init": "#bcbd22",
    "data_fetch": "#e377c2",
    "fit": "#2ca02c",
    "encode": "#8c564b",
    "exchange": "#7f7f7f",
    "decode": "#c49c94",
    "compute": "#98df8a",
}
_EXTRA_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1360px;margin:0 auto;padding:18px 20px 40px}
h1{font-size:21px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px}
.sub{color:#5a6475;margin-bottom:12px}
.chips{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0}
.chip{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:6px 12px}
.chip b{display:block;font-size:17px}.chip span{color:#5a6475;font-size:12px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 14px}
.finding{background:#fff;border:1px solid #dde1e7;border-left:5px solid #3b82f6;border-radius:6px;
 padding:8px 12px;margin:6px 0}
.finding.warning{border-left-color:#e8a317}.finding .t{font-weight:600}
.finding .s{color:#5a6475;font-size:13px}code{background:#eef1f5;border-radius:3px;padding:0 4px}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:4px 0 8px;font-size:13px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:5px}
.note{color:#5a6475;font-size:13px;margin:6px 0 0}
.scroll{overflow-x:auto}svg text{font:11px system-ui,sans-serif;fill:#3b4455}
svg rect.b:hover{stroke:#111;stroke-width:1.5}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{padding:5px 10px;border-bottom:1px solid #e6e9ee;text-align:right;white-space:nowrap}
th{background:#eef1f5;font-weight:600}th:first-child,td:first-child,td.l,th.l{text-align:left}
.bar{display:inline-block;height:9px;background:#9aa7b8;border-radius:2px;vertical-align:0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(310px,1fr));gap:12px}
.hist{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:8px 10px}
.hist .c{font-size:12px;color:#5a6475}pre{white-space:pre-wrap;font-size:12px}
"""


@dataclass(frozen=True, slots=True)
class _Bar:
    lane: int
    phase: str
    start: float
    end: float
    round: int
    attempt: int
    tip: str


def _colors(phases: Iterable[str]) -> dict[str, str]:
    """A color per phase: fixed for the known ones, a cycling palette for the rest."""
    out: dict[str, str] = {}
    extra = 0
    for phase in phases:
        if phase not in out:
            out[phase] = _COLORS.get(phase) or _EXTRA_COLORS[extra % len(_EXTRA_COLORS)]
            extra += phase not in _COLORS
    return out


def _fmt_s(seconds: float) -> str:
    """Seconds as a short human string: ``0.42 ms``, ``12.3 ms``, ``1.25 s``, ``3 m 20 s``."""
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{int(seconds // 60)} m {seconds % 60:.0f} s"


def _who(lane: int) -> str:
    return "driver" if lane < 0 else f"worker {lane}"


def _event_bar(e: PhaseEvent, t0: float) -> _Bar:
    extras = "".join(f"\n{k}: {v}" for k, v in e.detail.items())
    tip = (
        f"{e.phase} · {_who(e.worker)} · round {e.round}"
        + (f" · attempt {e.attempt}" if e.attempt else "")
        + f"\n{_fmt_s(e.duration)} at +{e.start - t0:.3f} s\n{e.host} · pid {e.pid}{extras}"
    )
    return _Bar(e.worker, e.phase, e.start, e.end, e.round, e.attempt, tip)


def _merged_bar(run: Sequence[PhaseEvent]) -> _Bar:
    first, busy = run[0], sum(e.duration for e in run)
    end = max(e.end for e in run)
    tip = (
        f"{first.phase} x {len(run)} events (merged) · {_who(first.worker)} · round {first.round}"
        + (f" · attempt {first.attempt}" if first.attempt else "")
        + f"\nbusy {_fmt_s(busy)} of {_fmt_s(end - first.start)}, mean {_fmt_s(busy / len(run))}"
    )
    return _Bar(first.worker, first.phase, first.start, end, first.round, first.attempt, tip)


def _proportional_bars(group: Sequence[PhaseEvent], label: str) -> list[_Bar]:
    """One bar per phase laid end to end over the group's extent, each as wide as that phase's share of time."""
    start, end = group[0].start, max(e.end for e in group)
    totals: dict[str, float] = {}
    for e in group:
        totals[e.phase] = totals.get(e.phase, 0.0) + e.duration
    scale = min(1.0, (end - start) / sum(totals.values())) if sum(totals.values()) > 0 else 0.0
    bars, t = [], start
    for phase, total in totals.items():
        tip = f"{phase} · {_who(group[0].worker)} · {label} (aggregated)\n{_fmt_s(total)} in all"
        bars.append(_Bar(group[0].worker, phase, t, t + total * scale, group[0].round, group[0].attempt, tip))
        t += total * scale
    return bars


def _lane_events(stats: TrainingStats) -> dict[int, list[PhaseEvent]]:
    lanes: dict[int, list[PhaseEvent]] = {}
    for e in stats.events():
        lanes.setdefault(e.worker if e.side == "worker" else -1, []).append(e)
    for events in lanes.values():
        events.sort(key=lambda e: (e.start, e.end))
    return dict(sorted(lanes.items()))


def _bars(stats: TrainingStats, t0: float) -> tuple[list[_Bar], str]:
    """The bars to draw and a sentence saying how events were merged to stay under ``MAX_BARS``."""
    lanes = _lane_events(stats)
    if len(stats) <= MAX_BARS:
        return [_event_bar(e, t0) for events in lanes.values() for e in events], ""
    merged: list[_Bar] = []
    for events in lanes.values():
        run: list[PhaseEvent] = []
        for e in [*events, None]:
            if run and (e is None or (e.phase, e.round, e.attempt) != (run[0].phase, run[0].round, run[0].attempt)):
                merged.append(_merged_bar(run) if len(run) > 1 else _event_bar(run[0], t0))
                run = []
            if e is not None:
                run.append(e)
    if len(merged) <= MAX_BARS:
        return merged, (
            f"{len(stats):,} events are too many to draw one by one: consecutive events of the same phase "
            f"(mostly {PHASE_FIT} minibatches) of a worker's round are drawn as one bar ({len(merged):,} bars)."
        )
    groups: dict[tuple[int, int, int], list[PhaseEvent]] = {}
    worker_rounds = {(e.worker, e.round) for e in stats.events(side="worker")}
    per_bar = max(1, math.ceil(len(worker_rounds) * 4 / MAX_BARS))
    bars = [_event_bar(e, t0) for e in lanes.get(-1, [])]
    for lane, events in lanes.items():
        for e in events if lane >= 0 else []:
            groups.setdefault((lane, e.round // per_bar, e.attempt), []).append(e)
    for (_, chunk, _), group in groups.items():
        label = f"round {chunk}" if per_bar == 1 else f"rounds {chunk * per_bar}-{chunk * per_bar + per_bar - 1}"
        bars += _proportional_bars(group, label)
    return bars, (
        f"{len(stats):,} events are too many to draw one by one: each worker's "
        f"{'round' if per_bar == 1 else f'{per_bar} rounds'} is drawn as one bar per phase, laid end to end, "
        "each as wide as the time spent in that phase (hover for totals)."
    )


def _nice_step(span: float, ticks: int = 10) -> float:
    raw = span / ticks if span > 0 else 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1.0, 2.0, 5.0, 10.0) if m * mag >= raw)


def _gantt(stats: TrainingStats, bars: list[_Bar], colors: dict[str, str]) -> str:
    t0, t1 = stats.time_span()
    span = max(t1 - t0, 1e-9)
    lanes = sorted({b.lane for b in bars})
    row = {lane: i for i, lane in enumerate(lanes)}
    height = AXIS_H + LANE_H * len(lanes) + 8
    width = LABEL_W + PLOT_W + RIGHT_W

    def x(t: float) -> float:
        return LABEL_W + (t - t0) / span * PLOT_W

    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    extents: dict[int, list[float]] = {}
    for e in stats.events():
        ext = extents.setdefault(e.round, [e.start, e.end])
        ext[0], ext[1] = min(ext[0], e.start), max(ext[1], e.end)
    for r, (start, end) in sorted(extents.items()):
        w = x(end) - x(start)
        fill = "#e9edf3" if r % 2 == 0 else "#f7f8fa"
        out.append(
            f'<rect x="{x(start):.1f}" y="{AXIS_H - 14}" width="{w:.1f}" height="{height - AXIS_H + 6}" fill="{fill}"/>'
        )
        label = f"round {r}" if w > 48 else (str(r) if w > 14 else "")
        if label:
            out.append(f'<text x="{x(start) + w / 2:.1f}" y="{AXIS_H - 4}" text-anchor="middle">{label}</text>')
    step = _nice_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        tx = x(t0 + tick)
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{AXIS_H - 18}" y2="{height - 4}" '
            'stroke="#c9d0da" stroke-width="0.6"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="11" text-anchor="middle">{tick:.{max(0, -math.floor(math.log10(step)))}f} s</text>'
        )
        tick += step
    for lane, i in row.items():
        y = AXIS_H + i * LANE_H
        out.append(f'<line x1="0" x2="{width}" y1="{y}" y2="{y}" stroke="#dde1e7"/>')
        hosts = sorted({e.host for e in stats.events(side="driver" if lane < 0 else "worker", worker=lane)})
        out.append(f'<text x="6" y="{y + 13}" style="font-weight:600">{_who(lane)}</text>')
        host = escape(hosts[0] if len(hosts) == 1 else f"{len(hosts)} hosts")
        out.append(f'<text x="6" y="{y + 25}" style="font-size:10px;fill:#6b7586">{host}</text>')
    retries: dict[tuple[int, int, int], float] = {}
    for b in sorted(bars, key=lambda b: b.start - b.end):
        y = AXIS_H + row[b.lane] * LANE_H + BAR_PAD
        stroke = ' stroke="#c0262d" stroke-width="1.6" stroke-dasharray="3 2"' if b.attempt else ""
        out.append(
            f'<rect class="b" x="{x(b.start):.1f}" y="{y}" width="{max(x(b.end) - x(b.start), 0.8):.1f}" '
            f'height="{LANE_H - 2 * BAR_PAD}" fill="{colors[b.phase]}"{stroke}><title>{escape(b.tip)}</title></rect>'
        )
        if b.attempt:
            key = (b.lane, b.round, b.attempt)
            retries[key] = min(retries.get(key, b.start), b.start)
    for (lane, _, attempt), start in retries.items():
        ty = AXIS_H + row[lane] * LANE_H + LANE_H / 2 + 4
        out.append(
            f'<text x="{x(start) - 3:.1f}" y="{ty:.1f}" text-anchor="end" style="fill:#c0262d;font-weight:600">'
            f"&#8635; retry {attempt}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _histogram(values: np.ndarray, color: str) -> str:
    lo, hi = float(values.min()), float(values.max())
    log = lo > 0 and hi / lo > 50
    edges = np.geomspace(lo, hi, HIST_BINS + 1) if log else np.linspace(lo, hi if hi > lo else lo + 1e-9, HIST_BINS + 1)
    counts, _ = np.histogram(values, bins=edges)
    w, h, left, bottom = 300, 110, 34, 18
    top = int(counts.max()) or 1
    bw = (w - left) / HIST_BINS
    out = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    for i, c in enumerate(counts.tolist()):
        bh = (h - bottom - 6) * c / top
        tip = f"{_fmt_s(float(edges[i]))} to {_fmt_s(float(edges[i + 1]))}: {c}"
        out.append(
            f'<rect x="{left + i * bw + 0.5:.1f}" y="{h - bottom - bh:.1f}" width="{bw - 1:.1f}" height="{bh:.1f}" '
            f'fill="{color}"><title>{escape(tip)}</title></rect>'
        )
    out.append(f'<line x1="{left}" x2="{w}" y1="{h - bottom}" y2="{h - bottom}" stroke="#9aa7b8"/>')
    out.append(f'<text x="{left - 4}" y="12" text-anchor="end">{top}</text>')
    out.append(f'<text x="{left - 4}" y="{h - bottom}" text-anchor="end">0</text>')
    out.append(f'<text x="{left}" y="{h - 4}">{_fmt_s(lo)}</text>')
    out.append(f'<text x="{w - 2}" y="{h - 4}" text-anchor="end">{_fmt_s(hi)}{" (log)" if log else ""}</text>')
    out.append("</svg>")
    return "".join(out)


def _histograms(stats: TrainingStats, colors: dict[str, str]) -> str:
    cells = []
    for phase, total in stats.phase_totals().items():
        values = np.fromiter((e.duration for e in stats.events(phase)), dtype=np.float64)
        p50, p95 = np.percentile(values, [50, 95]).tolist()
        caption = f"{total.count:,} events · median {_fmt_s(p50)} · p95 {_fmt_s(p95)} · max {_fmt_s(total.max)}"
        cells.append(
            f'<div class="hist"><div><span class="sw" style="background:{colors[phase]}"></span><b>{escape(phase)}'
            f'</b> <span class="c">{total.side}</span></div><div class="c">{caption}</div>'
            f"{_histogram(values, colors[phase])}</div>"
        )
    return f'<div class="grid">{"".join(cells)}</div>'


def _totals_table(stats: TrainingStats, colors: dict[str, str]) -> str:
    rows = []
    for t in stats.phase_totals().values():
        bar = f'<span class="bar" style="width:{min(t.share, 1.0) * 120:.0f}px;background:{colors[t.phase]}"></span>'
        rows.append(
            f'<tr><td><span class="sw" style="background:{colors[t.phase]}"></span>{escape(t.phase)}</td>'
            f'<td class="l">{t.side}</td><td>{t.count:,}</td><td>{t.total:.3f}</td><td>{_fmt_s(t.mean)}</td>'
            f'<td>{_fmt_s(t.min)}</td><td>{_fmt_s(t.max)}</td><td class="l">{bar} {t.share:.1%}</td></tr>'
        )
    head = (
        "<tr><th>phase</th><th class='l'>side</th><th>count</th><th>total s</th><th>mean</th><th>min</th><th>max</th>"
    )
    return f'<table>{head}<th class="l">share of time</th></tr>{"".join(rows)}</table>'


def _stacked(stats: TrainingStats, worker: int, colors: dict[str, str]) -> str:
    """A bar of the worker's wall time split into its phases, the rest idle."""
    wall = stats.wall_time
    totals: dict[str, float] = {}
    for e in stats.events(side="worker", worker=worker):
        totals[e.phase] = totals.get(e.phase, 0.0) + e.duration
    width, x, out = 260.0, 0.0, []
    scale = width / max(wall, sum(totals.values()), 1e-9)
    for phase, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        out.append(
            f'<rect x="{x:.1f}" width="{seconds * scale:.1f}" height="12" fill="{colors[phase]}">'
            f"<title>{escape(phase)}: {_fmt_s(seconds)} ({seconds / wall if wall else 0.0:.0%})</title></rect>"
        )
        x += seconds * scale
    idle = max(0.0, wall - sum(totals.values()))
    out.append(
        f'<rect x="{x:.1f}" width="{width - x:.1f}" height="12" fill="#e6e9ee">'
        f"<title>idle: {_fmt_s(idle)}</title></rect>"
    )
    return f'<svg width="{width:.0f}" height="12">{"".join(out)}</svg>'


def _workers_table(stats: TrainingStats, colors: dict[str, str]) -> str:
    work = stats.work_phase
    fit, busy = stats.worker_totals(work), stats.worker_totals()
    examples = stats.worker_detail_totals("examples", work)
    slowest = max(fit, key=lambda w: fit[w], default=None)
    retried: dict[int, int] = {}
    for task in stats.retried_tasks():
        retried[task.worker] = retried.get(task.worker, 0) + 1
    rows = []
    for w in stats.workers():
        hosts = sorted({e.host for e in stats.events(side="worker", worker=w)})
        bold = ' style="font-weight:600;color:#b42318"' if w == slowest and len(fit) > 1 else ""
        rows.append(
            f'<tr><td>worker {w}</td><td class="l">{escape(", ".join(hosts))}</td><td{bold}>{fit[w]:.3f}</td>'
            f"<td>{len(stats.events(work, 'worker', worker=w)):,}</td><td>{examples[w]:,.0f}</td>"
            f"<td>{busy[w]:.3f}</td><td>{retried.get(w, 0)}</td><td class='l'>{_stacked(stats, w, colors)}</td></tr>"
        )
    head = (
        f"<tr><th>worker</th><th class='l'>host</th><th>{work} s</th><th>minibatches</th><th>examples</th>"
        "<th>busy s</th><th>retried tasks</th><th class='l'>wall time by phase (grey: idle)</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _findings(findings: Sequence[Finding]) -> str:
    items = []
    for f in findings:
        icon = "&#9888;" if f.severity == "warning" else "&#8505;"
        setting = f'<div class="s">change: <code>{escape(f.setting)}</code></div>' if f.setting else ""
        items.append(
            f'<div class="finding {f.severity}"><div class="t">{icon} {escape(f.title)}</div>'
            f"<div>{escape(f.detail)}</div>{setting}</div>"
        )
    return "".join(items)


def render_html(stats: TrainingStats, findings: Sequence[Finding], *, title: str) -> str:
    """The whole report page as one HTML string with inline CSS and SVG, nothing fetched from anywhere."""
    t0, _ = stats.time_span()
    totals = stats.phase_totals()
    order = [p for p in DRIVER_PHASES + WORKER_PHASES if p in totals] + [
        p for p in totals if p not in DRIVER_PHASES + WORKER_PHASES
    ]
    colors = _colors(order)
    bars, note = _bars(stats, t0)
    fit = totals.get(stats.work_phase)
    retried = len(stats.retried_tasks())
    chips = [
        (
            f"{len(stats.workers())}"
            + (f" of {stats.num_workers}" if len(stats.workers()) != stats.num_workers else ""),
            "workers",
        ),
        (f"{len(stats.rounds())}", "rounds"),
        (_fmt_s(stats.wall_time), "wall time"),
        (f"{fit.share:.0%}" if fit else "&ndash;", f"of worker time in {stats.work_phase}"),
        (f"{len(stats):,}", "events"),
        (str(retried), "retried tasks"),
    ]
    legend = "".join(f'<span><span class="sw" style="background:{colors[p]}"></span>{escape(p)}</span>' for p in order)
    legend += '<span><span class="sw" style="border:1.6px dashed #c0262d"></span>retried attempt</span>'
    settings = escape(json.dumps(stats.settings, indent=2, sort_keys=True, default=str))
    body = [
        f"<h1>{escape(title)}</h1>",
        '<div class="sub">Where the time of a distributed training run went: driver and workers, round by round.</div>',
        '<div class="chips">'
        + "".join(f'<div class="chip"><b>{v}</b><span>{k}</span></div>' for v, k in chips)
        + "</div>",
        f'<h2>Timeline</h2><div class="legend">{legend}</div>',
        f'<div class="card scroll">{_gantt(stats, bars, colors)}</div>',
        '<p class="note">Hover a bar for its phase, round, duration and host. Shaded bands are rounds. '
        f"{escape(note)}</p>"
        if bars
        else '<p class="note">No events recorded.</p>',
        f"<h2>Advice</h2>{_findings(findings)}",
        f"<h2>Where time goes</h2>{_totals_table(stats, colors)}",
        '<p class="note">Share: driver phases of wall time; worker phases of wall time &times; workers.</p>',
        f"<h2>Per worker</h2>{_workers_table(stats, colors)}",
        f"<h2>Phase durations</h2>{_histograms(stats, colors)}",
        f"<details><summary>Text summary</summary><pre class='card'>{escape(stats.summary())}</pre></details>",
        f"<details><summary>Training settings</summary><pre class='card'>{settings}</pre></details>",
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>{''.join(body)}</main></body></html>"
    )


__all__ = ["MAX_BARS", "render_html"]
