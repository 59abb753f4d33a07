"""How one result row's values read in every format: named for their source, failed as failed.

Each helper takes a row dict (as :func:`harness.report.load.records` gives) and
returns text or a number; a failed row yields no numbers at all.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

from harness.results import engine_label

KIB = 1024.0


def ok(row: dict[str, Any]) -> bool:
    return row.get("status") == "ok"


def number(row: dict[str, Any], field: str) -> float | None:
    """A numeric field of an ok row; None for a failed row or a missing value."""
    v = row.get(field)
    if not ok(row) or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def label(row: dict[str, Any], with_recipe: bool = True) -> str:
    """``kws / cortex-m4 / builtin`` (+ recipe when it is not "none")."""
    parts = [str(row["benchmark"]), str(row["target"]), engine_label(row)]
    if with_recipe and row.get("recipe") not in (None, "", "none"):
        parts.append(str(row["recipe"]))
    return " / ".join(parts)


def series(row: dict[str, Any]) -> str:
    """What a bar or line is within a benchmark: target and engine (+ recipe)."""
    parts = [str(row["target"]), engine_label(row)]
    if row.get("recipe") not in (None, "", "none"):
        parts.append(str(row["recipe"]))
    return " / ".join(parts)


def processor(row: dict[str, Any]) -> str:
    """The core the firmware was compiled for, from the row's ``-mcpu=`` flag."""
    m = re.search(r"-mcpu=(\S+)", str(row.get("cflags") or ""))
    if not m:
        return ""
    core = m.group(1)
    arm = re.fullmatch(r"cortex-([amr])(\d+)(plus)?", core)
    if arm:
        return f"Cortex-{arm.group(1).upper()}{arm.group(2)}{'+' if arm.group(3) else ''}"
    return core


def clock_mhz(row: dict[str, Any]) -> float | None:
    """The clock the latency was computed with: its cycle basis over the latency."""
    latency = number(row, "latency_ms")
    basis = number(row, "cycles" if row.get("latency_source") == "cycles" else "est_cycles")
    if not latency or basis is None:
        return None
    return round(basis / latency / 1e3, 1)


def counter(row: dict[str, Any]) -> tuple[str, int] | None:
    """The per-inference count and what it counts: ("instructions", n) or ("cycles", n)."""
    for field in ("cycles", "instructions"):
        v = number(row, field)
        if v is not None:
            return field, int(v)
    return None


def latency_text(row: dict[str, Any]) -> str:
    v = number(row, "latency_ms")
    if v is None:
        return "-"
    return f"{v:,.2f}" if v < 1000 else f"{v:,.0f}"


def latency_basis(row: dict[str, Any]) -> str:
    """"est." for est_cycles (the timing model), "" for a hardware cycle count."""
    return "est." if ok(row) and row.get("latency_source") != "cycles" else ""


def int_text(row: dict[str, Any], field: str) -> str:
    v = number(row, field)
    return "-" if v is None else f"{v:,.0f}"


def kib(row: dict[str, Any], field: str) -> float | None:
    v = number(row, field)
    return None if v is None else v / KIB


def flash_text(row: dict[str, Any]) -> str:
    parts = [kib(row, f) for f in ("flash_bytes", "flash_code_bytes", "flash_weights_bytes", "flash_other_bytes")]
    if parts[0] is None:
        return "-"
    split = "+".join("?" if p is None else f"{p:.1f}" for p in parts[1:])
    return f"{parts[0]:.1f} ({split})"


def ram_text(row: dict[str, Any]) -> str:
    parts = [kib(row, f) for f in ("ram_bytes", "ram_static_bytes", "ram_stack_bytes")]
    if parts[0] is None:
        return "-"
    split = "+".join("?" if p is None else f"{p:.1f}" for p in parts[1:])
    return f"{parts[0]:.1f} ({split})"


def energy_text(row: dict[str, Any]) -> str:
    v = number(row, "energy_uj")
    return "-" if v is None else f"{v:,.0f}"


def accuracy_value_text(value: float | None, metric: str) -> str:
    """Top-1 style metrics stored as a fraction read as percent; others as stored."""
    if value is None:
        return "-"
    m = metric.lower().replace("-", "").replace("_", "")
    if m in ("top1", "top5", "accuracy") and 0.0 <= value <= 1.0:
        return f"{100 * value:.1f} %"
    if m in ("top1", "top5", "accuracy"):
        return f"{value:.1f} %"
    return f"{value:.3f}"


