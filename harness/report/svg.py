"""Hand-written SVG charts for the HTML report: no plotting library, no script.

Each chart function takes plain values (labels, numbers, colours) and returns
one ``<svg>`` element as text. Hover text is an SVG ``<title>``. Text widths
are estimated (no font metrics): about 0.6 em per character.

Every chart is responsive: a ``viewBox`` in its design size, ``width="100%"``
and a CSS ``max-width`` of that size, so it fills a narrow column (scaled down)
and never grows past the size its text was set for. Every chart that colours
by category draws its own legend (``<g class="legend">``): a colour means what
that chart's legend says, nothing more.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D1F", "#555555")
FAILED = "#C62828"
INK = "#1F2328"
MUTED = "#57606A"
GRID = "#D8DEE4"
FONT = 12
FREE = "#EEF1F4"  # the unused part of a capacity bar (the headroom)
FREE_EDGE = "#AFB8C1"


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def text_width(text: str, size: float = FONT) -> float:
    """A generous estimate of rendered width in a sans-serif font (capitals are wide)."""
    em = 0.0
    for ch in text:
        if ch.isupper() or ch in "MW%@#_":
            em += 0.72
        elif ch in "il.,:;'|!/ ()[]":
            em += 0.34
        else:
            em += 0.58
    return em * size


def fmt(v: float) -> str:
    """A compact tick label: 12, 1.5, 250k, 84M."""
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 x 10^k) up to at least ``top``."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def ticks_between(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round ticks covering [lo, hi] (for axes that do not start at 0)."""
    if hi <= lo:
        pad = abs(lo) * 0.01 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out = []
    v = start
    while v < hi + step * 0.999:
        out.append(v)
        v += step
    return out


class Canvas:
    """Collects SVG elements; ``str(canvas)`` is the finished ``<svg>``."""

    def __init__(self, width: float, height: float, title: str) -> None:
        self.width = width
        self.height = height
        self.title = title
        self.parts: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, fill: str, tip: str = "", stroke: str = "") -> None:
        extra = f' stroke="{stroke}"' if stroke else ""
        body = f"<title>{esc(tip)}</title>" if tip else ""
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" '
                          f'fill="{fill}"{extra}>{body}</rect>')

    def text(self, x: float, y: float, s: str, size: float = FONT, anchor: str = "start", fill: str = INK,
             weight: str = "", italic: bool = False) -> None:
        extra = f' font-weight="{weight}"' if weight else ""
        extra += ' font-style="italic"' if italic else ""
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                          f'fill="{fill}"{extra}>{esc(s)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = GRID, width: float = 1,
             dash: str = "") -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
                          f'stroke-width="{width}"{extra}/>')

    def polyline(self, points: Sequence[tuple[float, float]], stroke: str, width: float = 2) -> None:
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width}"/>')

    def circle(self, cx: float, cy: float, r: float, fill: str, tip: str = "") -> None:
        body = f"<title>{esc(tip)}</title>" if tip else ""
        self.parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r}" fill="{fill}" stroke="white" '
                          f'stroke-width="1">{body}</circle>')

    def cross(self, cx: float, cy: float, r: float, stroke: str, tip: str = "") -> None:
        body = f"<title>{esc(tip)}</title>" if tip else ""
        self.parts.append(f'<g stroke="{stroke}" stroke-width="2">{body}'
                          f'<line x1="{cx - r:.1f}" y1="{cy - r:.1f}" x2="{cx + r:.1f}" y2="{cy + r:.1f}"/>'
                          f'<line x1="{cx - r:.1f}" y1="{cy + r:.1f}" x2="{cx + r:.1f}" y2="{cy - r:.1f}"/></g>')

    def legend(self, items: Sequence[tuple[str, str]], y: float, size: float = 11) -> float:
        """Swatch + name for each (name, colour), wrapped to the canvas width, from ``y``
        (the top of the first line); returns the y below the legend."""
        if not items:
            return y
        parts = ['<g class="legend">']
        x, line_h = 0.0, size + 7
        for name, color in items:
            w = 16 + text_width(name, size) + 14
            if x > 0 and x + w > self.width:
                x, y = 0.0, y + line_h
            edge = f' stroke="{FREE_EDGE}"' if color == FREE else ""
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" rx="2" fill="{color}"{edge}/>'
                         f'<text x="{x + 16:.1f}" y="{y + 10:.1f}" font-size="{size}" fill="{INK}">{esc(name)}'
                         "</text>")
            x += w
        self.parts.append("".join(parts) + "</g>")
        return y + line_h

    def __str__(self) -> str:
        # Inline in HTML5: no xmlns needed (and the page then names no URL at all). Width 100 % of
        # the column, at most the design width; the height follows the viewBox's aspect ratio.
        return (f'<svg width="100%" viewBox="0 0 {self.width:.0f} {self.height:.0f}" '
                f'style="max-width:{self.width:.0f}px;height:auto;display:block" '
                f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{esc(self.title)}" '
                f'font-family="system-ui, -apple-system, \'Segoe UI\', Roboto, Arial, sans-serif">'
                + "".join(self.parts) + "</svg>")


