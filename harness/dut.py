"""The device-under-test protocol (EEMBC / MLPerf Tiny runner style) over any pyserial port.

Lifecycle: ``Dut(port)`` wraps an open pyserial port (``socket://`` for QEMU and
Renode, ``/dev/ttyACM0`` or ``rfc2217://`` for boards); ``wait_boot()`` reads
until the firmware's first ``m-ready``; each method sends one command (ending
in ``%``) and reads reply lines until ``m-ready``. A reply line ``e-[...]`` is a
:class:`DutProtocolError`; silence past the deadline is a :class:`RunTimeout`.

tinyhil's own extensions use the standard shape (``m-th-ticks-123``), so a
stock EEMBC runner ignores them and this client can also drive third-party
MLPerf Tiny firmware for the standard commands. Two of them carry raw bytes
instead of hex (``th-dbb``, ``th-batch``: see docs/dut-protocol.md); they are
for tinyhil firmware only.

When the port has a file descriptor (``socket://``, a local serial port) the
client sets it non-blocking and waits with ``select``, so a reply is read as
soon as it arrives rather than when the port's read timeout expires.
"""

from __future__ import annotations

import re
import select
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from harness.errors import DutProtocolError, RunTimeout

READY = "m-ready"
# A tinyhil firmware's boot banner: these lines, m-th-build-[id] after the first, then m-ready.
BANNER_FIRST = "m-timestamp-mode-performance"
_BUILD_IN_ELF = re.compile(rb"m-th-build-\[([0-9a-f]{16,64})\]")
# Bytes of input per `db` command: 1 KB of payload = 2 KB of hex, well inside
# the firmware's line buffer and small enough not to stall an emulated UART.
DB_CHUNK = 512

_VALUE = re.compile(r"^m-(?P<key>[a-z][a-z-]*?)-(?P<value>\[.*\]|-?\d+|[0-9a-f]+)$")
# th-batch: per input "m-th-out-[index,crc32 of the input,invoke status,output hex]".
_BATCH_OUT = re.compile(r"^m-th-out-\[(\d+),([0-9a-f]{8}),(-?\d+),([0-9a-f]*)\]$")
_LAYER = re.compile(r"^m-th-layer-\[(\d+),(\d+)\]$")
# Raw input bytes kept in flight during th-batch: enough that the device never
# waits for the host, little enough for any UART driver's buffer.
BATCH_WINDOW_BYTES = 8192


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


@dataclass(frozen=True)
class LayerProfile:
    """What ``th-profile%`` reported for the last inference (ticks of the board timer)."""

    layers: tuple[tuple[int, int], ...]  # (op index, ticks) in execution order
    pairs: int  # empty BEGIN/END pairs timed for the hooks' own cost
    pair_ticks: int  # their total, loop overhead removed