def _count(row: dict[str, Any], field: str) -> int | None:
    v = row.get(field)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def accuracy_inputs(row: dict[str, Any]) -> str:
    """How many inputs the accuracy is over: ``200/1000`` (run / the dataset holds),
    ``200 inputs`` when the dataset's size is not known (rows before schema 2), "" when
    the row does not say."""
    n, total = _count(row, "accuracy_samples"), _count(row, "accuracy_dataset_samples")
    if n is None:
        return ""
    return f"{n}/{total}" if total else f"{n} inputs"


def partial_accuracy(row: dict[str, Any]) -> bool:
    """Whether the accuracy is over fewer inputs than the dataset holds (``--limit``)."""
    n, total = _count(row, "accuracy_samples"), _count(row, "accuracy_dataset_samples")
    return n is not None and total is not None and n < total


EARLIER = "\u2020"  # the accuracy cell's mark: measured in an earlier run (see accuracy_from)


def accuracy_short(row: dict[str, Any]) -> str:
    """``top1 91.5 % (200/1000)``, ``auc 0.912 (200 inputs)`` or "-"; a trailing dagger
    when the accuracy comes from an earlier run than the row's other numbers."""
    v = number(row, "accuracy")
    if v is None:
        return "-"
    metric = str(row.get("accuracy_metric") or "")
    inputs = accuracy_inputs(row)
    return ((f"{metric} " if metric else "") + accuracy_value_text(v, metric) + (f" ({inputs})" if inputs else "")
            + (f" {EARLIER}" if row.get("accuracy_from") else ""))


def accuracy_text(row: dict[str, Any]) -> str:
    """The accuracy in full: ``top1 91.2 % (1000/1000); host 91.3 % on the same inputs``,
    whether it is a partial run, and where it comes from when not from the row's own run."""
    short = accuracy_short(row)
    if short == "-":
        return short
    metric = str(row.get("accuracy_metric") or "")
    text = short.removesuffix(f" {EARLIER}")
    ref = number(row, "accuracy_reference")
    if ref is not None:
        text += f"; host {accuracy_value_text(ref, metric)} on the same inputs"
    if partial_accuracy(row):
        text += "; a partial run (--limit)"
    earlier = row.get("accuracy_from")
    if isinstance(earlier, dict):
        text += f"; {accuracy_from_text(earlier)}"
    return text


def accuracy_from_text(earlier: dict[str, Any]) -> str:
    """What ``accuracy_from`` (set by load.py) says: the accuracy's own run, and the newest run's."""
    metric = str(earlier.get("metric") or "")
    newest_inputs = accuracy_inputs({"accuracy_samples": earlier.get("newest_samples"),
                                     "accuracy_dataset_samples": earlier.get("newest_dataset_samples")})
    newest_value = earlier.get("newest_accuracy")
    newest = accuracy_value_text(float(newest_value), metric) if isinstance(newest_value, (int, float)) else "?"
    when = str(earlier.get("timestamp") or "?")[:16].replace("T", " ")
    return (f"accuracy from the run of {when} (git {earlier.get('git_revision') or '?'}), over more inputs "
            f"than the newest run's {newest}" + (f" ({newest_inputs})" if newest_inputs else ""))


def output_text(row: dict[str, Any]) -> str:
    if not ok(row):
        return "-"
    match = row.get("output_matches_reference")
    return "= reference" if match is True else "differs" if match is False else "not checked"


def status_text(row: dict[str, Any]) -> str:
    return "ok" if ok(row) else "failed"


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """What the numbers are and where their figures come from, once per distinct source."""
    out: list[str] = []
    for text in sorted({f"{r['target']}: {r['proxy']}" for r in rows if r.get("proxy")}):
        out.append(text)
    if any(ok(r) and r.get("latency_source") != "cycles" for r in rows):
        out.append("instructions: retired instructions per inference from the emulator (QEMU -icount shift=0), "
                   "not cycles; est. cycles: est_cycles from the timing model (tinyhil-cycles: the core's timing "
                   "table + the target's memory system under QEMU; docs/cycle-model.md); est. latency = est. "
                   "cycles / clock")
    if any(ok(r) and r.get("latency_source") == "cycles" for r in rows):
        out.append("cycles: a hardware cycle counter; latency = cycles / clock")
    if ok_rows := [r for r in rows if ok(r)]:
        if all(output_text(r) == "= reference" for r in ok_rows):
            out.append("output: every ok row's firmware output equals the reference interpreter's for the same "
                       "fixed input (a difference fails the row)")
    for text in sorted({f"cycle model on {r['target']}: {r['cpi_source']}" for r in rows
                        if ok(r) and r.get("cpi_source")}):
        out.append(text)
    for text in sorted({f"power on {r['target']}: {r['power_mw']:g} mW, {r['power_source']}"
                        for r in rows if ok(r) and r.get("power_source") and number(r, "power_mw") is not None}):
        out.append(text)
    if any(number(r, "energy_uj") is not None for r in rows):
        out.append("energy = latency x the target's active power (an estimate, not a measurement)")
    with_accuracy = [r for r in rows if number(r, "accuracy") is not None]
    if any("/" in accuracy_inputs(r) for r in with_accuracy):
        out.append("accuracy (a/b): over a inputs of the b the dataset holds; a < b is a partial run (--limit). "
                   "A partial run never replaces a fuller run's accuracy for the same key and model")
    if any(accuracy_inputs(r).endswith("inputs") for r in with_accuracy):
        out.append("accuracy (n inputs): the row does not record how many inputs the dataset holds "
                   "(written before schema 2), so whether it was a partial run is unknown")
    for r in with_accuracy:
        if isinstance(r.get("accuracy_from"), dict):
            out.append(f"{EARLIER} {label(r)}: {accuracy_from_text(r['accuracy_from'])}")
    return out