@dataclass(frozen=True)
class Bar:
    """One bar: a value (None when its row failed) and the text shown at its end."""

    label: str
    value: float | None
    color: str
    text: str = ""
    tip: str = ""


def hbars(title: str, bars: Sequence[Bar], unit: str, width: float = 420,
          legend: Sequence[tuple[str, str]] = ()) -> str:
    """Horizontal bars on one 0-based scale, labelled left, values at the bar ends; failed in red.
    ``legend``: (name, colour) for what the bar colours mean, drawn under the title."""
    label_w = max([text_width(b.label) for b in bars] + [40]) + 12
    value_w = max([text_width(b.text or "failed") for b in bars] + [40]) + 10
    plot_w = max(width - label_w - value_w - 10, 80)
    width = label_w + plot_w + value_w + 10
    bar_h, gap = 18, 8
    c = Canvas(width, 0, title)
    c.parts.append(f'<text x="0" y="16" font-size="13" font-weight="600" fill="{INK}">{esc(title)}'
                   f'<tspan font-size="11" font-weight="400" fill="{MUTED}" dx="6">{esc(unit)}</tspan></text>')
    top = c.legend(legend, 24) + 6 if legend else 30
    c.height = top + len(bars) * (bar_h + gap) + 24
    values = [b.value for b in bars if b.value is not None]
    ticks = nice_ticks(max(values) if values else 1.0)
    scale = plot_w / ticks[-1]
    bottom = top + len(bars) * (bar_h + gap)
    for t in ticks:
        x = label_w + t * scale
        c.line(x, top - 4, x, bottom, GRID)
        c.text(x, bottom + 14, fmt(t), size=10, anchor="middle", fill=MUTED)
    for i, b in enumerate(bars):
        y = top + i * (bar_h + gap)
        c.text(label_w - 8, y + bar_h - 5, b.label, anchor="end")
        if b.value is None:
            c.rect(label_w, y, plot_w, bar_h, "#FDECEA", tip=b.tip or "failed")
            c.text(label_w + 8, y + bar_h - 5, b.text or "failed", fill=FAILED, weight="600")
            continue
        w = b.value * scale
        c.rect(label_w, y, w, bar_h, b.color, tip=b.tip)
        c.text(label_w + w + 6, y + bar_h - 5, b.text, fill=INK)
    return str(c)


@dataclass(frozen=True)
class Stack:
    """One stacked bar: segments (name, value) in legend order; None when its row failed."""

    label: str
    segments: Sequence[tuple[str, float]] | None
    total_text: str = ""
    tip: str = ""


def stacked_hbars(title: str, stacks: Sequence[Stack], colors: dict[str, str], unit: str,
                  width: float = 600) -> str:
    """Horizontal stacked bars on one 0-based scale, with a legend; failed rows in red."""
    label_w = max([text_width(s.label) for s in stacks] + [40]) + 12
    value_w = max([text_width(s.total_text or "failed") for s in stacks] + [40]) + 10
    plot_w = max(width - label_w - value_w - 10, 120)
    width = label_w + plot_w + value_w + 10
    bar_h, gap = 18, 7
    c = Canvas(width, 0, title)
    c.text(0, 16, title, size=13, weight="600")
    top = c.legend(list(colors.items()), 26) + 8
    c.height = top + len(stacks) * (bar_h + gap) + 26
    totals = [sum(v for _, v in s.segments) for s in stacks if s.segments is not None]
    ticks = nice_ticks(max(totals) if totals else 1.0, 6)
    scale = plot_w / ticks[-1]
    bottom = top + len(stacks) * (bar_h + gap)
    for t in ticks:
        tx = label_w + t * scale
        c.line(tx, top - 4, tx, bottom, GRID)
        c.text(tx, bottom + 14, fmt(t), size=10, anchor="middle", fill=MUTED)
    c.text(width - 2, bottom + 14, unit, size=10, anchor="end", fill=MUTED)
    for i, s in enumerate(stacks):
        y = top + i * (bar_h + gap)
        c.text(label_w - 8, y + bar_h - 5, s.label, anchor="end")
        if s.segments is None:
            c.rect(label_w, y, plot_w, bar_h, "#FDECEA", tip=s.tip or "failed")
            c.text(label_w + 8, y + bar_h - 5, "failed", fill=FAILED, weight="600")
            continue
        x = label_w
        for name, v in s.segments:
            w = v * scale
            c.rect(x, y, w, bar_h, colors.get(name, MUTED), tip=f"{s.label}: {name} {v:,.1f} {unit}")
            x += w
        c.text(x + 6, y + bar_h - 5, s.total_text)
    return str(c)


