"""The built wheel works for someone who found tinyhil on PyPI: outside this repository,
with no ../shared, it lists its targets, fetches the models (from a local bare repository,
never the network) and benches KWS, rows in the current directory's ./results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.models import sources
from tests.test_models_fetch import _shared_root, make_mirror

REPO = Path(__file__).resolve().parents[1]


def _wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of this checkout (no build isolation: setuptools is in the test venv)."""
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(out), str(REPO)], check=True, capture_output=True, text=True)
    (wheel,) = out.glob("tinyhil-*.whl")
    return wheel


@pytest.mark.qemu
def test_the_wheel_runs_outside_the_repository(tmp_path: Path, arm_tools: tuple[str, str]) -> None:
    wheel = _wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    # Its data: every target descriptor and firmware template, the cycle tables, the KWS checksums.
    for folder, pattern in (("targets", "*.toml"), ("firmware_templates", "**/*.[ch]")):
        expected = {f"harness/_data/{folder}/{p.relative_to(REPO / folder)}" for p in (REPO / folder).glob(pattern)}
        assert expected and expected <= set(names), sorted(expected - set(names))[:5]
    assert "harness/models_sha256.txt" in names and "harness/cycles/tinyhil_cycles.c" in names
    assert not any(n.endswith(".tflite") for n in names)  # models are fetched, never shipped

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    mirrors = tmp_path / "mirrors"
    for s in sources():
        make_mirror(mirrors, s, _shared_root())
    work = tmp_path / "somewhere"  # no ../shared beside it, no repository above it
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("TINYHIL_SHARED", "TINYHIL_RESULTS")}
    env.update(PYTHONPATH=str(site), TINYHIL_CACHE=str(tmp_path / "cache"), NO_COLOR="1")

    def tinyhil(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", *argv], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900)

    where = subprocess.run([sys.executable, "-c", "import harness; print(harness.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the wheel's copy, not this checkout

    listed = tinyhil("targets", "--json")
    assert listed.returncode == 0, listed.stderr
    targets = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {t["name"] for t in targets} == {p.stem for p in (REPO / "targets").glob("*.toml")}

    offline = tinyhil("bench", "--target", "cortex-m4", "--model", "kws", "--offline")
    assert offline.returncode == 2 and "tinyhil models fetch" in offline.stderr
    assert len(offline.stderr.strip().splitlines()) == 1, offline.stderr

    fetched = tinyhil("models", "fetch", "--any-commit", "--url-template", f"{mirrors}/{{owner}}+{{name}}.git")
    assert fetched.returncode == 0, fetched.stderr

    bench = tinyhil("bench", "--target", "cortex-m4", "--model", "kws", "--offline", "--json")
    assert bench.returncode == 0, bench.stderr
    (row,) = [json.loads(line) for line in bench.stdout.splitlines()]
    assert row["status"] == "ok" and row["output_matches_reference"] is True and row["instructions"] > 2_656_768
    (rows_file,) = (work / "results").glob("bench-*.jsonl")  # the user's directory, not site-packages
    assert json.loads(rows_file.read_text()) == row
    assert not (site / "results").exists()
