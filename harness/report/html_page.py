"""The HTML report: one self-contained page (inline CSS and SVG; no script, no external file).

Sections: the results table; latency per model and target; flash and RAM
against the target's capacity; accuracy against latency (each point with its
input count); the per-layer profile of rows that carry one; the trend of each
key's instruction (or cycle) count over the history; what the numbers are.
Charts are responsive (see svg.py) in a CSS grid, and each draws its own legend.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report import cells, svg
from harness.report.load import KEY, Report
from harness.report.svg import esc
from harness.results import now

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; color: #1F2328;
       margin: 0; background: #F6F8FA; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 32px 48px; box-sizing: border-box; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 4px; }
section { background: white; border: 1px solid #D8DEE4; border-radius: 8px; padding: 16px 20px;
          margin: 16px 0; }
p.sub, p.note { color: #57606A; margin: 2px 0 12px; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { padding: 5px 8px; border-bottom: 1px solid #EAEEF2; white-space: nowrap; }
.scroll { overflow-x: auto; }
th { text-align: left; background: #F6F8FA; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #FDECEA; }
td.failed { color: #C62828; font-weight: 600; }
td.ok { color: #1A7F37; }
td .metric { color: #57606A; font-size: 11px; }
/* Panels in columns of at least 520 px (260 px for the small trend charts), one column when
   the window is narrower; each SVG is 100 % of its column, at most its design width. */
.grid { display: grid; gap: 22px 28px; align-items: start;
        grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr)); }
.grid.small { grid-template-columns: repeat(auto-fill, minmax(min(100%, 260px), 1fr)); }
.grid > * { min-width: 0; }
@media (max-width: 760px) {
  main { padding: 12px 10px 32px; }
  section { padding: 12px 12px; }
}
ul { margin: 4px 0; padding-left: 20px; font-size: 13px; }
li { margin: 2px 0; }
ul.failed li { color: #C62828; }
code { font-size: 12px; background: #F6F8FA; padding: 1px 4px; border-radius: 3px; }
"""


