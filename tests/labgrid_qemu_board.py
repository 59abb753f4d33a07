"""A QEMU "board" for the labgrid tests, and a labgrid driver that flashes it.

The board is QEMU's netduinoplus2 (an STM32F405). Its UART is a TCP chardev that
:class:`UartAdapter`, running in the test process, bridges to a pty, as a USB-serial
adapter stays plugged in while the board behind it is reset: the labgrid exporter's
RawSerialPort names the pty (labgrid exports only /dev paths), and ser2net opens it on
each connection. Flashing restarts QEMU with the new ELF on the same TCP port; the
adapter reconnects to it, as a reset after a real flash starts the new image.

:class:`QemuBoardDriver` is a labgrid BootstrapProtocol driver doing that: a labgrid
environment file imports this module and gives a place's target the driver, so
``labgrid-client bootstrap firmware.elf`` (what ``tinyhil --labgrid-flash labgrid``
runs) flashes the board through labgrid's driver machinery, as OpenOCDDriver would a
real one. Test support only: not part of tinyhil.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
import tty
from pathlib import Path

# The boards this process started (kept so that they are waited for, not left to Popen.__del__).
_STARTED: dict[int, "subprocess.Popen[bytes]"] = {}


def start_board(board_dir: Path, elf: Path | None) -> None:
    """(Re)starts the board running ``elf`` (None: no firmware), its UART on board.json's port."""
    stop_board(board_dir)
    conf = json.loads((board_dir / "board.json").read_text())
    log = board_dir / "qemu.log"
    cmd = [conf["qemu"], "-M", "netduinoplus2", "-display", "none", "-monitor", "none",
           "-chardev", f"socket,id=uart,host=127.0.0.1,port={conf['uart_port']},server=on,wait=on",
           "-serial", "chardev:uart"]
    if elf is not None:
        cmd += ["-kernel", str(elf)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    _STARTED[proc.pid] = proc
    (board_dir / "pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 10
    while "waiting for connection" not in log.read_text():  # listening; it starts when the adapter connects
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the QEMU board did not start: {log.read_text()}")
        time.sleep(0.02)
    with (board_dir / "flashed.log").open("a") as f:
        f.write(f"{elf}\n")


def stop_board(board_dir: Path) -> None:
    pid_file = board_dir / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if pid in _STARTED:
        _STARTED.pop(pid).wait()
        return
    for _ in range(500):  # started by a labgrid-client: not our child, poll until it is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


class UartAdapter:
    """A pty whose other end is the board's UART (QEMU's TCP chardev), reconnected
    whenever the board restarts; bytes sent while no board listens are dropped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo: what the host writes must not come back as UART input
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
            except OSError:
                self._drop_input(0.05)
                continue
            with sock:
                sock.setblocking(False)
                while not self._stop.is_set():
                    ready, _, _ = select.select([self.master, sock], [], [], 0.1)
                    try:
                        if self.master in ready:
                            sock.sendall(os.read(self.master, 4096))
                        if sock in ready:
                            data = sock.recv(4096)
                            if not data:
                                break  # the board was reset (QEMU restarted)
                            os.write(self.master, data)
                    except OSError:
                        break

    def _drop_input(self, wait_s: float) -> None:
        ready, _, _ = select.select([self.master], [], [], wait_s)
        if ready:
            os.read(self.master, 4096)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)


try:
    import attr
    from labgrid.driver.common import Driver
    from labgrid.factory import target_factory
    from labgrid.protocol import BootstrapProtocol
    from labgrid.step import step
except ImportError:  # imported by the tests without labgrid: only the board helpers
    pass
else:
    @target_factory.reg_driver
    @attr.s(eq=False)
    class QemuBoardDriver(Driver, BootstrapProtocol):
        """Flashes the QEMU board in ``board_dir``: restarts it with the image."""

        bindings: dict[str, object] = {}
        board_dir = attr.ib(validator=attr.validators.instance_of(str))

        @Driver.check_active
        @step(args=["filename"])
        def load(self, filename: str | None = None) -> None:
            if filename is None or not Path(filename).is_file():
                raise ValueError(f"no image to flash: {filename!r}")
            start_board(Path(self.board_dir), Path(filename))
