"""`tinyhil models fetch` and `tinyhil models list`: the MLPerf Tiny models and datasets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.cli.common import add_fetch_options, console, err_console, print_json_lines


def cmd_models_fetch(args: argparse.Namespace) -> int:
    """Fetch the pinned models and datasets, each file checked against its sha256 (tinyhil models fetch)."""
    from harness.engines.tflm.trees import DEFAULT_URL_TEMPLATE
    from harness.models import cache_root, fetch_models

    root = Path(args.dest).expanduser() if args.dest else cache_root()
    done = fetch_models(root, args.url_template or DEFAULT_URL_TEMPLATE,
                        progress=lambda m: err_console.print(escape(m), highlight=False, soft_wrap=True),
                        force=args.force, any_commit=args.any_commit)
    if args.json:
        print_json_lines({"repo": f.repo, "commit": f.commit or None, "url": f.url, "files": f.files,
                          "fetched": f.fetched, "root": str(root)} for f in done)
        return 0
    for f in done:
        how = f"fetched at {f.commit}" if f.fetched else "present"
        console.print(escape(f"{f.repo:19} {f.files:5} files  {how}"), highlight=False)
    console.print(escape(f"in {root} (sha256 verified)"), highlight=False)
    return 0


def model_status(models_dir: Path | None = None) -> list[dict[str, Any]]:
    """Per benchmark, its int8 model, float model and dataset: where each was found in the
    lookup order (``models_dir`` first when given) and whether its sha256s are the pinned ones."""
    from harness.models import BENCHMARKS, MODELS_SUBDIR, pinned_files, search_roots, sha256_file

    # (origin, root): a file's place is root / its path; --models-dir is a models/mlperf_tiny
    # directory (its models only, and the datasets of its root when laid out like ../shared).
    places: list[tuple[str, Path, bool]] = [(r.origin, r.path, True) for r in search_roots()]
    if models_dir is not None:
        whole = models_dir.parts[-2:] == MODELS_SUBDIR.parts
        places.insert(0, ("--models-dir", models_dir.parent.parent if whole else models_dir, whole))

    def at(place: tuple[str, Path, bool], rel: str) -> Path | None:
        _, root, whole = place
        if not whole:
            if not rel.startswith(f"{MODELS_SUBDIR}/"):
                return None
            return root / rel.removeprefix(f"{MODELS_SUBDIR}/")
        return root / rel

    pinned = pinned_files()
    out: list[dict[str, Any]] = []
    for bench, paths in BENCHMARKS.items():
        model_place: tuple[str, Path, bool] | None = None
        for kind, rel in zip(("model", "float", "dataset"), paths):
            files = [f for f in pinned if f.path == rel or (kind == "dataset" and f.path.startswith(rel + "/"))]
            first = [model_place] if kind == "dataset" and model_place is not None else []
            # --models-dir is the only place a bench takes an int8 model from when given.
            look = places[:1] if kind == "model" and models_dir is not None else first + places
            hit = next((p for p in look if (q := at(p, rel)) is not None and q.exists()), None)
            if kind == "model":
                model_place = hit
            row: dict[str, Any] = {"benchmark": bench, "kind": kind, "file": rel, "found_in": None, "root": None,
                                   "path": None,
                                   "sha256": None, "files": len(files)}
            if hit is not None:
                base = at(hit, rel)
                assert base is not None
                missing = differ = 0
                for f in files:
                    p = base / f.path[len(rel) + 1:] if kind == "dataset" else base
                    if not p.is_file():
                        missing += 1
                    elif sha256_file(p) != f.sha256:
                        differ += 1
                row.update(found_in=hit[0], root=str(hit[1]), path=str(base))
                row["sha256"] = "; ".join(x for x in (f"{differ}/{len(files)} differ" if differ else "",
                                                      f"{missing}/{len(files)} missing" if missing else "")
                                          if x) or "ok"
            out.append(row)
    return out


def cmd_models_list(args: argparse.Namespace) -> int:
    """Each benchmark's files, where the lookup order finds them, and whether their sha256 is the pinned one."""
    rows = model_status(Path(args.models_dir) if args.models_dir else None)
    if args.json:
        print_json_lines(rows)
        return 0
    from rich import box

    from harness.models import display

    table = Table(title="MLPerf Tiny models and datasets", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("bench", "file", "found in", "sha256"):
        table.add_column(col, overflow="fold")
    for r in rows:
        n = r["files"]
        file = r["file"].removeprefix("models/mlperf_tiny/") + (f" ({n} file{'s' if n > 1 else ''})"
                                                                 if r["kind"] == "dataset" else "")
        where = (escape(f"{r['found_in']} {display(Path(r['root']))}") if r["found_in"]
                 else "[yellow]not found[/]")
        sha = r["sha256"] or "-"
        colour = "green" if sha == "ok" else "dim" if sha == "-" else "red"
        table.add_row(r["benchmark"], escape(file), where, f"[{colour}]{escape(sha)}[/]")
    console.print(table)
    console.print("[dim]lookup order: --models-dir, TINYHIL_SHARED, ../shared, the fetch cache "
                  "(docs/models.md)[/]")
    if any(r["kind"] == "model" and not r["found_in"] for r in rows):
        console.print("[dim]not found: run `tinyhil models fetch` (a bench fetches them on first use "
                      "unless --offline or --models-dir)[/]")
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    models = sub.add_parser("models", help="the MLPerf Tiny models and datasets: fetch them, see where they are")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    fetch = models_sub.add_parser("fetch", help="fetch the MLPerf Tiny models and datasets at the pinned commits, "
                                                "each file checked against its pinned sha256")
    add_fetch_options(fetch, "files", "~/.cache/tinyhil/models")
    fetch.add_argument("--any-commit", action="store_true",
                       help="when a mirror lacks the pinned commit, take its HEAD (every file is still "
                            "checked against its pinned sha256)")
    fetch.add_argument("--json", action="store_true", help="one JSON line per repository on stdout")
    fetch.set_defaults(func=cmd_models_fetch)
    lst = models_sub.add_parser("list", help="each benchmark's files, where they were found, sha256 ok")
    lst.add_argument("--models-dir", help="directory holding the MLPerf Tiny .tflite files (looked in first)")
    lst.add_argument("--json", action="store_true", help="one JSON line per file on stdout")
    lst.set_defaults(func=cmd_models_list)