def _colors(names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for n in names:
        if n not in out:
            out[n] = svg.PALETTE[len(out) % len(svg.PALETTE)]
    return out


def _section(title: str, sub: str, body: str) -> str:
    sub_html = f'<p class="sub">{sub}</p>' if sub else ""
    return f"<section><h2>{esc(title)}</h2>{sub_html}{body}</section>"


def _table(rows: list[dict[str, Any]]) -> str:
    cols = cells.table_columns(rows)
    head = "".join(f'<th class="{"num" if c.numeric else ""}">{esc(c.header).replace(chr(10), "<br>")}</th>'
                   for c in cols)
    body = []
    for r in rows:
        tds = []
        for i, c in enumerate(cols):
            text = c.cell(r)
            klass = "num" if c.numeric else ""
            if i == len(cols) - 1:
                klass = "ok" if cells.ok(r) else "failed"
            if c.header == "output" and text == "differs":
                klass = "failed"
            tip = ""
            if not cells.ok(r) and i == len(cols) - 1:
                tip = f' title="{esc(r.get("error") or "")}"'
            elif c.header == "accuracy" and text != "-":
                tip = f' title="{esc(cells.accuracy_text(r))}"'
            elif c.header.startswith("output") or c.header == "status":
                tip = f' title="{esc(cells.output_text(r))}"' if cells.ok(r) else tip
            cell = esc(text)
            if c.header == "accuracy" and text != "-":
                # The value and its input count on one line, the metric's name under them.
                metric = str(r.get("accuracy_metric") or "")
                value = text.removeprefix(f"{metric} ") if metric else text
                cell = esc(value).replace(" ", "&nbsp;") + (f'<br><span class="metric">{esc(metric)}</span>'
                                                            if metric else "")
            tds.append(f'<td class="{klass}"{tip}>{cell}</td>')
        body.append(f'<tr class="{"" if cells.ok(r) else "failed"}">{"".join(tds)}</tr>')
    html = f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    fails = cells.failures(rows)
    if fails:
        html += '<p class="note">Failed rows (no numbers are shown for them):</p><ul class="failed">' + \
                "".join(f"<li>{esc(f)}</li>" for f in fails) + "</ul>"
    return html


def _latency(rows: list[dict[str, Any]], colors: dict[str, str]) -> str:
    by_bench: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_bench[str(r["benchmark"])].append(r)
    panels = []
    for bench, group in by_bench.items():
        bars = []
        for r in group:
            v = cells.number(r, "latency_ms")
            count = cells.counter(r)
            tip = f"{cells.label(r)}: " + (f"{v:,.2f} ms ({r.get('latency_source')})"
                                          + (f", {count[1]:,} {count[0]}" if count else "")
                                          if v is not None else f"failed: {r.get('error')}")
            est = " est." if cells.latency_basis(r) else ""
            bars.append(svg.Bar(cells.series(r), v, colors[cells.series(r)],
                                f"{cells.latency_text(r)} ms{est}" if v is not None else "failed", tip))
        legend = list(dict.fromkeys((cells.series(r), colors[cells.series(r)]) for r in group))
        panels.append(svg.hbars(bench, bars, "ms", width=600, legend=legend))
    sources = {r.get("latency_source") for r in rows if cells.ok(r)}
    sub = ("Per inference, each model on its own scale. "
           + ("est. = est_cycles (the timing model run on the emulator's instructions: the core's timing table, "
              "flash wait states and caches; docs/cycle-model.md) / clock, not a measured time. "
              if "est_cycles" in sources else "")
           + ("Without est.: a hardware cycle counter / clock." if "cycles" in sources else ""))
    sub = sub.strip() + " Colour = target / engine, as each chart's legend says."
    return _section("Latency per model and target", esc(sub), f'<div class="grid">{"".join(panels)}</div>')


FLASH_COLORS = {"code": "#0072B2", "weights": "#E69F00", "other": "#8C6D1F"}
RAM_COLORS = {"static: arena": "#009E73", "static: other": "#7FC8B0", "stack": "#CC79A7"}


def _usage_text(used: float, cap: int | None, memory: str) -> str:
    """``40.1 of 4,096 KiB (1.0 % of flash)``, or ``40.1 KiB (capacity unknown)``."""
    if not cap:
        return f"{used:,.1f} KiB (capacity unknown)"
    cap_kib = cap / cells.KIB
    pct = 100 * used / cap_kib
    over = f", over by {used - cap_kib:,.1f} KiB" if used > cap_kib else ""
    return f"{used:,.1f} of {cap_kib:,.0f} KiB ({pct:.1f} % of {memory}{over})"


def _memory(rows: list[dict[str, Any]]) -> str:
    flash: list[svg.Usage] = []
    ram: list[svg.Usage] = []
    from_descriptor: set[str] = set()
    unknown: set[str] = set()
    for r in rows:
        name = cells.label(r)
        flash_cap, flash_src = cells.capacity(r, "flash")
        ram_cap, ram_src = cells.capacity(r, "ram")
        for cap, src in ((flash_cap, flash_src), (ram_cap, ram_src)):
            if src == "descriptor":
                from_descriptor.add(str(r["target"]))
            elif cap is None:
                unknown.add(str(r["target"]))
        if not cells.ok(r):
            flash.append(svg.Usage(name, None, None, tip=f"failed: {r.get('error')}"))
            ram.append(svg.Usage(name, None, None, tip=f"failed: {r.get('error')}"))
            continue
        code, weights, other = (cells.kib(r, f) or 0.0 for f in
                                ("flash_code_bytes", "flash_weights_bytes", "flash_other_bytes"))
        text = _usage_text(code + weights + other, flash_cap, "flash")
        flash.append(svg.Usage(name, [("code", code), ("weights", weights), ("other", other)],
                               flash_cap / cells.KIB if flash_cap else None, text, f"{name}: {text}"))
        static, arena, stack = (cells.kib(r, f) or 0.0 for f in
                                ("ram_static_bytes", "ram_arena_bytes", "ram_stack_bytes"))
        arena = min(arena, static)
        text = _usage_text(static + stack, ram_cap, "RAM")
        ram.append(svg.Usage(name, [("static: arena", arena), ("static: other", static - arena), ("stack", stack)],
                             ram_cap / cells.KIB if ram_cap else None, text, f"{name}: {text}"))
    body = (svg.capacity_bars("Flash (.text + .rodata + .data init)", flash, FLASH_COLORS)
            + svg.capacity_bars("RAM (static .data + .bss, and the stack's high-water mark)", ram, RAM_COLORS))
    sub = ("Each bar is the target's capacity (the light part is the headroom), filled with what the firmware "
           "uses. Flash from the ELF: code (.text), weights (the engine's constant arrays), other. "
           "RAM: static = .data + .bss (the tensor arena shown apart), plus the stack measured by painting.")
    if from_descriptor:
        sub += (f" Capacity of {', '.join(sorted(from_descriptor))} from the target descriptor as it is now: "
                "these rows were written before rows carried it.")
    if unknown:
        sub += (f" Capacity of {', '.join(sorted(unknown))} unknown (the rows do not carry it and no target "
                "descriptor of that name is installed): no bar, the split in words.")
    return _section("Flash and RAM", esc(sub), f'<div class="grid">{body}</div>')


def _point_label(r: dict[str, Any], name: str) -> str:
    """A scatter point's label: ``kws (200/1000)``, the accuracy's input count next to it."""
    inputs = cells.accuracy_inputs(r)
    mark = f" {cells.EARLIER}" if r.get("accuracy_from") else ""
    return f"{name} ({inputs}){mark}" if inputs else name + mark


def _accuracy(rows: list[dict[str, Any]], colors: dict[str, str]) -> str:
    by_metric: dict[str, list[svg.Point]] = defaultdict(list)
    series: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        acc, lat = cells.number(r, "accuracy"), cells.number(r, "latency_ms")
        if acc is None or lat is None:
            continue
        metric = str(r.get("accuracy_metric") or "accuracy")
        series[metric][cells.series(r)] = colors[cells.series(r)]
        by_metric[metric].append(svg.Point(lat, acc, colors[cells.series(r)], _point_label(r, str(r["benchmark"])),
                                           f"{cells.label(r)}: {cells.accuracy_text(r)}, {lat:,.2f} ms"))
    if not by_metric:
        return _section("Accuracy vs latency", "",
                        '<p class="note">No row carries an accuracy yet: run <code>tinyhil bench --accuracy'
                        '</code> to measure it on target.</p>')
    panels = []
    for metric, pts in by_metric.items():
        panels.append(svg.scatter(f"{metric} vs latency", pts, "latency ms", metric,
                                  y_fmt=functools.partial(_accuracy_tick, metric=metric),
                                  legend=list(series[metric].items())))
    return _section("Accuracy vs latency", esc(
        "Accuracy measured on target (firmware), against latency; colour = target / engine (each chart's "
        "legend). Next to each point, the inputs it is over: a/b = a of the b inputs the dataset holds "
        "(a < b: a partial run, --limit); \u2020 = from an earlier run over more inputs than the newest. "
        "Hover a point for the host interpreter's accuracy."),
        f'<div class="grid">{"".join(panels)}</div>')


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, accuracy) points no other point beats on both (lower, higher)."""
    return [i for i, (x, y) in enumerate(points)
            if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2 in points)]


def _recipes(rows: list[dict[str, Any]], colors: dict[str, str]) -> str:
    """Pareto plot per benchmark and target: accuracy vs latency, one point per recipe,
    marker area proportional to flash; the front is dashed."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if str(r.get("recipe") or "none") != "none" and cells.number(r, "accuracy") is not None \
                and cells.number(r, "latency_ms") is not None:
            groups[(str(r["benchmark"]), str(r["target"]))].append(r)
    if not groups:
        return ""
    panels = []
    for (bench, target), group in groups.items():
        flash_max = max(float(r.get("flash_bytes") or 1) for r in group)
        pts = []
        for r in group:
            lat, acc, flash = float(r["latency_ms"]), float(r["accuracy"]), float(r.get("flash_bytes") or 0)
            pts.append(svg.Point(lat, acc, colors[cells.series(r)], _point_label(r, str(r["recipe"])),
                                 f"{r['recipe']}: {cells.accuracy_text(r)}, {lat:,.2f} ms, "
                                 f"flash {flash / 1024:,.1f} KiB", r=3 + 9 * math.sqrt(flash / flash_max)))
        metric = str(group[0].get("accuracy_metric") or "accuracy")
        sign = -1.0 if metric == "anomaly_score_mean" else 1.0  # a reconstruction error: lower is better
        front = [pts[i] for i in pareto_front([(p.x, sign * p.y) for p in pts])]
        legend = list(dict.fromkeys((cells.series(r), colors[cells.series(r)]) for r in group))
        panels.append(svg.scatter(f"{bench} on {target}: {metric} vs latency", pts, "latency ms", metric,
                                  y_fmt=functools.partial(_accuracy_tick, metric=metric), front=front,
                                  legend=legend))
    return _section("Compression recipes (Pareto)", esc(
        "One point per recipe (tinyhil compare): accuracy on target against latency; marker area is "
        "proportional to flash; the dashed line joins the Pareto front (no recipe is both faster and "
        "more accurate)."), f'<div class="grid">{"".join(panels)}</div>')


