"""The MLPerf Tiny models and datasets: their pinned sources, where tinyhil looks for them, fetching.

tinyhil never copies the models or the datasets into its own repository. They
come from two public repositories at pinned commits (:func:`sources`):

- mlcommons/tiny: the four int8 reference models, their float originals and one
  ToyADMOS clip for AD;
- eembc/energyrunner: the 1000 KWS inputs and the ground-truth lists
  (``y_labels.csv``) of kws01, ad01, ic01 and vww01.

Every file is checked against a sha256 pinned here (the 1000 KWS inputs in
``harness/models_sha256.txt``, whose own sha256 is pinned here), so a mirror
serves the same bytes or nothing is written.

Layout (the same as this repository's ``../shared``, so either works alike)::

    <root>/models/mlperf_tiny/<int8 model>.tflite
    <root>/models/mlperf_tiny/float/<float model>.tflite
    <root>/datasets/{kws01,ad01,ic01,vww01}/...

Lookup order (:func:`search_roots`): ``TINYHIL_SHARED``, ``../shared`` (next to the
current directory, then next to this repository), then the fetch cache
``~/.cache/tinyhil/models`` (under ``TINYHIL_CACHE`` when set), which
``tinyhil models fetch`` fills. ``--models-dir`` comes before all of them
(harness.bench.resolve_models). See docs/models.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable, Literal

from harness.engines.tflm.trees import DEFAULT_URL_TEMPLATE, FetchError
from harness.errors import TinyhilError, ToolMissingError, UserInputError
from harness.firmware import cache_dir

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "TINYHIL_SHARED"
MODELS_SUBDIR = Path("models") / "mlperf_tiny"
DATASETS_SUBDIR = Path("datasets")
FETCH_COMMAND = "tinyhil models fetch"

Progress = Callable[[str], None]
Kind = Literal["model", "float", "dataset"]

# The 1000 KWS inputs' sha256s, one `sha256sum` line each (paths relative to the
# cache root); this file's own sha256 is pinned so the list cannot drift unseen.
KWS01_SHA256_FILE = "models_sha256.txt"
KWS01_SHA256_FILE_SHA256 = "6c15129c52585736de53fca282111a9d66bf42332ffa8afae6bd4dd3b735f62a"
KWS01_INPUTS = 1000


@dataclass(frozen=True)
class PinnedFile:
    """One file of the cache: where it goes, where it comes from, its sha256."""

    path: str  # relative to the root: models/mlperf_tiny/kws_ref_model.tflite
    source: str  # path inside its repository
    sha256: str
    benchmark: str  # kws, vww, ic, ad
    kind: Kind


@dataclass(frozen=True)
class Source:
    """One repository at the commit tinyhil pins, and the files taken from it."""

    repo: str  # owner/name on GitHub
    commit: str
    licence: str
    files: tuple[PinnedFile, ...]

    @property
    def short(self) -> str:
        return f"{self.repo}@{self.commit[:7]}"


TINY_REPO = "mlcommons/tiny"
TINY_COMMIT = "1afd2c9820f795965a6134facd0b4dfae41ef23f"
RUNNER_REPO = "eembc/energyrunner"
RUNNER_COMMIT = "cf7c2f2634608a7c0ea7458ab7cb3379f2863424"

_TRAINED = "benchmark/training/{}/trained_models/{}"
_M = "models/mlperf_tiny/"

# mlcommons/tiny: the reference models (int8 and float) and the AD clip.
_TINY_FILES = (
    PinnedFile(_M + "kws_ref_model.tflite", _TRAINED.format("keyword_spotting", "kws_ref_model.tflite"),
               "aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae", "kws", "model"),
    PinnedFile(_M + "vww_96_int8.tflite", _TRAINED.format("visual_wake_words", "vww_96_int8.tflite"),
               "597a384c8c2c8a1276f04702f25013b7838f2f814f1ca7c174d295b73e3d6b7b", "vww", "model"),
    PinnedFile(_M + "pretrainedResnet_quant.tflite",
               _TRAINED.format("image_classification", "pretrainedResnet_quant.tflite"),
               "3c002613d1b2475eb51dd78dfb85a546c8ae658dee71cf6ade43b022fe205415", "ic", "model"),
    PinnedFile(_M + "ad01_int8.tflite", _TRAINED.format("anomaly_detection", "ad01_int8.tflite"),
               "87cf24194ef93d1d9b11a591d805526b98008e351655d29883c825c9c106ba24", "ad", "model"),
    PinnedFile(_M + "float/kws_ref_model_float32.tflite",
               _TRAINED.format("keyword_spotting", "kws_ref_model_float32.tflite"),
               "e5004c6f1012246e33fa068d8488325538e0444073cd361f5a7edb40c73f12d2", "kws", "float"),
    PinnedFile(_M + "float/vww_96_float.tflite", _TRAINED.format("visual_wake_words", "vww_96_float.tflite"),
               "115bbc094d2119561320a21f01b6500a18bea8cc8589282ab007097bec8af38c", "vww", "float"),
    PinnedFile(_M + "float/pretrainedResnet.tflite",
               _TRAINED.format("image_classification", "pretrainedResnet.tflite"),
               "b5c0046d6e0328b4956afd6baa29555a29b1f1c65bdd45aaed75b7cd484d9f79", "ic", "float"),
    PinnedFile(_M + "float/ad01_fp32.tflite", _TRAINED.format("anomaly_detection", "ad01_fp32.tflite"),
               "c66636f4d7f8af8b10518e7be750a22c9d8d46ec97326b40b0d94c097e0aad9b", "ad", "float"),
    PinnedFile("datasets/ad01/normal_id_01_00000000_hist_librosa.bin",
               "benchmark/reference_submissions/anomaly_detection/datasets/dcase01/"
               "normal_id_01_00000000_hist_librosa.bin",
               "31bc130d27e3732e1c09db946ccc7bfa130f98739bcd90cfa39d590f61f4d6fa", "ad", "dataset"),
)

# eembc/energyrunner: its datasets/ directory maps one to one onto the cache's.
_RUNNER_LABELS = (
    PinnedFile("datasets/kws01/y_labels.csv", "datasets/kws01/y_labels.csv",
               "6cb3709762d53fe64eb00eaf4a75796248bb3c1386f1d1f93ccdb07b071e9698", "kws", "dataset"),
    PinnedFile("datasets/ad01/y_labels.csv", "datasets/ad01/y_labels.csv",
               "4ecd91868e197ee0a6739d4bd7abde73eac2fa31e9a88d6bc6aedefa136ff2a4", "ad", "dataset"),
    PinnedFile("datasets/ic01/y_labels.csv", "datasets/ic01/y_labels.csv",
               "f7d22979b6f81a3dbf83e7a09ac488d0eb6090b62e4a02bc30245581c0802ec7", "ic", "dataset"),
    PinnedFile("datasets/vww01/y_labels.csv", "datasets/vww01/y_labels.csv",
               "3697ca57c48b23b21602ae9bdb32b1925407a1d41d79167cdfb365054cb9c33d", "vww", "dataset"),
)

# Benchmark -> (int8 model, float model, dataset directory), all relative to a root.
BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "kws": (_M + "kws_ref_model.tflite", _M + "float/kws_ref_model_float32.tflite", "datasets/kws01"),
    "vww": (_M + "vww_96_int8.tflite", _M + "float/vww_96_float.tflite", "datasets/vww01"),
    "ic": (_M + "pretrainedResnet_quant.tflite", _M + "float/pretrainedResnet.tflite", "datasets/ic01"),
    "ad": (_M + "ad01_int8.tflite", _M + "float/ad01_fp32.tflite", "datasets/ad01"),
}


class ChecksumError(TinyhilError):
    """A file's sha256 is not the pinned one; nothing was written."""


