"""Runners: each hosts a firmware image and returns raw measurements (a RunRecord).

A runner implements :class:`harness.runners.base.Runner` and describes itself to
the registry with a :class:`RunnerKind` (in the spirit of labgrid's driver
registration): its ``--runner`` name, the descriptor table that says a target
supports it, the firmware build variant it runs, whether it needs ``--port``,
what it needs on this host, and how to make one. ``harness.hosting`` and the
CLI only ask the registry; adding a runner is one module (listed in
:data:`RUNNER_MODULES`) plus its descriptor table (docs/architecture.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from harness.runners.base import RunJob, RunRecord, Runner

if TYPE_CHECKING:
    from harness.build import System
    from harness.targets import TargetDescriptor

RUNNER_MODULES = ("harness.runners.qemu", "harness.runners.renode", "harness.runners.board",
                  "harness.runners.labgrid")


@dataclass(frozen=True)
class RunnerKind:
    """A runner as the registry knows it."""

    name: str  # what --runner takes
    table: str  # the descriptor table that enables it ([qemu], [renode], [chip])
    build_variant: str  # harness.build.variant_target: "emulator", "chip" or "board"
    needs_port: bool
    # (usable here, notes or reasons) for one target on this host, beyond its compiler
    host_check: Callable[[TargetDescriptor, str | None, System], tuple[bool, list[str]]]
    # the runner for these targets, every tool it needs found or installed (raises ToolMissingError)
    create: Callable[[list[TargetDescriptor], str | None], Runner]
    help: str = ""
    # Hosts several firmwares at once (the suite's --jobs): an emulator in its own
    # processes can; one board on one port, or Renode in this process, cannot.
    parallel: bool = False


_REGISTRY: dict[str, RunnerKind] = {}


def register(kind: RunnerKind) -> RunnerKind:
    _REGISTRY[kind.name] = kind
    return kind


def _load() -> None:
    for module in RUNNER_MODULES:
        importlib.import_module(module)


def kinds() -> tuple[RunnerKind, ...]:
    """Every registered runner, in RUNNER_MODULES order (whatever order they were imported in)."""
    _load()

    def rank(kind: RunnerKind) -> int:
        module = getattr(kind.create, "__module__", "")
        return RUNNER_MODULES.index(module) if module in RUNNER_MODULES else len(RUNNER_MODULES)

    return tuple(sorted(_REGISTRY.values(), key=rank))


def get(name: str) -> RunnerKind:
    from harness.errors import UserInputError

    _load()
    if name not in _REGISTRY:
        raise UserInputError(f"--runner {name!r}: unknown (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


__all__ = ["RUNNER_MODULES", "RunJob", "RunRecord", "Runner", "RunnerKind", "get", "kinds", "register"]