def _accuracy_tick(value: float, metric: str) -> str:
    return cells.accuracy_value_text(value, metric)


def _layers(rows: list[dict[str, Any]]) -> str:
    profiled = [r for r in rows if cells.ok(r) and isinstance(r.get("layers"), list) and r["layers"]]
    if not profiled:
        return _section("Per-layer profile", "",
                        '<p class="note">No row carries a per-layer profile: run <code>tinyhil bench --profile'
                        '</code>.</p>')
    ops = _colors(sorted({str(layer.get("op", "?")) for r in profiled for layer in r["layers"]}))
    panels = []
    for r in profiled:
        what = cells.counter(r)
        unit = what[0] if what else "count"
        layers = r["layers"]
        total = sum(float(layer.get("count") or 0) for layer in layers) or 1.0
        bars = []
        for layer in layers:
            count = layer.get("count")
            value = float(count) if isinstance(count, (int, float)) else None
            shape = "x".join(str(d) for d in layer.get("output_shape") or [])
            mpc = layer.get("macs_per_count")
            tip = (f"#{layer.get('index')} {layer.get('op')} -> {shape}: {value or 0:,.0f} {unit}, "
                   f"{layer.get('macs') or 0:,} MACs" + (f", {mpc:.2f} MACs/{unit[:-1]}" if mpc else ""))
            text = f"{svg.fmt(value)} ({100 * value / total:.1f}%)" if value is not None else "-"
            if mpc:
                text += f"  {mpc:.2f} MACs/{unit[:-1] if unit.endswith('s') else unit}"
            bars.append(svg.Bar(f"#{layer.get('index')} {layer.get('op')}", value, ops[str(layer.get("op", "?"))],
                                text, tip))
        overhead = r.get("profile_overhead")
        head = f"{cells.label(r)}"
        sub = f"sum {svg.fmt(total)} {unit}"
        if what:
            sub += f" vs whole inference {svg.fmt(what[1])}"
        if isinstance(overhead, (int, float)):
            sub += f"; timer overhead {overhead:,} per layer"
        legend = [(op, ops[op]) for op in sorted({str(layer.get("op", "?")) for layer in layers})]
        panels.append(f'<div>{svg.hbars(head, bars, unit, width=600, legend=legend)}'
                      f'<p class="note">{esc(sub)}</p></div>')
    return _section("Per-layer profile", esc("Instructions (or cycles) per layer from the firmware, in execution "
                                             "order; colour = op type (each chart's legend). Hover a bar for "
                                             "shape, MACs and MACs per instruction."),
                    f"<div class=\"grid\">{''.join(panels)}</div>")


