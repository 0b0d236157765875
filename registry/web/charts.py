"""Line charts as inline SVG, rendered on the server (no JavaScript, no build step)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

from registry.web.prometheus import ChartData

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 28
# Colour-blind-safe palette (Okabe-Ito); the legend names each series as well.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    return f"{value:.3g}"


def render_chart(chart: ChartData) -> Markup:
    """Return an accessible ``<svg>`` of the chart's series, with axes, threshold and legend."""
    points = [p for s in chart.series for p in s.points]
    if not points:
        return Markup("")
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    top = max(v for _, v in points)
    if chart.threshold is not None:
        top = max(top, chart.threshold * 1.2)
    top = top if top > 0 else 1.0
    span_t = (t1 - t0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / span_t * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - max(0.0, min(v, top)) / top * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for i in range(5):
        value = top * i / 4
        yy = y(value)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" class="tick">'
                     f"{escape(_fmt(value, chart.unit))}</text>")
    for t, anchor in ((t0, "start"), (t1, "end")):
        stamp = datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S UTC")
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" '
                     f'class="tick">{stamp}</text>')
    if chart.threshold is not None:
        yy = y(chart.threshold)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" '
                     'class="threshold"><title>alarm threshold</title></line>')
    for index, series in enumerate(chart.series):
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in series.points)
        last = series.points[-1][1]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}">'
                     f"<title>{escape(series.label)}: last {escape(_fmt(last, chart.unit))}"
                     "</title></polyline>")
    parts.append("</svg>")
    legend = ['<ul class="legend">']
    for index, series in enumerate(chart.series):
        last = series.points[-1][1]
        legend.append(f'<li><span class="swatch s{index % len(PALETTE)}"></span>'
                      f"{escape(series.label)} — last {escape(_fmt(last, chart.unit))}</li>")
    legend.append("</ul>")
    return Markup("".join(parts) + "".join(legend))  # noqa: S704 — every value above is escaped


__all__ = ["render_chart"]