class ModelsMissing(UserInputError):
    """An MLPerf Tiny model is nowhere in the lookup order and fetching is not allowed."""


@lru_cache(maxsize=1)
def _kws01_inputs() -> tuple[PinnedFile, ...]:
    raw = resources.files("harness").joinpath(KWS01_SHA256_FILE).read_bytes()
    got = hashlib.sha256(raw).hexdigest()
    if got != KWS01_SHA256_FILE_SHA256:
        raise ChecksumError(f"harness/{KWS01_SHA256_FILE}: sha256 {got}, expected the pinned "
                            f"{KWS01_SHA256_FILE_SHA256} (harness/models.py): reinstall tinyhil")
    out = []
    for line in raw.decode().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, path = line.split(maxsplit=1)
            out.append(PinnedFile(path, path, digest, "kws", "dataset"))
    if len(out) != KWS01_INPUTS:
        raise ChecksumError(f"harness/{KWS01_SHA256_FILE}: {len(out)} KWS inputs, expected {KWS01_INPUTS}")
    return tuple(out)


@lru_cache(maxsize=1)
def sources() -> tuple[Source, ...]:
    """The two pinned repositories and every file tinyhil takes from them."""
    return (
        Source(TINY_REPO, TINY_COMMIT, "Apache-2.0", _TINY_FILES),
        Source(RUNNER_REPO, RUNNER_COMMIT, "Copyright EEMBC (no licence file; the KWS inputs derive "
                                           "from Speech Commands v2, CC BY 4.0)",
               _RUNNER_LABELS + _kws01_inputs()),
    )


def pinned_files() -> tuple[PinnedFile, ...]:
    return tuple(f for s in sources() for f in s.files)


def cache_root() -> Path:
    """Where `tinyhil models fetch` puts the files (under TINYHIL_CACHE when set)."""
    return cache_dir() / "models"