def capacity(row: dict[str, Any], memory: str) -> tuple[int | None, str]:
    """The target's ``memory`` ("flash" or "ram") size in bytes and where it came from:
    the row's own ``<memory>_capacity_bytes`` ("row"), else the target's descriptor as it
    is now (``"descriptor"``: rows before schema 2 lack the field), else (None, "")."""
    v = _count(row, f"{memory}_capacity_bytes")
    if v:
        return v, "row"
    sizes = _descriptor_sizes(str(row.get("target") or ""))
    size = sizes.get(memory)
    return (size, "descriptor") if size else (None, "")


@functools.lru_cache(maxsize=None)
def _descriptor_sizes(target: str) -> dict[str, int]:
    """{"flash": bytes, "ram": bytes} of a target known to this installation, {} otherwise."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", target) or target.endswith(".toml"):
        return {}
    try:
        from harness.targets import find_target

        t = find_target(target)
    except Exception:  # unknown or unreadable descriptor: the report draws without capacity
        return {}
    return {"flash": int(t.flash.size), "ram": int(t.ram.size)}


@dataclass(frozen=True)
class Column:
    """One column of the results table every format shows."""

    header: str
    cell: Callable[[dict[str, Any]], str]
    numeric: bool = True


def table_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """The results table's columns for these rows: optional ones only when some row has them.

    A header may hold a line break (its unit or split on the second line).
    """
    ok_rows = [r for r in rows if ok(r)]
    est = {r.get("latency_source") != "cycles" for r in ok_rows}
    latency_header = "est. latency\nms" if est == {True} else "latency\nms"

    def latency(row: dict[str, Any]) -> str:
        text = latency_text(row)
        return f"{text} (est.)" if len(est) > 1 and latency_basis(row) else text

    cols = [Column("benchmark", lambda r: str(r["benchmark"]), False),
            Column("target", lambda r: str(r["target"]), False),
            Column("engine", engine_label, False)]
    if any(r.get("recipe") not in (None, "", "none") for r in rows):
        cols.append(Column("recipe", lambda r: str(r.get("recipe") or "none"), False))
    if any(number(r, "instructions") is not None for r in rows) or not ok_rows:
        cols.append(Column("instructions", lambda r: int_text(r, "instructions")))
    if any(number(r, "est_cycles") is not None for r in rows):
        cols.append(Column("est.\ncycles", lambda r: int_text(r, "est_cycles")))
    if any(number(r, "cycles") is not None for r in rows):
        cols.append(Column("cycles", lambda r: int_text(r, "cycles")))
    cols += [Column(latency_header, latency),
             Column("energy\nuJ", energy_text),
             Column("flash KiB\n(code+weights+other)", flash_text),
             Column("RAM KiB\n(static+stack)", ram_text)]
    if any(number(r, "accuracy") is not None for r in rows):
        cols.append(Column("accuracy", accuracy_short))
        cols.append(Column("host acc.\n(same inputs)", lambda r: accuracy_value_text(
            number(r, "accuracy_reference"), str(r.get("accuracy_metric") or ""))))
    if any(output_text(r) != "= reference" for r in ok_rows):
        cols.append(Column("output", output_text, False))
    cols.append(Column("status", status_text, False))
    return cols


def failures(rows: list[dict[str, Any]]) -> list[str]:
    """``kws / cortex-m4 / builtin: <error>`` for every failed row."""
    return [f"{label(r)}: {r.get('error') or 'no error recorded'}" for r in rows if not ok(r)]
