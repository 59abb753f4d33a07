"""labgrid runner: boards of a lab's farm, shared through a labgrid coordinator.

A lab exports its boards' serial ports (and power, USB, flashing hardware) with
``labgrid-exporter``; a ``labgrid-coordinator`` knows them and who holds which
*place*. tinyhil talks to the coordinator with labgrid's own client
(``labgrid-client``, from ``pip install 'tinyhil[labgrid]'``):

1. it acquires a place: the ones named with ``--place NAME`` (repeatable: several
   places run cases at once, each case on the next free one), else the target
   descriptor's ``[labgrid] places``, else the RemotePlaces of a labgrid
   environment file (``--labgrid-env FILE``, else ``LG_ENV``); the coordinator is
   ``--coordinator HOST:PORT``, else ``LG_COORDINATOR``;
2. it flashes the image (``--labgrid-flash``): through labgrid's own drivers
   (``labgrid``: ``labgrid-client bootstrap`` with the environment file, whose
   BootstrapProtocol driver, e.g. OpenOCDDriver, flashes the place's board on the
   exporter's side), with the target's flasher over the place's serial port
   (``flasher``, what an ESP32's esptool does over RFC 2217), or not at all when
   the place already runs the image (``none``; the firmware must name the build
   tinyhil made, which ``th-info`` checks, as after every flash);
3. it reads the place's NetworkSerialPort (the exporter's ser2net) and speaks
   the DUT protocol over it as ``rfc2217://host:port``, exactly like the board
   runner (:class:`harness.runners.board.BoardRunner`);
4. it releases the place on every way out: a finished case, a failed one, an
   exception, Ctrl-C, SIGTERM (turned into KeyboardInterrupt by the CLI).

Counts are the board's: ``cycles`` from a cycle counter, or ``timer`` ticks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import RunnerError, ToolMissingError, UserInputError
from harness.runners.base import RunJob, RunRecord, failed
from harness.targets import TargetDescriptor

if TYPE_CHECKING:  # pragma: no cover
    from harness.build import System

CLIENT = "labgrid-client"
INSTALL = "pip install 'tinyhil[labgrid]'"
_HOST = re.compile(r"'cls': 'NetworkSerialPort'.*?'host': '([^']+)'.*?'port': (\d+)", re.S)
_HOST_FIRST = re.compile(r"'host': '([^']+)'.*?'port': (\d+)", re.S)


FLASH_MODES = ("labgrid", "flasher", "none")


def env_places(env: Path) -> list[str]:
    """The RemotePlace names of a labgrid environment file's targets
    (``targets.<role>.resources.RemotePlace.name``), in the file's order."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise ToolMissingError(f"reading the labgrid environment file {env} needs PyYAML: {INSTALL}") from None

    class _Loader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    # labgrid's own tags (!template and the like) are not needed to find the places.
    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        data = yaml.load(env.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader
    except OSError as e:
        raise UserInputError(f"{env}: cannot read the labgrid environment file ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise UserInputError(f"{env}: not a labgrid environment file (YAML error: {e})") from None
    targets = data.get("targets") if isinstance(data, dict) else None
    places: list[str] = []
    for role in (targets or {}).values() if isinstance(targets, dict) else ():
        resources = role.get("resources") if isinstance(role, dict) else None
        pairs = (resources.items() if isinstance(resources, dict) else
                 [kv for r in resources or () if isinstance(r, dict) for kv in r.items()])
        for cls, params in pairs:
            name = params.get("name") if cls == "RemotePlace" and isinstance(params, dict) else None
            if isinstance(name, str) and name and name not in places:
                places.append(name)
    if not places:
        raise UserInputError(f"{env}: names no place (a labgrid environment file names its places as "
                             "targets.<role>.resources.RemotePlace.name)")
    return places


def find_client() -> str:
    """labgrid-client next to this Python (the [labgrid] extra), else on PATH."""
    here = Path(sys.executable).with_name(CLIENT)
    if here.is_file():
        return str(here)
    found = shutil.which(CLIENT)
    if found is None:
        raise ToolMissingError(f"{CLIENT} not found: {INSTALL}")
    return found


class _Preloaded:
    """``--labgrid-flash none``: the place runs the image already (``th-info`` checks the build)."""

    def available(self, target: TargetDescriptor) -> str | None:
        return None

    def flash(self, elf: Path, target: TargetDescriptor, port: str) -> None:
        return None


class _Bootstrap:
    """``--labgrid-flash labgrid``: ``labgrid-client bootstrap ELF`` on the acquired place,
    that is the BootstrapProtocol driver of the environment file's target for the place
    (OpenOCDDriver, an ESP32's EsptoolDriver, a lab's own), or the one labgrid picks for
    the place's flashing resource."""

    def __init__(self, runner: "LabgridRunner", place: str) -> None:
        self.runner, self.place = runner, place

    def available(self, target: TargetDescriptor) -> str | None:
        return None

    def flash(self, elf: Path, target: TargetDescriptor, port: str) -> None:
        self.runner._lg(self.place, "bootstrap", str(elf), timeout_s=self.runner.flash_timeout_s)


class LabgridRunner:
    """Runs each case on a free place that has its target, acquired for the case and released after."""

    name = "labgrid"
    build_variant = "board"

    def __init__(self, places: list[str], coordinator: str, flash: str = "flasher", client: str | None = None,
                 timeout_s: float = 60.0, env: Path | None = None,
                 target_places: dict[str, tuple[str, ...]] | None = None, flash_timeout_s: float = 600.0) -> None:
        """``places`` serve every target; a target not served by them uses its own
        ``target_places`` (its descriptor's ``[labgrid] places``), else the environment
        file's places."""
        if flash not in FLASH_MODES:
            raise UserInputError(f"--labgrid-flash {flash!r}: expected one of {', '.join(FLASH_MODES)}")
        self.env = env
        self.env_places = env_places(env) if env is not None else []
        self.places = list(places)
        self.target_places = dict(target_places or {})
        if not self.places and not self.env_places and not self.target_places:
            raise UserInputError("--runner labgrid needs a place: --place NAME (repeatable), a target descriptor's "
                                 "[labgrid] places, or a labgrid environment file (--labgrid-env FILE or LG_ENV)")
        self.coordinator = coordinator
        self.flash = flash
        self.client = client or find_client()
        self.timeout_s = timeout_s
        self.flash_timeout_s = flash_timeout_s
        self._cond = threading.Condition()
        self._free = set(self.all_places())

    def all_places(self) -> list[str]:
        out: list[str] = []
        for p in [*self.places, *(p for ps in self.target_places.values() for p in ps), *self.env_places]:
            if p not in out:
                out.append(p)
        return out

    def places_for(self, target: TargetDescriptor) -> list[str]:
        """Where ``target``'s cases may run: --place, else its descriptor's, else the env file's."""
        chosen = self.places or list(self.target_places.get(target.name, ())) or self.env_places
        if not chosen:
            raise UserInputError(f"--runner labgrid: no place for {target.name}: pass --place NAME, list them in "
                                 f"{target.path.name}'s [labgrid] places, or name them in a labgrid environment "
                                 "file (--labgrid-env)")
        return chosen

    def _take(self, candidates: list[str]) -> str:
        """The first free place of ``candidates``, waiting for one."""
        with self._cond:
            while True:
                for p in candidates:
                    if p in self._free:
                        self._free.discard(p)
                        return p
                self._cond.wait()

    def _give(self, place: str) -> None:
        with self._cond:
            self._free.add(place)
            self._cond.notify_all()

    def _lg(self, place: str, *args: str, timeout_s: float | None = None) -> str:
        config = ("-c", str(self.env)) if self.env is not None and place in self.env_places else ()
        cmd = [self.client, "-x", self.coordinator, *config, "-p", place, *args]
        env = {k: v for k, v in os.environ.items() if k != "LG_ENV"}  # -c says it where it applies
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**env, "LG_COORDINATOR": self.coordinator})
        except subprocess.TimeoutExpired:
            raise RunnerError(f"labgrid: `{' '.join(cmd[1:])}` did not answer within {timeout:.0f} s "
                              f"(is the coordinator at {self.coordinator} up?)") from None
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            hint = ""
            if args[0] == "bootstrap" and "no compatible resource" in tail:
                hint = (" (--labgrid-flash labgrid flashes with the BootstrapProtocol driver, e.g. OpenOCDDriver, "
                        "that the labgrid environment file (--labgrid-env) gives this place's target; or use "
                        "--labgrid-flash flasher)")
            raise RunnerError(f"labgrid: place {place}: {' '.join(args)} failed: {tail}{hint}")
        return proc.stdout

    def serial_url(self, place: str) -> str:
        """The acquired place's NetworkSerialPort as a pyserial URL."""
        shown = self._lg(place, "show")
        m = _HOST.search(shown) or _HOST_FIRST.search(shown)
        if m is None:
            raise RunnerError(f"labgrid: place {place} has no NetworkSerialPort (export the board's serial port "
                              "with a RawSerialPort or USBSerialPort in the exporter's config)")
        raw = re.search(r"'protocol': 'raw'", shown)
        # ign_set_control: ser2net on a port without modem lines (a pty) never confirms
        # SET_CONTROL, and pyserial would wait for it.
        return f"socket://{m.group(1)}:{m.group(2)}" if raw else f"rfc2217://{m.group(1)}:{m.group(2)}?ign_set_control"

    def release(self, place: str) -> None:
        """Release ``place``, with SIGINT/SIGTERM held back until it is done (then delivered):
        an interrupt must not cut the release short. A place not held is no error."""
        import signal

        held = {signal.SIGINT, signal.SIGTERM}
        main = threading.current_thread() is threading.main_thread()
        if main:
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self._lg(place, "release")
        except RunnerError as e:
            if "not acquired" not in str(e):
                print(f"warning: {e}", file=sys.stderr)
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def _flasher(self, place: str) -> "_Preloaded | _Bootstrap | None":
        if self.flash == "none":
            return _Preloaded()
        if self.flash == "labgrid":
            return _Bootstrap(self, place)
        return None  # the target's own flasher, on the place's serial port

    def run(self, elf: Path, target: TargetDescriptor, job: RunJob, timeout_s: float = 120.0) -> RunRecord:
        from harness.runners.board import BoardRunner

        try:
            candidates = self.places_for(target)
        except UserInputError as e:
            return failed(self.name, target, elf, e)
        place = self._take(candidates)  # a case waits for a free place
        try:
            # From the acquire on, the place is released whatever happens (an interrupt
            # during the acquire itself may leave it acquired at the coordinator).
            try:
                self._lg(place, "acquire")
                url = self.serial_url(place)
                board = BoardRunner(url, flasher=self._flasher(place))
                record = board.run(elf, target, job, timeout_s)
            except RunnerError as e:
                record = failed(self.name, target, elf, e)
            finally:
                self.release(place)
            error = f"place {place}: {record.error}" if record.error else ""
            return replace(record, runner=self.name, error=error)
        finally:
            self._give(place)