def display(path: Path) -> str:
    """``path`` with the home directory written as ``~``."""
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- lookup

@dataclass(frozen=True)
class Root:
    """A directory laid out like ../shared, and why tinyhil looks there."""

    path: Path
    origin: str  # TINYHIL_SHARED, ../shared, fetch cache


def search_roots() -> list[Root]:
    """The roots in lookup order: TINYHIL_SHARED, ../shared, the fetch cache (duplicates once)."""
    roots: list[Root] = []
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Root(Path(env).expanduser(), ENV_VAR))
    roots += [Root(Path.cwd().parent / "shared", "../shared"), Root(REPO.parent / "shared", "../shared"),
              Root(cache_root(), "fetch cache")]
    seen: set[Path] = set()
    out = []
    for r in roots:
        key = r.path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def find_file(relpath: str, roots: list[Root] | None = None) -> Root | None:
    """The first root (in lookup order) holding ``relpath``, or None."""
    for r in roots if roots is not None else search_roots():
        if (r.path / relpath).exists():
            return r
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_files(root: Path, files: tuple[PinnedFile, ...] | list[PinnedFile]) -> tuple[list[str], list[str]]:
    """The files under ``root`` that are missing, and those whose sha256 is not the pinned one."""
    missing, differ = [], []
    for f in files:
        p = root / f.path
        if not p.is_file():
            missing.append(f.path)
        elif sha256_file(p) != f.sha256:
            differ.append(f.path)
    return missing, differ


# --------------------------------------------------------------------------- fetch

@dataclass(frozen=True)
class Fetched:
    """What one source contributed: fetched now (at ``commit``) or already present and verified."""

    repo: str
    commit: str  # the commit the files came from ("" when present already)
    url: str
    files: int
    fetched: bool


def _url(template: str, repo: str) -> str:
    if "{" not in template:
        raise UserInputError(f"--url-template {template!r}: needs {{repo}} or {{owner}}/{{name}} "
                             "to name each repository")
    owner, name = repo.split("/")
    try:
        return template.format(repo=repo, owner=owner, name=name)
    except (KeyError, IndexError) as e:
        raise UserInputError(f"--url-template {template!r}: unknown field {e}; "
                             "use {repo}, {owner} and {name}") from None


def _is_local(url: str) -> bool:
    return url.startswith(("/", "./", "../", "~", "file://")) or (len(url) > 1 and url[1] == ":")


