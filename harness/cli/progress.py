"""Progress on every long step: live bars on a terminal, plain lines in a log.

``progress_display()`` gives rich's ``Progress`` when stderr is a terminal and a
:class:`PlainProgress` with the same calls otherwise (CI, ``nohup``, ``2> log``):
one line per step, prefixed with the elapsed time, and for counted steps (accuracy
inputs, the TFLM library's files) the count every tenth of the way, so a log shows
where a long run is and nothing floods it. rich honours ``NO_COLOR`` on a terminal.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.cli.common import err_console


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    printed: str = ""  # the last line written for this task
    printed_step: int = -1  # the last tenth of the total written


# A count inside a step's text ("TFLM library (ref kernels): 120/412 files compiled").
_COUNT = re.compile(r"(\d[\d,]*)/(\d[\d,]*)")


def _tenth(description: str) -> tuple[str, int] | None:
    """The text with its count masked, and how many tenths of the way the count is."""
    m = _COUNT.search(description)
    if not m:
        return None
    done, total = (int(g.replace(",", "")) for g in m.groups())
    return _COUNT.sub("#/#", description), (10 * done // total if total else 0)


class PlainProgress:
    """The calls the CLI makes on ``rich.progress.Progress``, as plain lines."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.start = time.monotonic()
        self.tasks: dict[int, _Task] = {}
        self._next_id = 0  # never reused: a removed task's id must not name a later one

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        task_id = self._next_id
        self._next_id += 1
        self.tasks[task_id] = _Task(description, total)
        self._emit(self.tasks[task_id])
        return task_id

    def update(self, task_id: int, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, advance: float | None = None, **_: Any) -> None:
        task = self.tasks[task_id]
        if description is not None:
            task.description = description
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        self._emit(task)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def remove_task(self, task_id: int) -> None:
        self.tasks.pop(task_id, None)

    def _emit(self, task: _Task) -> None:
        counted = bool(task.total)
        step = int(10 * task.completed / task.total) if task.total else 0
        line = task.description + (f" ({task.completed:,.0f}/{task.total:,.0f})" if counted else "")
        # A new description is a new step; a count (the task's, or one inside its text)
        # is written each tenth of the way and at the end.
        inner, before = _tenth(task.description), _tenth(task.printed)
        if inner is not None and before is not None and inner[0] == before[0]:
            if inner[1] <= before[1]:
                return
        elif task.description == task.printed and not (counted and step > task.printed_step):
            return
        # Descriptions are rich markup (escaped by their callers), as for the live display.
        seconds = time.monotonic() - self.start
        self.console.print(escape(f"[{seconds:6.1f}s] ") + line, highlight=False, soft_wrap=True)
        task.printed, task.printed_step = task.description, step


def progress_display(kind: str = "bar", transient: bool = True) -> Any:
    """Live progress for a long step: ``kind`` "bar" (counted work: a bar, n/total and
    the time) or "spinner" (steps of unknown length). Plain lines when stderr is not a
    terminal. Use as a context manager; the result has rich Progress's task calls."""
    if not err_console.is_terminal:
        return PlainProgress(err_console)
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)

    columns: tuple[Any, ...] = ((TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn()) if kind == "bar"
                                else (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()))
    return Progress(*columns, console=err_console, transient=transient)