def visible(data: bytes) -> str:
    """Bytes from a device as text that is safe on a terminal and in a row: printable
    ASCII as is, anything else (ESC, other control bytes, non-ASCII) as ``\\xNN``."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in data)


def firmware_build_id(elf: Path) -> str | None:
    """The build id a tinyhil firmware names in its boot banner (``m-th-build-[id]``,
    the build's cache key, compiled in as a string), read from the ELF; None for an
    ELF without one (third-party firmware: no identity check is possible)."""
    try:
        m = _BUILD_IN_ELF.search(Path(elf).read_bytes())
    except OSError:
        return None
    return m.group(1).decode() if m else None


def _select_fd(port: Port) -> int | None:
    """The port's file descriptor after making its reads non-blocking, or None."""
    fileno = getattr(port, "fileno", None)
    if fileno is None or not hasattr(port, "timeout"):
        return None
    try:
        fd = int(fileno())
        setattr(port, "timeout", 0)  # read() returns what is there; select() does the waiting
    except (OSError, ValueError, AttributeError):
        return None
    return fd


class Dut:
    """One device under test, spoken to line by line."""

    def __init__(self, port: Port, timeout_s: float = 30.0) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self._buf = b""
        self._fd = _select_fd(port)
        self.transcript: list[str] = []  # every line seen, for failure reports
        self.build = ""  # the build id the firmware named (boot banner or th-info%)

    def close(self) -> None:
        self.port.close()

    def _readline(self, deadline: float) -> str:
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                tail = " | ".join(self.transcript[-5:]) or "nothing"
                raise RunTimeout(f"no answer from the device within the deadline (last lines: {tail})")
            self._buf += self._read_some(max(0.0, min(0.5, deadline - time.monotonic())))
        line, self._buf = self._buf.split(b"\n", 1)
        text = visible(line.strip(b"\r\x00 "))
        self.transcript.append(text)
        return text

    def _read_some(self, wait_s: float) -> bytes:
        """Whatever the port has, waiting up to ``wait_s`` (or its own timeout) for a first byte."""
        if self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], wait_s)
            return self.port.read(65536) if ready else b""
        chunk = self.port.read(1)
        waiting = int(getattr(self.port, "in_waiting", 0) or 0) if chunk else 0
        return chunk + self.port.read(waiting) if waiting else chunk

    def read_until_ready(self, timeout_s: float | None = None, boot_text: bool = False) -> list[str]:
        """Lines up to (not including) ``m-ready``; ``e-`` lines raise after it arrives.
        With ``boot_text`` the lines before the first protocol line are a ROM's boot
        text (the ESP32's "ets Jun  8 2016 ...", "entry 0x..."): skipped, kept in the transcript."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        lines: list[str] = []
        while True:
            line = self._readline(deadline)
            if not line:
                continue
            if line == READY:
                break
            if boot_text and not lines and not line.startswith(("m-", "e-")):
                continue
            if not line.startswith(("m-", "e-")):
                raise DutProtocolError(f"garbled line from the device: '{line[:80]}'")
            lines.append(line)
        errors = [ln for ln in lines if ln.startswith("e-")]
        if errors:
            raise DutProtocolError(f"device reported: {errors[0]}")
        faults = [ln for ln in lines if ln.startswith("m-th-fault")]
        if faults:
            raise DutProtocolError(f"device faulted: {faults[0]}")
        return lines

    def wait_boot(self, timeout_s: float | None = None, expect_build: str | None = None) -> list[str]:
        """The boot banner's lines up to ``m-ready``.

        With ``expect_build`` (the id compiled into the ELF that was started, see
        :func:`firmware_build_id`) the session is refused unless the banner is
        complete (its first line is the first line the connection carried) and
        names that build: a connection that began mid-stream, or to another
        firmware, is a DutProtocolError saying which. What a chip's ROM prints
        before the firmware starts (lines that are not protocol lines, before the
        first that is) is skipped; the transcript keeps it.
        """
        if expect_build is None:
            lines = self.read_until_ready(timeout_s, boot_text=True)
        else:
            deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
            lines = []
            while True:
                line = self._readline(deadline)
                if line == READY:
                    break
                if line and (lines or line.startswith(("m-", "e-"))):  # before: a ROM's boot text
                    lines.append(line)
            if not lines or lines[0] != BANNER_FIRST:
                first = lines[0] if lines else "m-ready"
                raise DutProtocolError(
                    f"the connection began mid-stream: the boot banner starts with {BANNER_FIRST!r}, the "
                    f"first line received was {first[:80]!r} (the start of the banner was lost); session refused")
            build = parse_values(lines).get("th-build", "")
            if build != expect_build:
                raise DutProtocolError(
                    f"connected to another firmware: its banner names build {build or '(none)'}, the ELF "
                    f"started here is build {expect_build}; session refused")
            errors = [ln for ln in lines if ln.startswith(("e-", "m-th-fault"))]
            if errors:
                raise DutProtocolError(f"device reported at boot: {errors[0]}")
        self.build = parse_values(lines).get("th-build", "")
        return lines

    def sync(self, timeout_s: float | None = None, resend_s: float = 1.0) -> None:
        """Finds the firmware's prompt whatever it was doing: sends ``name%`` and
        reads until its ``m-name-dut-...`` and the ``m-ready`` after it.

        For a board, whose boot lines may have gone by before the port was
        opened, and whose UART drops what arrives before it is enabled: the
        command is sent again after ``resend_s`` of silence; boot lines, line
        noise and error replies to a partly received command are skipped (and
        kept in the transcript); silence until the deadline is a RunTimeout.
        """
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        named = False
        last_sent = last_heard = 0.0
        while True:
            now = time.monotonic()
            if now - max(last_sent, last_heard) >= resend_s:
                self.transcript.append(">> name%")
                self.port.write(b"name%")
                last_sent = now
            while b"\n" in self._buf:
                line = self._readline(deadline)
                if line.startswith("m-name-dut-"):
                    named = True
                elif line == READY and named:
                    self._drain(0.2)
                    return
            if now > deadline:
                tail = " | ".join(self.transcript[-5:]) or "nothing"
                raise RunTimeout(f"no answer from the device within the deadline (last lines: {tail})")
            chunk = self._read_some(0.2)
            if chunk:
                self._buf += chunk
                last_heard = time.monotonic()

    def _drain(self, quiet_s: float) -> None:
        """Reads and logs whatever else arrives until ``quiet_s`` of silence (a
        late answer to a repeated ``name%``), so the next command reads its own reply."""
        until = time.monotonic() + quiet_s
        while time.monotonic() < until:
            chunk = self._read_some(0.2)
            if chunk:
                self._buf += chunk
                until = time.monotonic() + quiet_s
        while b"\n" in self._buf:
            self._readline(time.monotonic() + 1)

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

    def arena_used_bytes(self) -> int | None:
        """What the engine measured of its arena at run time (TFLM's arena_used_bytes(),
        ``m-th-arena-used-bytes-N`` in the ``th-arena%`` reply), or None when it does not say."""
        value = parse_values(self.command("th-arena")).get("th-arena-used-bytes")
        return int(value) if value is not None else None

    # ---- tinyhil's binary extensions (not understood by third-party firmware)

    def load_binary(self, data: bytes, timeout_s: float | None = None) -> None:
        """``th-dbb N%`` followed by the N raw bytes; the device's CRC-32 must match."""
        self.transcript.append(f">> th-dbb {len(data)}% + {len(data)} raw bytes")
        self.port.write(f"th-dbb {len(data)}%".encode("ascii") + data)
        lines = self.read_until_ready(timeout_s)
        if "m-load-done" not in lines:
            raise DutProtocolError(f"device did not confirm the binary load of {len(data)} bytes: {lines}")
        crc = parse_values(lines).get("th-crc")
        if crc is None or int(crc, 16) != zlib.crc32(data):
            raise DutProtocolError(f"binary load of {len(data)} bytes arrived corrupted (device CRC-32 "
                                   f"{crc}, sent {zlib.crc32(data):08x})")

    def infer_batch(self, inputs: Sequence[bytes], timeout_s: float | None = None,
                    on_output: Callable[[int, int], None] | None = None) -> list[bytes]:
        """Infer each input once with ``th-batch K%``; returns the raw output bytes per input.

        Inputs are streamed as raw bytes, keeping about BATCH_WINDOW_BYTES in flight
        so the device always has the next input while it infers the current one.
        ``timeout_s`` bounds the wait for each output; ``on_output(done, total)``
        is called after each. Raises DutProtocolError on a transfer error (the
        device's CRC-32 of an input differs from the host's), a failed inference or
        a reply out of order.
        """
        k = len(inputs)
        if k == 0:
            return []
        wait = timeout_s if timeout_s is not None else self.timeout_s
        window = max(2, BATCH_WINDOW_BYTES // max(1, len(inputs[0])))
        sent = min(k, window)
        self.transcript.append(f">> th-batch {k}% + {k} inputs of {len(inputs[0])} raw bytes")
        self.port.write(f"th-batch {k}%".encode("ascii") + b"".join(inputs[:sent]))
        outputs: list[bytes] = []
        while True:
            line = self._readline(time.monotonic() + wait)
            if not line:
                continue
            if line == READY:
                break
            m = _BATCH_OUT.match(line)
            if m is None:
                if line.startswith("e-") or line.startswith("m-th-fault"):
                    raise DutProtocolError(f"device reported during th-batch: {line}")
                raise DutProtocolError(f"unexpected line during th-batch: '{line[:80]}'")
            index, crc, status, hexstr = int(m.group(1)), int(m.group(2), 16), int(m.group(3)), m.group(4)
            if index != len(outputs):
                raise DutProtocolError(f"th-batch: output {index} arrived when {len(outputs)} was due")
            if crc != zlib.crc32(inputs[index]):
                raise DutProtocolError(f"th-batch: input {index} arrived corrupted (device CRC-32 "
                                       f"{crc:08x}, sent {zlib.crc32(inputs[index]):08x})")
            if status != 0:
                raise DutProtocolError(f"th-batch: inference of input {index} returned status {status}")
            outputs.append(bytes.fromhex(hexstr))
            if sent < k:
                self.port.write(inputs[sent])
                sent += 1
            if on_output is not None:
                on_output(len(outputs), k)
        if len(outputs) != k:
            raise DutProtocolError(f"th-batch: {len(outputs)} outputs for {k} inputs")
        return outputs

    def layer_profile(self) -> LayerProfile:
        """Per-layer ticks of the last inference (``th-profile%``, profiling builds only)."""
        lines = self.command("th-profile")
        layers = tuple((int(m.group(1)), int(m.group(2)))
                       for m in (_LAYER.match(ln) for ln in lines) if m is not None)
        values = parse_values(lines)
        try:
            return LayerProfile(layers, int(values["th-profile-pairs"]), int(values["th-profile-pair-ticks"]))
        except (KeyError, ValueError) as e:
            raise DutProtocolError(f"'th-profile%' reply is incomplete ({e}): {lines}") from e
