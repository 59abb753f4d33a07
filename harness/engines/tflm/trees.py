"""TFLM's source trees: the pinned commits, where to find the trees, how to fetch them.

tinyhil never copies TFLM (or its third-party code) into its own repository. It
builds from source trees that are either fetched with ``tinyhil tflm fetch``
(git, at the commits pinned in :data:`PINNED`, into
``~/.cache/tinyhil/tflm/<name>-<commit>``) or named by the user with
``--tflm-src PATH`` / ``TINYHIL_TFLM_SRC``.

A ``--tflm-src`` directory holds the trees side by side, each as ``<name>`` or
``<name>-<commit>`` (the fetch cache's own layout, so ``--tflm-src
~/.cache/tinyhil/tflm`` works), or is a tflite-micro checkout whose Makefile
already downloaded its third-party code (``tensorflow/lite/micro/tools/make/
downloads/{flatbuffers,gemmlowp,ruy,cmsis_nn}``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.firmware import cache_dir
from harness.errors import TinyhilError, UserInputError

ENV_VAR = "TINYHIL_TFLM_SRC"
DEFAULT_URL_TEMPLATE = "https://github.com/{repo}.git"
# What a tflite-micro checkout calls each tree under its Makefile's downloads dir.
_MAKE_DOWNLOADS = Path("tensorflow/lite/micro/tools/make/downloads")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PinnedTree:
    """One source tree at the commit tinyhil builds, and where that pin comes from."""

    name: str  # directory name
    repo: str  # owner/name on GitHub
    commit: str
    marker: str  # a file every usable tree has
    pinned_by: str  # the file in tflite-micro (or tinyhil) that names this commit
    kernels: str = ""  # "" = always needed, else only for these kernels
    make_name: str = ""  # its directory name in TFLM's own downloads dir
    patch: str = ""  # a patch inside the tflite-micro tree that TFLM applies after download


TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"

# The commits TFLM's own Makefile downloads at TFLM_COMMIT. CMSIS_6 and Cortex_DFP
# (ext_libs/cmsis_download.sh) are not here: TFLM uses them only for
# cortex_m_generic's DWT timer (micro_time.cc), and CMSIS-NN at the pinned commit
# includes no CMSIS-Core header; tinyhil times with the board's timer.
PINNED: tuple[PinnedTree, ...] = (
    PinnedTree("tflite-micro", "tensorflow/tflite-micro", TFLM_COMMIT,
               "tensorflow/lite/micro/micro_interpreter.h", "tinyhil (harness/engines/tflm/trees.py)"),
    PinnedTree("flatbuffers", "google/flatbuffers", "187240970746d00bbd26b0f5873ed54d2477f9f3",
               "include/flatbuffers/flatbuffers.h",
               "tensorflow/lite/micro/tools/make/flatbuffers_download.sh (tag v25.9.23)",
               make_name="flatbuffers", patch="tensorflow/lite/micro/tools/make/flatbuffers.patch"),
    PinnedTree("gemmlowp", "google/gemmlowp", "719139ce755a0f31cbf1c37f7f98adcc7fc9f425",
               "fixedpoint/fixedpoint.h", "tensorflow/lite/micro/tools/make/third_party_downloads.inc",
               make_name="gemmlowp"),
    PinnedTree("ruy", "google/ruy", "d37128311b445e758136b8602d1bbd2a755e115d",
               "ruy/profiler/instrumentation.h",
               "tensorflow/lite/micro/tools/make/third_party_downloads.inc", make_name="ruy"),
    PinnedTree("cmsis-nn", "ARM-software/CMSIS-NN", "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae",
               "Include/arm_nnfunctions.h", "tensorflow/lite/micro/tools/make/ext_libs/cmsis_nn_download.sh",
               kernels="cmsis-nn", make_name="cmsis_nn"),
)

FETCH_HINT = ("run `tinyhil tflm fetch` (clones the pinned commits into ~/.cache/tinyhil/tflm) "
              f"or point --tflm-src PATH / {ENV_VAR} at existing trees")

# TFLM's flatbuffers.patch starts base.h with this; its absence means an unpatched tree.
_FLATBUFFERS_PATCH_MARK = "For TFLM, we always want FLATBUFFERS_LOCALE_INDEPENDENT"


class TflmTreesMissing(UserInputError):
    """The TFLM source trees are not where tinyhil looked; the message says how to get them."""


@dataclass(frozen=True)
class TflmTrees:
    """Located source trees, by PinnedTree name (cmsis-nn may be absent)."""

    paths: tuple[tuple[str, Path], ...]
    origin: str  # where they were found: "--tflm-src", TINYHIL_TFLM_SRC or the fetch cache

    def path(self, name: str) -> Path:
        for n, p in self.paths:
            if n == name:
                return p
        raise TflmTreesMissing(f"TFLM tree '{name}' not found ({self.origin}): {FETCH_HINT}")

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.paths)

    @property
    def tflm(self) -> Path:
        return self.path("tflite-micro")

    def commit(self, name: str) -> str:
        """The tree's git HEAD, or "unknown" when it is not a git checkout."""
        return git_head(self.path(name))