def _host_check(target: TargetDescriptor, port: str | None, system: "System") -> tuple[bool, list[str]]:
    try:
        find_client()
    except ToolMissingError as e:
        return False, [str(e)]
    return True, ["needs a place: --place, [labgrid] places or --labgrid-env"]


def _create(targets: list[TargetDescriptor], port: str | None) -> LabgridRunner:
    places = [p for p in os.environ.get("TINYHIL_LABGRID_PLACES", "").split(",") if p]
    coordinator = os.environ.get("LG_COORDINATOR", "127.0.0.1:20408")
    env_file = os.environ.get("TINYHIL_LABGRID_ENV") or os.environ.get("LG_ENV") or ""
    env = Path(env_file) if env_file else None
    if env is not None and not env.is_file():
        raise UserInputError(f"labgrid environment file {env}: no such file (--labgrid-env or LG_ENV)")
    runner = LabgridRunner(places, coordinator, os.environ.get("TINYHIL_LABGRID_FLASH", "flasher"), env=env,
                           target_places={t.name: t.labgrid_places for t in targets if t.labgrid_places})
    for t in targets:
        runner.places_for(t)  # a target with no place is exit 2 before anything runs
    return runner


def _register() -> None:
    from harness.runners import RunnerKind, register

    register(RunnerKind("labgrid", "chip", "board", False, _host_check, _create,
                        "boards of a labgrid farm: places acquired through the coordinator, DUT protocol over "
                        "their NetworkSerialPort", parallel=True))


_register()
