"""Sessions a user runs: `nox -s tests`, `nox -s lint`, `nox -s bench -- --target T`, `nox -s accuracy`,
`nox -s perf`, `nox -s regress`, `nox -s report`, `nox -s compare`, `nox -s speedup`."""

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _machine_pyrenode3() -> str | None:
    """Where the pyrenode3 installed on this machine came from (it is not on PyPI: users
    install it from its repository), so the tests' venv can have the same one."""
    import importlib.metadata
    import json

    try:
        dist = importlib.metadata.distribution("pyrenode3")
    except importlib.metadata.PackageNotFoundError:
        return None
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url")
    return str(url) if url else None


@nox.session
def tests(session: nox.Session) -> None:
    """Install tinyhil with its test extra and run the test suite (with the machine's own
    pyrenode3 too, when it has one, so the Renode tests run through it)."""
    session.install("-e", ".[test]")
    pyrenode3 = _machine_pyrenode3()
    if pyrenode3:
        session.install(pyrenode3)
    session.run("pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the MLPerf Tiny suite on a target: `nox -s bench -- --target stm32f746`."""
    session.install("-e", ".")
    session.run("tinyhil", "bench", *session.posargs)


@nox.session
def accuracy(session: nox.Session) -> None:
    """The full KWS accuracy run on target, all 1000 inputs against the host interpreter:
    `nox -s accuracy` (cortex-m4), or `nox -s accuracy -- --target stm32f405 [--model ad]`."""
    session.install("-e", ".")
    args = list(session.posargs)
    if "--target" not in args:
        args += ["--target", "cortex-m4"]
    if "--model" not in args:
        args += ["--model", "kws"]
    session.run("tinyhil", "bench", "--accuracy", *args)


@nox.session
def perf(session: nox.Session) -> None:
    """Builtin against TFLM (reference and CMSIS-NN kernels when their trees are there) on
    cortex-m4 and stm32f746 (Cortex-M7), with the builtin engine's goals:
    `nox -s perf`, or `nox -s perf -- --model vww --target cortex-m7`."""
    session.install("-e", ".")
    session.run("tinyhil", "perf", *session.posargs)


@nox.session
def regress(session: nox.Session) -> None:
    """Rerun the suite and compare with a baseline; fails on any regression:
    `nox -s regress -- --baseline results/baseline.json`."""
    session.install("-e", ".")
    session.run("tinyhil", "regress", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Render results/*.jsonl (or the files given): `nox -s report -- --html report.html`."""
    session.install("-e", ".")
    session.run("tinyhil", "report", *session.posargs)


@nox.session
def compare(session: nox.Session) -> None:
    """Compression recipes of a float model, run side by side on a target:
    `nox -s compare -- --model ../shared/models/mlperf_tiny/float/kws_ref_model_float32.tflite
    --recipes int8,int8-per-tensor,int16x8,prune50-int8,cluster16-lut --target cortex-m4`."""
    session.install("-e", ".[recipes]")
    session.run("tinyhil", "compare", *session.posargs)


@nox.session
def speedup(session: nox.Session) -> None:
    """--jobs benchmark (prints wall times; not a test): the four MLPerf Tiny models on
    cortex-m4 and cortex-m7 (8 cases) at --jobs 1 and --jobs N (default 2), each from an
    empty build cache, as on a fresh CI runner, then again with the firmware built:
    `nox -s speedup [-- N]`."""
    import os
    import tempfile
    import time

    session.install("-e", ".")
    jobs = session.posargs[0] if session.posargs else "2"
    # The models stay where they are while each run gets an empty cache.
    shared = str(session.run("python", "-c", "from harness.models import find_file; "
                             "r = find_file('models/mlperf_tiny/kws_ref_model.tflite'); print(r.path if r else '')",
                             silent=True) or "").strip()
    if not shared:
        session.error("no MLPerf Tiny models here: run `tinyhil models fetch` first")
    suite = ["bench", "--target", "cortex-m4", "--target", "cortex-m7", "--offline"]
    walls: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in ("1", jobs):
            env = {"TINYHIL_RESULTS": tmp, "TINYHIL_SHARED": shared, "TINYHIL_CACHE": os.path.join(tmp, f"cache{n}")}
            for state in ("cold", "built"):
                start = time.monotonic()
                session.run("tinyhil", *suite, "--jobs", n, env=env)
                walls[(state, n)] = time.monotonic() - start
    for state, what in (("cold", "empty build cache"), ("built", "firmware already built")):
        one, many = walls[(state, "1")], walls[(state, jobs)]
        session.log(f"wall time, 8 cases, {what}: --jobs 1 {one:.1f} s, --jobs {jobs} {many:.1f} s: "
                    f"{one / many:.2f}x on {os.cpu_count()} cores")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over the package: `nox -s lint`."""
    session.install("-e", ".[test]", "ruff>=0.5", "mypy>=1.8")
    session.run("ruff", "check", "harness", "tests", "noxfile.py")
    session.run("mypy", "harness")
