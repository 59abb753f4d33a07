"""Sessions a user runs: `nox -s tests`, `nox -s bench -- --target T`."""

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Install tinyhil with its test extra and run the test suite."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the MLPerf Tiny suite on a target: `nox -s bench -- --target stm32f746`."""
    session.install("-e", ".")
    session.run("tinyhil", "bench", *session.posargs)
