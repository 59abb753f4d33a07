"""Which runners can host a target here, and why not where not.

The descriptor says what a target supports (``[qemu]``, ``[renode]``,
``[chip]``, or ``unsupported = "why"``); this module adds what this machine
has: the compiler for the core, QEMU, Renode, a flasher, a port. Nothing is
installed while asking: a Debian-packaged tool that tinyhil would install on
first use (as root on Debian/Ubuntu) counts as available, and says so.

:func:`prepare_runner` is the same check as a gate before a bench: a target a
runner cannot host is the user's mistake (exit 2); missing tools are
installed, or reported with the command that installs them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from harness.build import (ARCH_DIR, QEMU_SYSTEMS, TOOLCHAINS, System, _is_debian_like, find_qemu,
                           find_target_toolchain, variant_target)
from harness.errors import ToolMissingError, UserInputError
from harness.runners.base import Runner
from harness.targets import RUNNER_NAMES, TargetDescriptor

VARIANTS = {"qemu": "emulator", "renode": "chip", "board": "board"}


@dataclass(frozen=True)
class Hosting:
    """One runner for one target, here: usable or not, and why (or a note)."""

    runner: str
    ok: bool
    reason: str = ""


def _can_install(system: System) -> bool:
    return system.euid() == 0 and _is_debian_like(system.os_release()) and system.which("apt-get") is not None


def _tool(program: str, packages: tuple[str, ...], hint: str, system: System) -> tuple[bool, str]:
    """(usable, note or reason) for one program."""
    if system.which(program):
        return True, ""
    if packages and _can_install(system):
        return True, f"installs {' '.join(packages)} on first use"
    if packages:
        return False, f"{program} not found (sudo apt-get install {' '.join(packages)})"
    return False, f"{program} not found ({hint})"


def _compiler(target: TargetDescriptor, variant: str, system: System) -> tuple[bool, str]:
    spec = TOOLCHAINS[target.toolchain]
    ok, note = _tool(f"{spec.prefix}gcc", spec.packages, spec.hint, system)
    arch = variant_target(target, variant).arch
    if not (ARCH_DIR / arch).is_dir():
        gap = f"no {arch} startup in firmware_templates/arch yet (not ported)"
        return False, f"{note}; {gap}" if not ok else gap
    return ok, note


def renode_installed() -> bool:
    from harness.runners.renode import find_backend

    return find_backend() is not None


def hosting(target: TargetDescriptor, port: str | None = None, system: System | None = None) -> list[Hosting]:
    """Every runner for ``target``: whether it can host it here, and why not."""
    from harness.runners.board import available_flasher
    from harness.runners.renode import NOT_INSTALLED

    sys_ = system or System()
    out = []
    for runner in RUNNER_NAMES:
        why = target.why_not(runner)
        if why:
            out.append(Hosting(runner, False, why))
            continue
        ok, note = _compiler(target, VARIANTS[runner], sys_)
        notes = [note] if note else []
        if runner == "qemu" and target.qemu is not None:
            qemu_system = target.qemu.system
            have, note = _tool(f"qemu-system-{qemu_system}", QEMU_SYSTEMS[qemu_system], "", sys_)
            ok = ok and have
            notes += [note] if note else []
        elif runner == "renode" and not renode_installed():
            ok = False
            notes.append(NOT_INSTALLED.removeprefix("renode: "))
        elif runner == "board":
            if not port:
                ok = False
                notes.insert(0, "needs --port")
            no_flasher = available_flasher(target)
            if no_flasher:
                ok = False
                notes.append(no_flasher)
        if ok:  # only notes, e.g. what installs on first use
            notes = [n for n in notes if n.startswith("installs")]
        out.append(Hosting(runner, ok, "; ".join(notes)))
    return out


def prepare_runner(name: str, port: str | None, targets: list[TargetDescriptor]) -> Runner:
    """The runner ``name`` for ``targets``, with every tool it needs installed.

    Raises:
        UserInputError: a target the runner cannot host, or a port without a board (exit 2).
        ToolMissingError: a tool that is not here and cannot be installed.
    """
    if name not in RUNNER_NAMES:
        raise UserInputError(f"--runner {name!r}: unknown (known: {', '.join(RUNNER_NAMES)})")
    if name == "board" and not port:
        raise UserInputError("--runner board needs --port (e.g. /dev/ttyACM0, COM3, rfc2217://host:port)")
    if name != "board" and port:
        raise UserInputError(f"--port is for --runner board, not {name}")
    for t in targets:
        why = t.why_not(name)
        if why:
            raise UserInputError(f"target {t.name} cannot run on {name}: {why}")
    for t in targets:
        built = variant_target(t, VARIANTS[name])
        find_target_toolchain(built)
        if not (ARCH_DIR / built.arch).is_dir():
            raise ToolMissingError(f"target {t.name}: no {built.arch} startup in firmware_templates/arch "
                                   "yet (not ported)")
    if name == "qemu":
        from harness.runners.qemu import QemuRunner

        for system in sorted({t.qemu.system for t in targets if t.qemu}):
            find_qemu(qemu_system=system)
        return QemuRunner()
    if name == "renode":
        from harness.runners.renode import NOT_INSTALLED, RenodeRunner, find_backend

        backend = find_backend()
        if backend is None:
            raise ToolMissingError(NOT_INSTALLED)
        return RenodeRunner(backend)
    from harness.runners.board import BoardRunner, available_flasher

    assert port is not None
    for t in targets:
        no_flasher = available_flasher(t)
        if no_flasher:
            raise ToolMissingError(no_flasher)
    return BoardRunner(port)
