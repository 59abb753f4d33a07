"""`tinyhil models fetch` from local bare repositories made here (never the network), the
sha256 check, and the lookup order (--models-dir, TINYHIL_SHARED, ../shared, the fetch cache)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

import harness.models
from harness.bench import resolve_models
from harness.cli import main
from harness.engines.tflm.trees import FetchError
from harness.errors import ToolMissingError
from harness.models import Source, check_files, pinned_files, sources
from tests.conftest import DATASETS, MODELS

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed (apt-get install git)")

KWS_INPUT = "datasets/kws01/tst_000003_Up_8.bin"


def _git(*args: str | Path) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main",
                    *map(str, args)], check=True, capture_output=True)


def make_mirror(into: Path, source: Source, shared: Path, tamper: str = "") -> Path:
    """A bare repository holding ``source``'s files at their paths in the real repository
    (copied from ../shared), one commit; ``tamper`` (a cache path) gets other bytes."""
    owner, name = source.repo.split("/")
    work = into / f"work-{owner}+{name}"
    for f in source.files:
        dst = work / f.source
        dst.parent.mkdir(parents=True, exist_ok=True)
        if f.path == tamper:
            dst.write_bytes(b"not the pinned bytes\n")
        else:
            shutil.copyfile(shared / f.path, dst)
    _git("init", "-q", work)
    _git("-C", work, "add", "-A")
    _git("-C", work, "commit", "-q", "-m", "mirror")
    bare = into / f"{owner}+{name}.git"
    _git("clone", "-q", "--bare", work, bare)
    shutil.rmtree(work)
    return bare


def _shared_root() -> Path:
    if not MODELS.is_dir() or not DATASETS.is_dir():
        pytest.skip(f"MLPerf Tiny models/datasets not found at {MODELS.parent.parent} (set TINYHIL_SHARED)")
    return MODELS.parent.parent


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A --url-template for bare repositories of both sources (which lack the pinned commits)."""
    root = tmp_path_factory.mktemp("mirrors")
    for s in sources():
        make_mirror(root, s, _shared_root())
    return f"{root}/{{owner}}+{{name}}.git"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No TINYHIL_SHARED, no ../shared (neither next to the cwd nor next to the repo): only the
    fetch cache, under a fresh TINYHIL_CACHE; returns the cache root."""
    monkeypatch.delenv("TINYHIL_SHARED", raising=False)
    monkeypatch.setenv("TINYHIL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(harness.models, "REPO", tmp_path / "repo")
    return tmp_path / "cache" / "models"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_fetch_from_mirrors_verifies_every_file(mirrors: str, isolated: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "models", "fetch", "--url-template", mirrors, "--any-commit")
    assert code == 0, err
    assert "--any-commit: using its HEAD" in err and "still checked against its pinned sha256" in err
    files = pinned_files()
    assert len(files) == 9 + 4 + 1000
    assert check_files(isolated, files) == ([], [])
    assert sorted(p.name for p in (isolated / "models" / "mlperf_tiny").iterdir()) == [
        "ad01_int8.tflite", "float", "kws_ref_model.tflite", "pretrainedResnet_quant.tflite", "vww_96_int8.tflite"]
    assert not list(isolated.glob(".fetch-*"))  # the staging directory is gone
    assert "sha256 verified" in out

    code, out, err = run(capsys, "models", "fetch", "--url-template", mirrors)  # present: no git at all
    assert code == 0 and "present and verified" in err

    code, out, err = run(capsys, "models", "list", "--json")
    assert code == 0
    assert '"found_in": "fetch cache"' in out and '"sha256": "ok"' in out and "differ" not in out


def test_mirror_without_the_pinned_commit_needs_any_commit(mirrors: str, isolated: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "fetch", "--url-template", mirrors)
    assert code == 1
    assert "has no commit 1afd2c9820f795965a6134facd0b4dfae41ef23f" in err and "--any-commit" in err
    assert not isolated.exists() or not any(isolated.rglob("*"))


def test_tampered_file_is_refused_and_nothing_written(tmp_path: Path, isolated: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    tiny, runner = sources()
    make_mirror(tmp_path, tiny, _shared_root())
    make_mirror(tmp_path, runner, _shared_root(), tamper=KWS_INPUT)
    expected = next(f.sha256 for f in runner.files if f.path == KWS_INPUT)
    template = f"{tmp_path}/{{owner}}+{{name}}.git"
    code, _, err = run(capsys, "models", "fetch", "--any-commit", "--url-template", template)
    assert code == 1
    flat = " ".join(err.split())
    assert KWS_INPUT in flat and f"expected the pinned {expected}" in flat and "refused" in flat
    got = hashlib.sha256(b"not the pinned bytes\n").hexdigest()
    assert f"sha256 {got}" in flat
    # Nothing half-written: not even mlcommons/tiny's (verified) files, no staging left.
    assert isolated.is_dir() and not any(isolated.iterdir())


def test_lookup_order_ends_at_the_fetch_cache(mirrors: str, isolated: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "models", "fetch", "--any-commit", "--url-template", mirrors)[0] == 0
    (bench, path, ds), = resolve_models(["kws"])
    assert path == isolated / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
    assert ds == isolated / "datasets" / "kws01"

    # ../shared next to the current directory comes before the cache ...
    shared = tmp_path / "shared"
    (shared / "models" / "mlperf_tiny").mkdir(parents=True)
    shutil.copyfile(path, shared / "models" / "mlperf_tiny" / "kws_ref_model.tflite")
    (_, path2, ds2), = resolve_models(["kws"])
    assert path2 == shared / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
    assert ds2 == isolated / "datasets" / "kws01"  # its root has no datasets/kws01: the next root's
    # ... TINYHIL_SHARED before ../shared, and --models-dir before everything.
    env = tmp_path / "env"
    shutil.copytree(shared, env)
    monkeypatch.setenv("TINYHIL_SHARED", str(env))
    assert resolve_models(["kws"])[0][1] == env / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copyfile(path, mine / "kws_ref_model.tflite")
    assert resolve_models(["kws"], mine)[0][1] == mine / "kws_ref_model.tflite"


def test_offline_with_nothing_is_one_line_naming_models_fetch(isolated: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "bench", "--model", "kws", "--offline")
    assert code == 2
    assert "`tinyhil models fetch`" in err and "--offline" in err and "kws_ref_model.tflite" in err
    assert len(err.strip().splitlines()) == 1, err


def test_bench_fetches_a_missing_model_once_saying_so(mirrors: str, isolated: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    real = harness.models.fetch_models
    calls = []

    def from_mirrors() -> object:  # the default URL is GitHub's: tests never use the network
        calls.append(1)
        return real(url_template=mirrors, any_commit=True)

    monkeypatch.setattr(harness.models, "fetch_models", from_mirrors)
    models = resolve_models(["kws", "ad"])
    assert [p for _, p, _ in models] == [isolated / "models" / "mlperf_tiny" / n
                                         for n in ("kws_ref_model.tflite", "ad01_int8.tflite")]
    assert models[1][2] == isolated / "datasets" / "ad01"
    assert calls == [1]
    err = capsys.readouterr().err
    assert err == ("fetching the MLPerf Tiny models from mlcommons/tiny@1afd2c9 into "
                   f"{harness.models.display(isolated)} (tinyhil models fetch)\n")


def test_missing_git_names_the_install_command(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(ToolMissingError, match="apt-get install git"):
        harness.models.fetch_models(url_template="/nowhere/{repo}")


def test_bad_url_template_is_a_user_error(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "fetch", "--url-template", "/srv/{nope}")
    assert code == 2 and "unknown field" in err


def test_unreachable_url_and_a_failed_bench_fetch_say_what_to_do(tmp_path: Path, isolated: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "models", "fetch", "--url-template", f"{tmp_path}/none/{{repo}}")
    assert code == 1 and f"cannot read {tmp_path}/none/mlcommons/tiny" in " ".join(err.split())

    def unreachable() -> None:
        raise FetchError("cannot read https://github.com/mlcommons/tiny.git (mlcommons/tiny): no network")

    monkeypatch.setattr(harness.models, "fetch_models", unreachable)
    code, _, err = run(capsys, "bench", "--model", "vww")
    flat = " ".join(err.split())
    assert code == 1 and "no network" in flat and "tinyhil models fetch --url-template T" in flat