def _trend(report: Report, colors: dict[str, str]) -> str:
    rows = report.history_rows()
    times = [pd.Timestamp(r["time"]).timestamp() for r in rows if r.get("time") is not None]
    if not times:
        return _section("Trend over history", "", '<p class="note">No row has a timestamp.</p>')
    t0, t1 = min(times), max(times)
    labels = (_day(t0), _day(t1))
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("time") is not None:
            groups[tuple(str(r[k]) for k in KEY)].append(r)
    order = {tuple(str(r[k]) for k in KEY): i for i, r in enumerate(report.latest_rows())}
    panels = []
    for key in sorted(groups, key=lambda k: order.get(k, len(order))):
        group = groups[key]
        pts = []
        kinds = set()
        for r in group:
            count = cells.counter(r)
            stamp = pd.Timestamp(r["time"])
            if count:
                kinds.add(count[0])
            pts.append(svg.TrendPoint(stamp.timestamp(), float(count[1]) if count else None,
                                      f"{stamp:%Y-%m-%d %H:%M} UTC, git {r.get('git_revision')}: "
                                      + (f"{count[1]:,} {count[0]}" if count else f"failed: {r.get('error')}")))
        values = [p.value for p in pts if p.value is not None]
        if not values:
            summary = f"{len(pts)} run(s), all failed"
        elif len(values) == 1:
            summary = f"{svg.fmt(values[-1])} {'/'.join(sorted(kinds))}; {len(pts)} run(s)"
        else:
            kind = "/".join(sorted(kinds))
            summary = (f"{svg.fmt(values[-1])} {kind}: {_change(values[-2], values[-1])} vs previous, "
                       f"{_change(values[0], values[-1])} vs first of {len(pts)}")
        sizes = _size_change([r for r in group if cells.ok(r)])
        if sizes:
            summary += f"\n{sizes} vs previous"
        title = " / ".join(k for k in key if k != "none")
        color = colors.get(cells.series(group[-1]), svg.MUTED)
        panels.append(svg.trend(svg.Trend(title, color, pts, summary), t0, t1, labels))
    sub = (f"Instructions (or cycles, when a row has them) per inference, per key, by run time from {labels[0]} "
           f"to {labels[1]}; {len(report.history)} rows from {len(report.sources)} file(s). Each chart has its own "
           "y range (dashed: its min and max); a red cross is a failed run. Hover a point for its git revision.")
    if t0 == t1 or all(len(g) == 1 for g in groups.values()):
        sub += " One run per key so far: every bench or regress run adds a point."
    return _section("Trend over history", esc(sub), f'<div class="grid small">{"".join(panels)}</div>')


