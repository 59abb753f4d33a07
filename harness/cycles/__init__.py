"""The timing model: est_cycles from a per-core table and the target's memory system.

Three parts, all data but one:

- ``cores/<core>.toml``: the core's timing table, every instruction class with
  its cycle cost and the document and section it comes from, plus the pipeline
  rules (taken-branch refill, load/store pipelining, load-use, dual issue);
- the target descriptor's ``[cycle_model]``: per memory region the wait states
  at the target's clock and the cache or flash accelerator in front of it;
- ``tinyhil_cycles.c``: a QEMU TCG plugin (API v1) that applies both to every
  executed instruction; compiled with the host C compiler on first use and
  cached (``~/.cache/tinyhil/plugins``).

QEMU keeps running with ``-icount shift=0``, so the instruction counts stay
exact and repeatable; the cycle figure is added beside them, never instead.
The model's name and version (``MODEL_NAME``, the table's ``version``, the
plugin source hash) go into every row as ``cycle_model``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from harness.errors import BuildError, ToolMissingError, UserInputError

HERE = Path(__file__).resolve().parent
CORES_DIR = HERE / "cores"
PLUGIN_SOURCE = HERE / "tinyhil_cycles.c"
MODEL_NAME = "tinyhil-cycles"

KINDS = ("plain", "load", "store", "load_multiple", "store_multiple", "branch", "branch_register", "call",
         "call_register", "divide", "it", "nop", "fp", "fp_load", "fp_store", "fp_load_multiple",
         "fp_store_multiple")


class CycleModelError(UserInputError):
    """A timing table or a target's [cycle_model] is wrong."""


@dataclass(frozen=True)
class InsnClass:
    name: str
    kind: str
    cycles: int
    per_register: int
    dual: str
    mnemonics: tuple[str, ...]
    source: str
    note: str = ""
    latency: int = 0  # cycles from issue until a dependent instruction can issue (0: its cycles)


@dataclass(frozen=True)
class CoreTable:
    """One core's timing table (cores/<core>.toml)."""

    core: str
    version: int
    description: str
    default_cycles: int
    sources: tuple[str, ...]
    pipeline: dict[str, Any]
    pairs: tuple[tuple[str, str], ...]
    classes: tuple[InsnClass, ...]
    path: Path

    @property
    def label(self) -> str:
        return f"{self.core} v{self.version}"

    def with_costs(self, costs: dict[str, int]) -> "CoreTable":
        """The table with some classes' cycles replaced (a calibration override)."""
        from dataclasses import replace

        unknown = sorted(set(costs) - {c.name for c in self.classes})
        if unknown:
            raise CycleModelError(f"{self.path.name}: no instruction class {unknown[0]!r} to override")
        return replace(self, classes=tuple(replace(c, cycles=int(costs.get(c.name, c.cycles)))
                                           for c in self.classes))