@dataclass(frozen=True)
class Usage:
    """One row's use of a memory against its capacity (both in one unit, e.g. KiB).

    ``segments`` are (name, value) in legend order, None when the row failed; ``capacity``
    None when it is not known (no bar is drawn then: there is no headroom to show)."""

    label: str
    segments: Sequence[tuple[str, float]] | None
    capacity: float | None
    text: str = ""
    tip: str = ""


def capacity_bars(title: str, rows: Sequence[Usage], colors: dict[str, str], width: float = 600) -> str:
    """Each row's use as a stacked bar inside a track that is the target's capacity (the
    light part is the headroom), label above the bar, ``text`` (e.g. "40.1 of 4,096 KiB,
    1.0 %") at its right; over capacity the bar runs past the track's red end. A row
    without a capacity gets a dashed empty frame with its split in words. The legend
    names the segment colours and the headroom."""
    bar_h, gap, label_h = 16, 12, 17
    c = Canvas(width, 0, title)
    c.text(0, 16, title, size=13, weight="600")
    items = list(colors.items()) + [("free (headroom)", FREE)]
    y = c.legend(items, 26) + 6
    used = [(sum(v for _, v in r.segments), r.capacity) for r in rows if r.segments is not None]
    over = max([u / cap for u, cap in used if cap] + [1.0])
    for r in rows:
        total = sum(v for _, v in r.segments) if r.segments is not None else 0.0
        fill = FAILED if r.capacity and total > r.capacity else MUTED
        c.text(0, y + 12, r.label)
        if text_width(r.label) + 12 + text_width(r.text, 11) > width:  # the figure on a line of its own
            y += label_h
        c.text(width, y + 12, r.text, size=11, anchor="end", fill=fill)
        y += label_h
        if r.segments is None:
            c.rect(0, y, width, bar_h, "#FDECEA", tip=r.tip or "failed")
            c.text(8, y + bar_h - 4, "failed", size=11, fill=FAILED, weight="600")
            y += bar_h + gap
            continue
        if not r.capacity:
            # No capacity, no headroom to draw: a dashed empty frame with the split in words
            # (a bar of any length would read as a share of something).
            c.parts.append(f'<rect x="0" y="{y:.1f}" width="{width:.1f}" height="{bar_h}" fill="none" '
                           f'stroke="{FREE_EDGE}" stroke-dasharray="4 3"><title>{esc(r.tip)}</title></rect>')
            split = " + ".join(f"{name} {v:,.1f}" for name, v in r.segments)
            c.text(8, y + bar_h - 4, f"{split} KiB: no capacity to draw against", size=11, fill=MUTED,
                   italic=True)
            y += bar_h + gap
            continue
        track = width / over
        scale = track / r.capacity
        c.rect(0, y, track, bar_h, FREE, tip=r.tip, stroke=FREE_EDGE)
        if 0 < total * scale < 2:  # a use too small to see still shows, 2 units wide
            scale = 2 / total
        x = 0.0
        for name, v in r.segments:
            w = v * scale
            if w > 0:
                c.rect(x, y, w, bar_h, colors.get(name, MUTED), tip=f"{r.label}: {name} {v:,.1f} KiB")
            x += w
        if total > r.capacity:  # does not fit: the capacity's end in red
            c.line(width / over, y - 3, width / over, y + bar_h + 3, stroke=FAILED, width=2)
        y += bar_h + gap
    c.height = y + 2
    return str(c)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    color: str
    label: str
    tip: str = ""
    r: float = 5  # marker radius (the Pareto plot sizes markers by flash)


