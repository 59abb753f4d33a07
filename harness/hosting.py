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

from dataclasses import dataclass

from harness.build import (ARCH_DIR, TOOLCHAINS, System, _is_debian_like, find_target_toolchain,
                           variant_target)
from harness.errors import ToolMissingError, UserInputError
from harness.runners.base import Runner
from harness.targets import TargetDescriptor

def variant_of(runner: str) -> str:
    """The firmware build variant ``runner`` runs (its registry entry says)."""
    from harness import runners

    return runners.get(runner).build_variant


@dataclass(frozen=True)
class Hosting:
    """One runner for one target, here: usable or not, and why (or a note)."""

    runner: str
    ok: bool
    reason: str = ""


def _can_install(system: System) -> bool:
    return system.euid() == 0 and _is_debian_like(system.os_release()) and system.which("apt-get") is not None


def tool(program: str, packages: tuple[str, ...], hint: str, system: System) -> tuple[bool, str]:
    """(usable, note or reason) for one program: found, installable on first use, or missing."""
    if system.which(program):
        return True, ""
    if packages and _can_install(system):
        return True, f"installs {' '.join(packages)} on first use"
    if packages:
        return False, f"{program} not found (sudo apt-get install {' '.join(packages)})"
    return False, f"{program} not found ({hint})"


def _compiler(target: TargetDescriptor, variant: str, system: System) -> tuple[bool, str]:
    spec = TOOLCHAINS[target.toolchain]
    ok, note = tool(f"{spec.prefix}gcc", spec.packages, spec.hint, system)
    if not ok and spec.fallback == "lx106":  # Debian's Xtensa compiler stands in (harness/lx106.py)
        from harness import lx106

        have, how = tool(f"{lx106.PREFIX}gcc", (*lx106.PACKAGES, "gcc-12-source"), "", system)
        if have:
            ok, note = True, how or f"found: Debian's {lx106.PREFIX}gcc ({spec.prefix}gcc is not here)"
        else:
            note = f"{note}, or {how}"
    arch = variant_target(target, variant).arch
    if not (ARCH_DIR / arch).is_dir():
        gap = f"no {arch} startup in firmware_templates/arch yet (not ported)"
        return False, f"{note}; {gap}" if not ok else gap
    return ok, note


def hosting(target: TargetDescriptor, port: str | None = None, system: System | None = None) -> list[Hosting]:
    """Every registered runner for ``target``: whether it can host it here, and why not."""
    from harness import runners

    sys_ = system or System()
    out = []
    for kind in runners.kinds():
        why = target.why_not(kind.name)
        if why:
            out.append(Hosting(kind.name, False, why))
            continue
        ok, note = _compiler(target, kind.build_variant, sys_)
        notes = [note] if note else []
        have, more = kind.host_check(target, port, sys_)
        ok = ok and have
        notes = [*more, *notes] if (kind.needs_port and not port) else [*notes, *more]
        if ok:  # only notes, e.g. what installs on first use
            notes = [n for n in notes if n.startswith(("installs", "found:"))]
        out.append(Hosting(kind.name, ok, "; ".join(notes)))
    return out


def prepare_runner(name: str, port: str | None, targets: list[TargetDescriptor]) -> Runner:
    """The runner ``name`` for ``targets``, with every tool it needs installed.

    Raises:
        UserInputError: an unknown runner, a target it cannot host, a port it does not
            take or a port it needs (exit 2).
        ToolMissingError: a tool that is not here and cannot be installed.
    """
    from harness import runners

    kind = runners.get(name)
    if kind.needs_port and not port:
        raise UserInputError(f"--runner {name} needs --port (e.g. /dev/ttyACM0, COM3, rfc2217://host:port)")
    if not kind.needs_port and port:
        takes = [k.name for k in runners.kinds() if k.needs_port]
        raise UserInputError(f"--port is for --runner {' or '.join(takes)}, not {name}")
    for t in targets:
        why = t.why_not(name)
        if why:
            raise UserInputError(f"target {t.name} cannot run on {name}: {why}")
    for t in targets:
        built = variant_target(t, kind.build_variant)
        find_target_toolchain(built)
        if not (ARCH_DIR / built.arch).is_dir():
            raise ToolMissingError(f"target {t.name}: no {built.arch} startup in firmware_templates/arch "
                                   "yet (not ported)")
    return kind.create(targets, port)