def load_core_table(core_or_path: str | Path) -> CoreTable:
    """The timing table of a core name (``cortex-m4``) or a .toml path; checked."""
    path = Path(core_or_path) if str(core_or_path).endswith(".toml") else CORES_DIR / f"{core_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        known = ", ".join(sorted(p.stem for p in CORES_DIR.glob("*.toml")))
        raise CycleModelError(f"no timing table for core {core_or_path!r} ({path}: {e.strerror}); "
                              f"tables exist for: {known}") from e
    except tomllib.TOMLDecodeError as e:
        raise CycleModelError(f"{path}: not valid TOML ({e})") from e

    def need(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
        if key not in table:
            raise CycleModelError(f"{path}: {where}{key} is missing")
        value = table[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise CycleModelError(f"{path}: {where}{key} must be {kind.__name__}, got {value!r}")
        return value

    pipeline = dict(need(data, "pipeline", dict, ""))
    for key in ("branch_penalty", "branch_register_penalty", "load_use_penalty", "exception_entry", "address_early",
                "unaligned_target_penalty"):
        if not isinstance(pipeline.get(key, 0), int) or pipeline.get(key, 0) < 0:
            raise CycleModelError(f"{path}: pipeline.{key} must be a non-negative integer")
    classes = []
    seen: dict[str, str] = {}
    for i, c in enumerate(need(data, "class", list, "")):
        where = f"class[{i}]."
        name = need(c, "name", str, where)
        kind = need(c, "kind", str, where)
        if kind not in KINDS:
            raise CycleModelError(f"{path}: class {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
        cycles = need(c, "cycles", int, where)
        if cycles < 0:
            raise CycleModelError(f"{path}: class {name!r}: cycles must be >= 0")
        mnemonics = tuple(str(m).lower() for m in need(c, "mnemonics", list, where))
        for m in mnemonics:
            if m in seen:
                raise CycleModelError(f"{path}: mnemonic {m!r} is in classes {seen[m]!r} and {name!r}")
            seen[m] = name
        latency = c.get("latency", 0)
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 0:
            raise CycleModelError(f"{path}: class {name!r}: latency must be a non-negative integer")
        classes.append(InsnClass(name, kind, cycles, int(c.get("per_register", 0)), str(c.get("dual", "")),
                                 mnemonics, need(c, "source", str, where), str(c.get("note", "")), latency))
    pairs: tuple[tuple[str, str], ...] = ()
    if pipeline.get("dual_issue"):
        dual = need(data, "dual_issue", dict, "")
        pairs = tuple((str(a), str(b)) for a, b in need(dual, "pairs", list, "dual_issue."))
    return CoreTable(
        core=need(data, "core", str, ""), version=need(data, "version", int, ""),
        description=str(data.get("description", "")), default_cycles=int(data.get("default_cycles", 1)),
        sources=tuple(data.get("sources", ())), pipeline=pipeline, pairs=pairs, classes=tuple(classes),
        path=path)


# --------------------------------------------------------------------------- memory system

@dataclass(frozen=True)
class Cache:
    """A cache or flash accelerator: ``miss_cycles`` extra per line missed;
    ``prefetch``: a miss on the line right after the last one is hidden."""

    name: str
    size: int
    line: int
    ways: int
    miss_cycles: int
    prefetch: bool = False


@dataclass(frozen=True)
class Region:
    """A memory region in the address map the firmware runs in under QEMU."""

    name: str
    origin: int
    size: int
    read_ws: int = 0
    write_ws: int = 0
    fetch_ws: int = 0
    icache: str = ""
    dcache: str = ""


@dataclass(frozen=True)
class MemorySystem:
    regions: tuple[Region, ...]
    caches: tuple[Cache, ...] = ()
    source: str = ""


def parse_memory_system(table: dict[str, Any], where: str) -> MemorySystem:
    """``[cycle_model]``'s regions and caches from a descriptor (``where`` names it in errors)."""
    caches: list[Cache] = []
    for name, c in dict(table.get("caches", {})).items():
        try:
            cache = Cache(name, int(c["size"]), int(c["line"]), int(c["ways"]), int(c["miss_cycles"]),
                          bool(c.get("prefetch", False)))
        except (KeyError, TypeError, ValueError) as e:
            raise CycleModelError(f"{where}: cycle_model.caches.{name} needs size, line, ways, miss_cycles "
                                  f"(integers): {e}") from e
        if cache.line <= 0 or cache.line & (cache.line - 1) or cache.size < cache.line * cache.ways:
            raise CycleModelError(f"{where}: cycle_model.caches.{name}: line must be a power of two and "
                                  "size at least line x ways")
        caches.append(cache)
    names = {c.name for c in caches}
    regions = []
    for i, r in enumerate(table.get("regions", [])):
        try:
            region = Region(str(r["name"]), int(r["origin"]), int(r["size_kb"]) * 1024, int(r.get("read_ws", 0)),
                            int(r.get("write_ws", 0)), int(r.get("fetch_ws", 0)), str(r.get("icache", "")),
                            str(r.get("dcache", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise CycleModelError(f"{where}: cycle_model.regions[{i}] needs name, origin, size_kb: {e}") from e
        for cache_name in (region.icache, region.dcache):
            if cache_name and cache_name not in names:
                raise CycleModelError(f"{where}: cycle_model.regions[{i}] names cache {cache_name!r}, "
                                      f"not in cycle_model.caches ({', '.join(sorted(names)) or 'none'})")
        regions.append(region)
    return MemorySystem(tuple(regions), tuple(caches), str(table.get("source", "")))


def load_target_model(target: Any) -> CoreTable:
    """The timing table a target's ``[cycle_model]`` names, with the target's calibration
    override applied when one is stored (``tinyhil calibrate``)."""
    table = load_core_table(target.cycle_model.table)
    from harness.cycles.calibrate import load_override

    costs = load_override(target.name, table)
    return table.with_costs(costs) if costs else table


# --------------------------------------------------------------------------- the plugin

def plugin_path(cache_dir: Path | None = None) -> Path:
    """The compiled plugin, built with the host C compiler on first use (cached by source hash)."""
    from harness.firmware import cache_dir as default_cache

    source = PLUGIN_SOURCE.read_bytes()
    key = hashlib.sha256(source).hexdigest()[:16]
    root = (cache_dir or default_cache()) / "plugins"
    so = root / f"tinyhil_cycles-{key}.so"
    if so.is_file():
        return so
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ToolMissingError("the cycle model's QEMU plugin needs a host C compiler: "
                               "sudo apt-get install gcc")
    root.mkdir(parents=True, exist_ok=True)
    # One temporary name per caller (two threads of one process may compile at once).
    fd, name = tempfile.mkstemp(dir=root, prefix=f"{so.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    cmd = [cc, "-O2", "-shared", "-fPIC", "-Wall", "-Wno-format-truncation", "-o", str(tmp), str(PLUGIN_SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError("the cycle model's QEMU plugin did not compile", cmd, proc.stderr)
    os.replace(tmp, so)
    return so


def plugin_version() -> str:
    return hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()[:8]


def model_label(table: CoreTable) -> str:
    """What a row's ``cycle_model`` says: the model, the core table's version, the plugin's hash."""
    return f"{MODEL_NAME} {table.core} v{table.version} (plugin {plugin_version()})"


@dataclass(frozen=True)
class Watch:
    name: str
    addr: int


def plugin_config(table: CoreTable, memory: MemorySystem, out: Path, watches: Sequence[Watch] = (),
                  marks: Sequence[Watch] = (), until: int | None = None) -> str:
    """The plugin's configuration file: the table and memory system flattened to lines."""
    p = table.pipeline
    lines = [f"out {out}"]
    for key in ("branch_penalty", "branch_register_penalty", "load_use_penalty", "exception_entry", "address_early",
                "unaligned_target_penalty"):
        lines.append(f"param {key} {int(p.get(key, 0))}")
    lines.append(f"param load_pipelining {int(bool(p.get('load_pipelining', False)))}")
    lines.append(f"param dual_issue {int(bool(p.get('dual_issue', False)))}")
    lines.append(f"param dual_issue_narrow {int(bool(p.get('dual_issue_narrow', False)))}")
    lines.append(f"param default_cycles {table.default_cycles}")
    groups = sorted({c.dual for c in table.classes if c.dual} | {g for pair in table.pairs for g in pair})
    gid = {g: i for i, g in enumerate(groups)}
    for c in table.classes:
        lines.append(f"class {c.name} {c.kind} {c.cycles} {c.per_register} {gid.get(c.dual, -1)} {c.latency}")
    for i, c in enumerate(table.classes):
        lines += [f"insn {m} {i}" for m in c.mnemonics]
    lines += [f"pair {gid[a]} {gid[b]}" for a, b in table.pairs]
    cid = {c.name: i for i, c in enumerate(memory.caches)}
    for cache in memory.caches:
        lines.append(f"cache {cache.size} {cache.line} {cache.ways} {cache.miss_cycles} {int(cache.prefetch)}")
    for r in memory.regions:
        lines.append(f"region {r.origin:x} {r.origin + r.size:x} {r.read_ws} {r.write_ws} {r.fetch_ws} "
                     f"{cid.get(r.icache, -1)} {cid.get(r.dcache, -1)} {r.name}")
    lines += [f"watch {w.addr:x} {w.name}" for w in watches]
    lines += [f"mark {w.addr:x} {w.name}" for w in marks]
    if until is not None:
        lines.append(f"until {until:x}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- its report

@dataclass(frozen=True)
class Breakdown:
    """Where cycles went: instructions' table costs, taken branches, fetch and data stalls."""

    instructions: int
    cycles: int
    base: int
    branch: int
    fetch: int
    data: int

    def as_dict(self) -> dict[str, int]:
        return {"issue": self.base, "branch": self.branch, "fetch_stall": self.fetch, "data_stall": self.data}


@dataclass
class CycleReport:
    """What the plugin wrote: per watched function its calls, marks, totals, per class."""

    calls: dict[str, list[Breakdown]] = field(default_factory=dict)
    marks: list[tuple[str, int, int]] = field(default_factory=list)
    classes: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name -> (kind, count, cycles)
    caches: list[tuple[int, int]] = field(default_factory=list)  # (accesses, misses)
    total: Breakdown | None = None
    dual_saved: int = 0
    unknown: list[str] = field(default_factory=list)  # mnemonics no class lists (default_cycles)
    # Per class, instructions executed inside watched calls and charged exactly the class's
    # cost (no pipelining or dual-issue adjustment): what a calibration fit can scale.
    inside: dict[str, int] = field(default_factory=dict)
    complete: bool = False  # the plugin's exit summary arrived


def parse_report(text: str) -> CycleReport:
    rep = CycleReport()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        tag = parts[0]
        try:
            if tag == "call" and len(parts) == 8:
                rep.calls.setdefault(parts[1], []).append(Breakdown(*map(int, parts[2:8])))
            elif tag == "mark" and len(parts) == 4:
                rep.marks.append((parts[1], int(parts[2]), int(parts[3])))
            elif tag == "class" and len(parts) == 5:
                rep.classes[parts[1]] = (parts[2], int(parts[3]), int(parts[4]))
            elif tag == "cache" and len(parts) == 4:
                rep.caches.append((int(parts[2]), int(parts[3])))
            elif tag == "total" and len(parts) == 8:
                rep.total = Breakdown(*map(int, parts[1:7]))
                rep.dual_saved = int(parts[7])
            elif tag == "wclass" and len(parts) == 3:
                rep.inside[parts[1]] = int(parts[2])
            elif tag == "unknown" and len(parts) == 2:
                rep.unknown.append(parts[1])
            elif tag == "end":
                rep.complete = True
            elif tag == "watch":
                rep.calls.setdefault(parts[1], [])
        except ValueError:
            continue
    return rep


def elf_symbols(elf: Path) -> dict[str, int]:
    """Function symbols -> entry address (Thumb bit cleared)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    out: dict[str, int] = {}
    with open(elf, "rb") as f:
        e = ELFFile(f)
        for sec in e.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym["st_info"]["type"] == "STT_FUNC" and sym.name:
                        out.setdefault(sym.name, sym["st_value"] & ~1)
    return out


def resolve_symbols(elf: Path, names: Iterable[str]) -> list[Watch]:
    """Named functions of ``elf`` as watches; an unknown name is a clear error with near matches."""
    import difflib

    symbols = elf_symbols(elf)
    watches = []
    for name in names:
        if name not in symbols:
            close = difflib.get_close_matches(name, list(symbols), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserInputError(f"{elf}: no function symbol {name!r}{hint}")
        watches.append(Watch(name, symbols[name]))
    return watches


__all__ = ["Breakdown", "Cache", "CoreTable", "CycleModelError", "CycleReport", "MemorySystem", "Region",
           "Watch", "load_core_table", "model_label", "parse_memory_system", "parse_report", "plugin_config",
           "plugin_path", "resolve_symbols"]