def _change(old: float, new: float) -> str:
    if new == old:
        return "±0"
    return f"{100.0 * (new - old) / old:+.3g}%" if old else f"{new - old:+,.0f}"


def _size_change(ok_rows: list[dict[str, Any]]) -> str:
    """``flash +112 B`` when flash or RAM moved between the last two ok runs, else ""."""
    if len(ok_rows) < 2:
        return ""
    parts = []
    for name, field in (("flash", "flash_bytes"), ("RAM", "ram_bytes")):
        a, b = cells.number(ok_rows[-2], field), cells.number(ok_rows[-1], field)
        if a is not None and b is not None and a != b:
            parts.append(f"{name} {b - a:+,.0f} B")
    return ", ".join(parts)


def _day(t: float) -> str:
    return f"{pd.Timestamp(t, unit='s', tz='UTC'):%Y-%m-%d %H:%M}"


def render(report: Report) -> str:
    rows = report.latest_rows()
    colors = _colors([cells.series(r) for r in rows])
    revisions = sorted({str(r.get("git_revision")) for r in rows if r.get("git_revision")})
    failed = sum(1 for r in rows if not cells.ok(r))
    summary = (f"{len(rows)} results (newest per benchmark, target, engine, recipe), {failed} failed; "
               f"from {len(report.sources)} file(s): {', '.join(p.name for p in report.sources[:6])}"
               + (" …" if len(report.sources) > 6 else "")
               + (f"; git {', '.join(revisions)}" if revisions else "") + f". Generated {now()}.")
    notes = "".join(f"<li>{esc(n)}</li>" for n in cells.notes(rows))
    body = [
        f"<h1>tinyhil results</h1><p class=\"sub\">{esc(summary)}</p>",
        _section("Results", "", _table(rows)),
        _latency(rows, colors),
        _memory(rows),
        _accuracy(rows, colors),
        _recipes(rows, colors),
        _layers(rows),
        _trend(report, colors),
        _section("What the numbers are", "", f"<ul>{notes}</ul>"),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>tinyhil results</title><style>{CSS}</style></head><body><main>"
            + "".join(body) + "</main></body></html>\n")


def write(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report), encoding="utf-8")
    return path