def _git(work: Path, *args: str, check: str = "") -> subprocess.CompletedProcess[str]:
    """``git -C work args``; a failure raises FetchError saying what ``check`` was doing."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # a wrong URL fails, never asks for a password
    proc = subprocess.run(["git", "-C", str(work), *args], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise FetchError(f"{check} failed: git {' '.join(args)}: {_tail(proc)}")
    return proc


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    return " | ".join([line for line in proc.stderr.splitlines() if line.strip()][-3:])


def _checkout(source: Source, url: str, work: Path, any_commit: bool, say: Progress,
              sparse: tuple[str, ...] = ()) -> str:
    """Fetch ``source``'s pinned commit (only its needed files' blobs) into a new
    repository at ``work`` and check those files out; returns the commit used.
    ``sparse``: sparse-checkout patterns to check out instead of ``source.files``
    (harness.mlperf_runner: ``benchmark/runner``'s files, not its recordings)."""
    work.mkdir(parents=True)
    _git(work, "init", "-q", check=f"git init in {work}")
    _git(work, "remote", "add", "origin", url, check="git remote add")
    if _is_local(url):
        # A local mirror may itself be a partial clone; its upload-pack serves a
        # blob filter only when told to (uploadpack.allowFilter, off by default).
        _git(work, "config", "remote.origin.uploadpack", "git -c uploadpack.allowFilter=true upload-pack",
             check="git config")
    _git(work, "config", "core.sparseCheckout", "true", check="git config")
    info = work / ".git" / "info"
    info.mkdir(parents=True, exist_ok=True)
    patterns = sparse or tuple(f"/{f.source}" for f in source.files)
    (info / "sparse-checkout").write_text("".join(f"{p}\n" for p in patterns))
    say(f"{source.repo}: fetching {source.commit[:12]} from {url} "
        f"({', '.join(sparse) if sparse else f'{len(source.files)} files'})")
    reach = _git(work, "ls-remote", "origin", "HEAD")
    if reach.returncode != 0:
        raise FetchError(f"cannot read {url} ({source.repo}): {_tail(reach)}: check the network, or name "
                         "a mirror with --url-template (docs/models.md); nothing was written")
    fetch = ["fetch", "-q", "--filter=blob:none"]
    rev = "FETCH_HEAD"
    if _git(work, *fetch, "--depth", "1", "origin", source.commit).returncode != 0:
        say(f"{source.repo}: {url} did not serve {source.commit[:12]} by its hash; fetching its branches")
        _git(work, *fetch, "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*",
             check=f"fetch of {source.repo} from {url}")
        if _git(work, "rev-parse", "-q", "--verify", f"{source.commit}^{{commit}}").returncode == 0:
            rev = source.commit
        elif any_commit:
            _git(work, *fetch, "--depth", "1", "origin", "HEAD", check=f"fetch of {url}'s HEAD")
            head = _git(work, "rev-parse", "FETCH_HEAD", check="git rev-parse").stdout.strip()
            say(f"{source.repo}: {url} lacks the pinned {source.commit[:12]}; --any-commit: using its HEAD "
                f"{head[:12]} (every file is still checked against its pinned sha256)")
        else:
            raise FetchError(f"{url} has no commit {source.commit} ({source.repo}'s pinned commit): use a "
                             "mirror that has it, or pass --any-commit to take the mirror's HEAD (every "
                             "file is still checked against its pinned sha256)")
    _git(work, "checkout", "-q", "--detach", rev, check=f"checkout of {source.repo} {rev}")
    return _git(work, "rev-parse", "HEAD", check="git rev-parse").stdout.strip()


def fetch_models(dest_root: Path | None = None, url_template: str = DEFAULT_URL_TEMPLATE,
                 progress: Progress | None = None, force: bool = False,
                 any_commit: bool = False) -> list[Fetched]:
    """Fetch the pinned models and datasets into ``dest_root`` (default: the fetch cache).

    A source whose files are all present with their pinned sha256 is skipped (unless
    ``force``). The others are fetched with git into a temporary directory inside
    ``dest_root``; every file is checked against its pinned sha256 and only when all
    match are they renamed into place, so a failure leaves the root as it was.

    Args:
        dest_root: where the files go (default ``~/.cache/tinyhil/models``).
        url_template: each repository's git URL from ``{repo}`` (owner/name), ``{owner}``
            and ``{name}``; e.g. ``/srv/mirror/{owner}+{name}/repo`` for local mirrors.
        progress: called with one line per step.
        force: fetch again even when the files are present and verified.
        any_commit: when a mirror lacks the pinned commit, take its HEAD instead
            (the files must still have their pinned sha256).

    Raises:
        ToolMissingError: git is not installed.
        FetchError: git could not fetch a repository, or a file is missing from it.
        ChecksumError: a file's sha256 differs from the pinned one (nothing written).
    """
    say = progress or (lambda _m: None)
    root = dest_root or cache_root()
    urls = {s.repo: _url(url_template, s.repo) for s in sources()}
    out: list[Fetched] = []
    todo: list[Source] = []
    for s in sources():
        missing, differ = check_files(root, s.files) if not force else ([], [])
        if not force and not missing and not differ:
            say(f"{s.repo}: {len(s.files)} files present and verified in {display(root)}")
            out.append(Fetched(s.repo, "", urls[s.repo], len(s.files), False))
        else:
            todo.append(s)
    if not todo:
        return out
    if shutil.which("git") is None:
        raise ToolMissingError(f"git not found: install it (e.g. `sudo apt-get install git`) to fetch the "
                               f"MLPerf Tiny models into {display(root)}")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
    try:
        for s in todo:
            work = staging / f".git-{s.repo.replace('/', '+')}"
            commit = _checkout(s, urls[s.repo], work, any_commit, say)
            for f in s.files:
                src = work / f.source
                if not src.is_file():
                    raise FetchError(f"{s.repo}@{commit[:12]} ({urls[s.repo]}) has no {f.source} (for "
                                     f"{f.path}): nothing was written to {display(root)}")
                got = sha256_file(src)
                if got != f.sha256:
                    raise ChecksumError(f"{f.path} (from {s.repo} {f.source} at {commit[:12]}, {urls[s.repo]}): "
                                        f"sha256 {got}, expected the pinned {f.sha256}: refused, nothing was "
                                        f"written to {display(root)}")
                dst = staging / f.path
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
            say(f"{s.repo}: {len(s.files)} files verified (sha256)")
            out.append(Fetched(s.repo, commit, urls[s.repo], len(s.files), True))
        for s in todo:  # all verified: into place
            for f in s.files:
                dst = root / f.path
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / f.path, dst)
        say(f"installed {sum(len(s.files) for s in todo)} files into {display(root)}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def offline_error(what: str) -> ModelsMissing:
    """The one-line error for a model that is nowhere and may not be fetched."""
    looked = ", ".join(f"{r.origin} {display(r.path)}" for r in search_roots())
    return ModelsMissing(f"{what} not found (looked in {looked}) and --offline: run `{FETCH_COMMAND}` "
                         f"(or pass --models-dir DIR, or set {ENV_VAR})")