def git_head(directory: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = out.stdout.strip()
    # A tree copied out of git (no .git of its own) would report an enclosing repository.
    if out.returncode != 0 or not (directory / ".git").exists():
        return "unknown"
    return text


def fetch_cache() -> Path:
    """Where `tinyhil tflm fetch` puts the trees (under TINYHIL_CACHE when set)."""
    return cache_dir() / "tflm"


def _pins(kernels: tuple[str, ...]) -> list[PinnedTree]:
    return [p for p in PINNED if not p.kernels or p.kernels in kernels]


def _candidates(base: Path, pin: PinnedTree) -> list[Path]:
    out = [base / pin.name, base / f"{pin.name}-{pin.commit}"]
    if pin.name == "tflite-micro":
        out.insert(0, base)
    elif pin.make_name:
        for root in (base, base / "tflite-micro", base / f"tflite-micro-{TFLM_COMMIT}"):
            out.append(root / _MAKE_DOWNLOADS / pin.make_name)
    return out


def locate(base: Path, kernels: tuple[str, ...] = ("ref",)) -> tuple[dict[str, Path], list[str]]:
    """The trees found under ``base`` and the names of those missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for pin in PINNED:
        hit = next((c for c in _candidates(base, pin) if (c / pin.marker).is_file()), None)
        if hit is not None:
            found[pin.name] = hit
        elif pin in _pins(kernels):
            missing.append(pin.name)
    return found, missing


def find_trees(src: str | Path | None = None, kernels: tuple[str, ...] = ("ref",)) -> TflmTrees:
    """Locate the trees: ``src`` (--tflm-src), else TINYHIL_TFLM_SRC, else the fetch cache.

    Raises:
        TflmTreesMissing: a needed tree is not there (one line: what is missing,
            where tinyhil looked, and how to get the trees).
    """
    if src is not None:
        base, origin = Path(src).expanduser(), f"--tflm-src {src}"
    elif os.environ.get(ENV_VAR):
        base, origin = Path(os.environ[ENV_VAR]).expanduser(), f"{ENV_VAR}={os.environ[ENV_VAR]}"
    else:
        base, origin = fetch_cache(), f"fetch cache {fetch_cache()}"
    if src is not None or os.environ.get(ENV_VAR):
        if not base.is_dir():
            raise TflmTreesMissing(f"TFLM source directory {base} does not exist ({origin}): {FETCH_HINT}")
    found, missing = locate(base, kernels)
    if missing:
        need = ", ".join(missing)
        raise TflmTreesMissing(f"the tflm engine needs TFLM source trees; missing {need} in {base} "
                               f"({origin}): {FETCH_HINT}")
    fb = found["flatbuffers"] / "include" / "flatbuffers" / "base.h"
    if _FLATBUFFERS_PATCH_MARK not in fb.read_text(errors="replace"):
        patch = found["tflite-micro"] / PINNED[1].patch
        raise TflmTreesMissing(f"{found['flatbuffers']} lacks TFLM's flatbuffers patch: run "
                               f"`git -C {found['flatbuffers']} apply {patch}` (tinyhil tflm fetch does this)")
    return TflmTrees(tuple(found.items()), origin)


# --------------------------------------------------------------------------- fetch

class FetchError(TinyhilError):
    """git could not fetch or check out a pinned tree."""


def _git(args: list[str], what: str) -> None:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise FetchError(f"{what} failed: git {' '.join(args)}: {tail}")


def fetch_tree(pin: PinnedTree, dest: Path, url: str, tflm_dir: Path | None, say: Progress) -> None:
    """Check ``pin`` out into ``dest`` (atomically: a half-done fetch leaves no tree).

    Fetches only the pinned commit (``git fetch --depth 1 URL COMMIT``, which GitHub
    and local repositories allow); when a server refuses that, clones everything
    and checks the commit out. TFLM's patch for the tree, if any, is applied from
    ``tflm_dir`` (the tflite-micro tree) as TFLM's download scripts do.
    """
    if shutil.which("git") is None:
        raise FetchError("git not found: install it (e.g. `sudo apt-get install git`) to fetch the TFLM trees")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q", str(tmp)], f"fetch of {pin.name}")
    say(f"{pin.name}: fetching {pin.commit[:12]} from {url}")
    shallow = subprocess.run(["git", "-C", str(tmp), "fetch", "-q", "--depth", "1", url, pin.commit],
                             capture_output=True, text=True)
    if shallow.returncode != 0:
        say(f"{pin.name}: the server refused a fetch by commit; fetching the whole history")
        _git(["-C", str(tmp), "fetch", "-q", url, "+refs/heads/*:refs/remotes/origin/*",
              "+refs/tags/*:refs/tags/*"], f"fetch of {pin.name} from {url}")
        _git(["-C", str(tmp), "checkout", "-q", "--detach", pin.commit], f"checkout of {pin.name} {pin.commit}")
    else:
        _git(["-C", str(tmp), "checkout", "-q", "--detach", "FETCH_HEAD"], f"checkout of {pin.name}")
    head = git_head(tmp)
    if head != pin.commit:
        raise FetchError(f"{pin.name}: {url} gave commit {head}, expected the pinned {pin.commit}")
    if pin.patch:
        if tflm_dir is None:
            raise FetchError(f"{pin.name}: TFLM's patch {pin.patch} needs the tflite-micro tree first")
        say(f"{pin.name}: applying TFLM's {Path(pin.patch).name}")
        _git(["-C", str(tmp), "apply", "--ignore-space-change", "--ignore-whitespace",
              str(tflm_dir / pin.patch)], f"applying {pin.patch} to {pin.name}")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def fetch_trees(dest_root: Path | None = None, url_template: str = DEFAULT_URL_TEMPLATE,
                progress: Progress | None = None, force: bool = False) -> TflmTrees:
    """Fetch every pinned tree into ``dest_root/<name>-<commit>`` (default: the fetch cache).

    Args:
        dest_root: where the trees go (default ``~/.cache/tinyhil/tflm``).
        url_template: the git URL of each repository, from ``{repo}`` (owner/name),
            ``{owner}`` and ``{name}``; e.g. ``/srv/mirror/{owner}+{name}/repo`` for
            local bare mirrors.
        progress: called with one line per step.
        force: fetch again even when a tree at the pinned commit is present.
    """
    say = progress or (lambda _m: None)
    root = dest_root or fetch_cache()
    if "{" not in url_template:
        raise UserInputError(f"--url-template {url_template!r}: needs {{repo}} or {{owner}}/{{name}} "
                             "to name each repository")
    tflm_dir: Path | None = None
    paths: list[tuple[str, Path]] = []
    for pin in PINNED:
        owner, name = pin.repo.split("/")
        try:
            url = url_template.format(repo=pin.repo, owner=owner, name=name)
        except (KeyError, IndexError) as e:
            raise UserInputError(f"--url-template {url_template!r}: unknown field {e}; "
                                 "use {repo}, {owner} and {name}") from None
        dest = root / f"{pin.name}-{pin.commit}"
        if not force and (dest / pin.marker).is_file() and git_head(dest) == pin.commit:
            say(f"{pin.name}: present at {pin.commit[:12]} ({dest})")
        else:
            fetch_tree(pin, dest, url, tflm_dir, say)
        if pin.name == "tflite-micro":
            tflm_dir = dest
        paths.append((pin.name, dest))
    return TflmTrees(tuple(paths), f"fetched into {root}")
