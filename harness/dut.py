"""The device-under-test protocol (EEMBC / MLPerf Tiny runner style) over any pyserial port.

Lifecycle: ``Dut(port)`` wraps an open pyserial port (``socket://`` for QEMU and
Renode, ``/dev/ttyACM0`` or ``rfc2217://`` for boards); ``wait_boot()`` reads
until the firmware's first ``m-ready``; each method sends one command (ending
in ``%``) and reads reply lines until ``m-ready``. A reply line ``e-[...]`` is a
:class:`DutProtocolError`; silence past the deadline is a :class:`RunTimeout`.

tinyhil's own extensions use the standard shape (``m-th-ticks-123``), so a
stock EEMBC runner ignores them and this client can also drive third-party
MLPerf Tiny firmware for the standard commands.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

from harness.errors import DutProtocolError, RunTimeout

READY = "m-ready"
# Bytes of input per `db` command: 1 KB of payload = 2 KB of hex, well inside
# the firmware's line buffer and small enough not to stall an emulated UART.
DB_CHUNK = 512

_VALUE = re.compile(r"^m-(?P<key>[a-z][a-z-]*?)-(?P<value>\[.*\]|-?\d+|[0-9a-f]+)$")


class Port(Protocol):
    """The part of pyserial's SerialBase the client uses."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class InferReply:
    """What one ``infer N W%`` reported."""

    runs: int
    ticks: int  # total over the timed runs, in the board timer's units
    status: int  # tinyhil_invoke's return of the last run (0 = ok)
    lap_us: tuple[int, int] | None


def parse_values(lines: list[str]) -> dict[str, str]:
    """``m-key-value`` lines -> {key: value}; brackets are stripped."""
    out: dict[str, str] = {}
    for line in lines:
        m = _VALUE.match(line)
        if m:
            value = m.group("value")
            out.setdefault(m.group("key"), value[1:-1] if value.startswith("[") else value)
    return out


class Dut:
    """One device under test, spoken to line by line."""

    def __init__(self, port: Port, timeout_s: float = 30.0) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self._buf = b""
        self.transcript: list[str] = []  # every line seen, for failure reports

    def close(self) -> None:
        self.port.close()

    def _readline(self, deadline: float) -> str:
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                tail = " | ".join(self.transcript[-5:]) or "nothing"
                raise RunTimeout(f"no answer from the device within the deadline (last lines: {tail})")
            chunk = self.port.read(4096)
            if chunk:
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        text = line.decode("ascii", errors="replace").strip("\r\x00 ")
        self.transcript.append(text)
        return text

    def read_until_ready(self, timeout_s: float | None = None) -> list[str]:
        """Lines up to (not including) ``m-ready``; ``e-`` lines raise after it arrives."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        lines: list[str] = []
        while True:
            line = self._readline(deadline)
            if not line:
                continue
            if line == READY:
                break
            if not line.startswith(("m-", "e-")):
                raise DutProtocolError(f"garbled line from the device: {line[:80]!r}")
            lines.append(line)
        errors = [ln for ln in lines if ln.startswith("e-")]
        if errors:
            raise DutProtocolError(f"device reported: {errors[0]}")
        faults = [ln for ln in lines if ln.startswith("m-th-fault")]
        if faults:
            raise DutProtocolError(f"device faulted: {faults[0]}")
        return lines

    def wait_boot(self, timeout_s: float | None = None) -> list[str]:
        return self.read_until_ready(timeout_s)

    def command(self, cmd: str, timeout_s: float | None = None) -> list[str]:
        self.transcript.append(f">> {cmd}%")
        self.port.write(cmd.encode("ascii") + b"%")
        return self.read_until_ready(timeout_s)

    def _value(self, lines: list[str], key: str, cmd: str) -> str:
        values = parse_values(lines)
        if key not in values:
            raise DutProtocolError(f"'{cmd}%' reply lacks m-{key}: {lines}")
        return values[key]

    def name(self) -> str:
        return self._value(self.command("name"), "name-dut", "name")

    def profile(self) -> dict[str, str]:
        return parse_values(self.command("profile"))

    def load(self, data: bytes) -> None:
        """``db load N%`` then ``db <hex>%`` chunks; the last must report m-load-done."""
        self.command(f"db load {len(data)}")
        lines: list[str] = []
        for pos in range(0, len(data), DB_CHUNK):
            lines = self.command("db " + data[pos : pos + DB_CHUNK].hex())
        if "m-load-done" not in lines:
            raise DutProtocolError(f"device did not confirm the load of {len(data)} bytes")

    def infer(self, runs: int, warmup: int = 0, timeout_s: float | None = None) -> InferReply:
        lines = self.command(f"infer {runs} {warmup}", timeout_s)
        values = parse_values(lines)
        laps = [int(ln[len("m-lap-us-"):]) for ln in lines if re.fullmatch(r"m-lap-us-\d+", ln)]
        try:
            return InferReply(
                runs=int(values["th-runs"]),
                ticks=int(values["th-ticks"]),
                status=int(values["th-status"]),
                lap_us=(laps[-2], laps[-1]) if len(laps) >= 2 else None,
            )
        except (KeyError, ValueError) as e:
            raise DutProtocolError(f"'infer {runs} {warmup}%' reply is incomplete ({e}): {lines}") from e

    def output_bytes(self) -> bytes:
        """Raw output bytes from ``results%`` (tinyhil's m-th-output extension)."""
        hexstr = self._value(self.command("results"), "th-output", "results")
        try:
            return bytes.fromhex(hexstr)
        except ValueError as e:
            raise DutProtocolError(f"garbled output hex from the device: {hexstr[:60]!r}") from e

    def stack_bytes(self) -> int:
        return int(self._value(self.command("th-stack"), "th-stack-bytes", "th-stack"))

    def arena_bytes(self) -> int:
        return int(self._value(self.command("th-arena"), "th-arena-bytes", "th-arena"))
