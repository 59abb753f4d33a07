"""The suite: cases in, result rows out, one at a time, for every command that benches.

``run_suite(cases, runner, options, on_event)`` yields each case's row as soon as it
is finished, so the caller can append it to its files before the next case starts (a
Ctrl-C or a crash later keeps it). A model that does not fit its target is a row with
status ``does_not_fit`` and the overflow in bytes (a chip comparison's normal result),
and the suite goes on. Events (``SuiteEvent``) drive progress displays and logs; the
suite itself prints nothing.

    for row in run_suite(cases, runner, SuiteOptions(runs=1), on_event=show):
        sink.append(row)
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

from harness.bench import AccuracyPlan, BenchCase, run_case, unbuilt_row
from harness.errors import DoesNotFitError, UserInputError
from harness.results import ResultRow
from harness.runners.base import Runner


@dataclass(frozen=True)
class SuiteOptions:
    """How every case runs; checked by :meth:`check` before any work."""

    runs: int = 1
    warmup: int = 0
    timeout_s: float = 300.0
    profile: bool = False
    accuracy: dict[Path, AccuracyPlan] = field(default_factory=dict)  # by model path (--accuracy)

    def check(self) -> None:
        """Bad numbers are exit 2 before any build: runs >= 1, warmup >= 0, a finite timeout > 0."""
        if not isinstance(self.runs, int) or self.runs < 1:
            raise UserInputError(f"--runs {self.runs}: expected a number of timed inferences >= 1")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise UserInputError(f"--warmup {self.warmup}: expected a number of untimed inferences >= 0")
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise UserInputError(f"--timeout {self.timeout_s}: expected a finite number of seconds > 0")


@dataclass(frozen=True)
class SuiteEvent:
    """What the suite is doing: ``kind`` is "case" (a case starts), "note" (a step of it),
    "inputs" (accuracy inputs done of total) or "row" (a case's row is ready)."""

    kind: str
    case: BenchCase
    index: int  # 0-based position of the case
    total: int  # number of cases
    message: str = ""
    done: int = 0
    of: int = 0
    row: ResultRow | None = None


OnEvent = Callable[[SuiteEvent], None]


T = TypeVar("T")
R = TypeVar("R")


class _NotStarted(Exception):
    """Work :func:`in_parallel` did not start because another item raised."""


def in_parallel(items: Sequence[T], work: Callable[[T], R], jobs: int) -> Iterator[R]:
    """``work`` on every item, ``jobs`` at a time (threads), each result yielded as soon as
    it is ready (in order when ``jobs`` is 1). When one raises, no other starts; those
    running finish, their results are yielded, then the exception propagates. A consumer
    that stops early (or Ctrl-C) starts nothing new and waits for the running ones."""
    if jobs < 1:
        raise UserInputError(f"--jobs {jobs}: expected a number of cases to run at once >= 1")
    if jobs == 1 or len(items) <= 1:
        for item in items:
            yield work(item)
        return
    stop = threading.Event()

    def guarded(item: T) -> R:
        if stop.is_set():
            raise _NotStarted()
        try:
            return work(item)
        except BaseException:
            stop.set()
            raise

    pool = ThreadPoolExecutor(max_workers=min(jobs, len(items)), thread_name_prefix="tinyhil-case")
    pending = {pool.submit(guarded, item) for item in items}
    error: BaseException | None = None
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                exc = None if future.cancelled() else future.exception()
                if future.cancelled() or isinstance(exc, _NotStarted):
                    continue
                if exc is not None:
                    error = error or exc
                    continue
                yield future.result()
    finally:
        stop.set()
        for other in pending:
            other.cancel()
        pool.shutdown(wait=True)
    if error is not None:
        raise error


def run_suite(cases: Sequence[BenchCase], runner: Runner, options: SuiteOptions,
              on_event: OnEvent | None = None, jobs: int = 1) -> Iterator[ResultRow]:
    """Run each case and yield its row as soon as it is finished (:func:`run_suite_indexed`
    without the cases' indexes)."""
    for _index, row in run_suite_indexed(cases, runner, options, on_event, jobs):
        yield row


def run_suite_indexed(cases: Sequence[BenchCase], runner: Runner, options: SuiteOptions,
                      on_event: OnEvent | None = None, jobs: int = 1) -> Iterator[tuple[int, ResultRow]]:
    """Run each case and yield (its index in ``cases``, its row) as soon as it is finished.

    User mistakes found before work (bad numbers) raise UserInputError; a case whose
    model does not fit its target yields a ``does_not_fit`` row; a run that fails yields
    a ``failed`` row. Everything else a case raises propagates (the rows already
    yielded are the caller's to keep).

    ``jobs`` > 1 runs that many cases at once (threads: the work is compilers and
    emulators in their own processes), for runners that host several firmwares at a
    time (QEMU). Rows come in the order cases finish, each the moment it does; a row is
    the same as a serial run's (counts are deterministic). Events arrive one at a time
    (serialized), from the workers' threads. A case that raises stops the others from
    starting; the running ones finish and their rows are yielded before it propagates.
    """
    options.check()
    lock = threading.Lock()
    user_emit = on_event or (lambda _e: None)

    def emit(event: SuiteEvent) -> None:
        with lock:
            user_emit(event)

    total = len(cases)

    def one(index: int, case: BenchCase) -> tuple[int, ResultRow]:
        emit(SuiteEvent("case", case, index, total))

        def note(msg: str) -> None:
            emit(SuiteEvent("note", case, index, total, message=msg))

        def on_input(done: int, of: int) -> None:
            emit(SuiteEvent("inputs", case, index, total, done=done, of=of))

        try:
            row = run_case(case, runner, options.runs, options.warmup, options.timeout_s, note,
                           accuracy=options.accuracy.get(case.model_path), profile=options.profile,
                           on_input=on_input)
        except DoesNotFitError as e:
            row = unbuilt_row(case, runner.name, "does_not_fit", str(e).splitlines()[0])
        emit(SuiteEvent("row", case, index, total, row=row))
        return index, row

    yield from in_parallel(list(enumerate(cases)), lambda item: one(*item), jobs)


__all__ = ["OnEvent", "SuiteEvent", "SuiteOptions", "in_parallel", "run_suite", "run_suite_indexed"]