def scatter(title: str, points: Sequence[Point], x_label: str, y_label: str,
            y_fmt: Callable[[float], str] = fmt, width: float = 560, height: float = 340,
            front: Sequence[Point] = (), legend: Sequence[tuple[str, str]] = ()) -> str:
    """Points with labels; x on a log scale when it spans more than 20x; ``front``
    (a subset of points, e.g. the Pareto front) is joined by a dashed line; ``legend``
    (name, colour) says what the point colours mean."""
    c = Canvas(width, height, title)
    c.text(0, 16, title, size=13, weight="600")
    legend_end = c.legend(legend, 26) if legend else 26.0
    left, right, top, bottom = 64, 20, legend_end + 8, 46
    c.height = height = height + (legend_end - 26)
    pw, ph = width - left - right, height - top - bottom
    xs = [p.x for p in points if p.x > 0]
    ys = [p.y for p in points]
    log = bool(xs) and max(xs) / min(xs) > 20
    if log:
        lo_e, hi_e = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
        hi_e = max(hi_e, lo_e + 1)
        xt = [10.0 ** e for e in range(lo_e, hi_e + 1)]

        def sx(v: float) -> float:
            return left + (math.log10(v) - lo_e) / (hi_e - lo_e) * pw
    else:
        xt = nice_ticks(max(xs) if xs else 1.0)

        def sx(v: float) -> float:
            return left + v / xt[-1] * pw
    yt = ticks_between(min(ys), max(ys)) if ys else [0.0, 1.0]

    def sy(v: float) -> float:
        return top + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph

    for t in xt:
        c.line(sx(t), top, sx(t), top + ph)
        c.text(sx(t), top + ph + 14, fmt(t), size=10, anchor="middle", fill=MUTED)
    for t in yt:
        c.line(left, sy(t), left + pw, sy(t))
        c.text(left - 6, sy(t) + 4, y_fmt(t), size=10, anchor="end", fill=MUTED)
    c.text(left + pw / 2, height - 8, x_label + (" (log scale)" if log else ""), size=11, anchor="middle",
           fill=MUTED)
    c.parts.append(f'<text x="14" y="{top + ph / 2:.1f}" font-size="11" fill="{MUTED}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {top + ph / 2:.1f})">{esc(y_label)}</text>')
    placed: list[tuple[float, float, float, float]] = []  # label boxes, to keep labels apart
    ordered = sorted(front, key=lambda q: q.x)
    for a, b in zip(ordered, ordered[1:]):
        c.line(sx(a.x), sy(a.y), sx(b.x), sy(b.y), stroke=MUTED, width=1.5, dash="4 3")
    for p in sorted(points, key=lambda q: (sx(q.x), -sy(q.y))):
        px, py = sx(p.x), sy(p.y)
        c.circle(px, py, p.r, p.color, tip=p.tip)
        w = text_width(p.label, 11)
        anchor = "end" if px > left + pw * 0.75 else "start"
        x0 = px - 8 - w if anchor == "end" else px + 8
        ly = py - 6
        while any(x0 < bx1 and x0 + w > bx0 and ly - 11 < by1 and ly > by0 for bx0, by0, bx1, by1 in placed):
            ly += 13
        placed.append((x0, ly - 11, x0 + w, ly))
        c.text(px - 8 if anchor == "end" else px + 8, ly, p.label, size=11, anchor=anchor, fill=p.color)
    return str(c)


@dataclass(frozen=True)
class TrendPoint:
    when: float  # seconds since the epoch
    value: float | None  # None: that run failed
    tip: str = ""


@dataclass(frozen=True)
class Trend:
    title: str
    color: str
    points: Sequence[TrendPoint] = field(default_factory=tuple)
    summary: str = ""


def trend(t: Trend, t0: float, t1: float, labels: tuple[str, str], width: float = 290,
          height: float = 160) -> str:
    """One small line chart over [t0, t1] with its own y range (dashed: its min and max);
    failed runs as red crosses on the axis. ``labels`` name t0 and t1 under the axis."""
    lines = t.summary.split("\n")
    left, right, top, bottom = 52, 12, 28 + 15 * len(lines), 30
    height += 15 * (len(lines) - 1)
    pw, ph = width - left - right, height - top - bottom
    c = Canvas(width, height, t.title)
    c.text(0, 14, t.title, size=12, weight="600")
    for i, line in enumerate(lines):
        c.text(0, 31 + 15 * i, line, size=11, fill=MUTED)
    values = [p.value for p in t.points if p.value is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    span = (t1 - t0) or 1.0

    def sx(w: float) -> float:
        return left + (w - t0) / span * pw if t1 > t0 else left + pw / 2

    def sy(v: float) -> float:
        return top + ph / 2 if hi == lo else top + ph - (v - lo) / (hi - lo) * ph

    c.line(left, top + ph + 4, left + pw, top + ph + 4, MUTED)
    c.text(left, top + ph + 17, labels[0], size=10, fill=MUTED)
    if t1 > t0:
        c.text(left + pw, top + ph + 17, labels[1], size=10, anchor="end", fill=MUTED)
    for v in sorted({lo, hi}):
        c.line(left, sy(v), left + pw, sy(v), GRID, dash="3 3")
        c.text(left - 5, sy(v) + 4, fmt(v), size=10, anchor="end", fill=MUTED)
    ok_pts = [(sx(p.when), sy(p.value)) for p in t.points if p.value is not None]
    if len(ok_pts) > 1:
        c.polyline(ok_pts, t.color)
    for p in t.points:
        if p.value is None:
            c.cross(sx(p.when), top + ph + 4, 4, FAILED, tip=p.tip)
        else:
            c.circle(sx(p.when), sy(p.value), 3.5, t.color, tip=p.tip)
    return str(c)
