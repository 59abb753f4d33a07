"""Runs the official MLPerf Tiny runner (mlcommons/tiny ``benchmark/runner``) as shipped,
its device discovery pointed at one port.

``python -m harness.mlperf_shim --runner DIR --port URL -- <main.py arguments>`` runs
``DIR/main.py`` with ``runpy`` (``__name__ == "__main__"``, ``sys.argv`` = ``main.py``
plus the arguments after ``--``) in the current directory, where the runner writes its
``sessions/<time>/`` (log.txt, results.txt, results.json). Two things are changed,
nothing else:

- ``device_manager.DeviceManager.scan``: instead of enumerating USB serial ports and
  USB devices, the ``dut`` entry of the device list gets ``port`` = ``URL`` (the
  runner's own ``_add_device``) and is instantiated (its own ``_instantiate``); no
  power board and no interface board, so performance and accuracy modes only;
- ``serial_device.serial.Serial`` (as ``serial_device`` sees it; the pyserial module
  itself is left alone): a port opened with tinyhil's transport
  (:func:`open_port`: ``unix:///path`` for QEMU's Unix-socket UART, ``socket://``,
  ``rfc2217://`` and every other pyserial URL or device), which keeps every byte the
  device sends after the connection.

Kept out of harness.mlperf_runner so the runner's process imports only the transport.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import runpy
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import serial

from harness.transport import connect_unix, open_url


def open_port(url: str, timeout: float | None = 0.2) -> Any:
    """A connected port for ``url``: ``unix:///path`` (a Unix socket, QEMU's UART in
    tinyhil) or any URL :func:`harness.transport.open_url` takes. Raises
    ``serial.SerialException`` when it cannot be opened."""
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        try:
            return connect_unix(Path(path), timeout)
        except OSError as e:
            raise serial.SerialException(f"could not open {url}: {e}") from e
    return open_url(url, timeout=timeout)


class ShimSerial:
    """What ``serial_device.SerialDevice`` uses of ``serial.Serial``, over :func:`open_port`.

    Opened on construction (as pyserial's ``Serial(port, ...)`` is); ``with`` reopens
    a closed port and closes it at the end, like pyserial. Baud rate and line settings
    mean nothing on a socket and are kept only to be read back.
    """

    def __init__(self, port: str | None = None, baudrate: int = 9600, timeout: float | None = None,
                 **kwargs: Any) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self._conn: Any = None
        if port is not None:
            self.open()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def open(self) -> None:
        if self.port is None:
            raise serial.SerialException("Port must be configured before it can be used.")
        if self._conn is None:
            self._conn = open_port(self.port, self.timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ShimSerial:
        if self.port is not None and not self.is_open:
            self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _port(self) -> Any:
        if self._conn is None:
            raise serial.PortNotOpenError()
        return self._conn

    def read(self, size: int = 1) -> bytes:
        data: bytes = self._port().read(size)
        return data

    def readline(self) -> bytes:
        line = bytearray()
        while not line.endswith(b"\n"):
            c = self.read(1)
            if not c:
                break
            line += c
        return bytes(line)

    def write(self, data: bytes) -> int:
        n: int = self._port().write(data)
        return n

    def flush(self) -> None:
        self._port().flush()

    @property
    def in_waiting(self) -> int:
        n: int = self._port().in_waiting
        return n

    def reset_input_buffer(self) -> None:
        self._port().reset_input_buffer()

    def reset_output_buffer(self) -> None:
        self._port().reset_output_buffer()


class _SerialAsSeen:
    """The ``serial`` module as ``serial_device`` sees it: pyserial, but ``Serial`` is
    :class:`ShimSerial` (patching pyserial's own ``serial.Serial`` would also change what
    ``serial_for_url`` builds for a device path)."""

    Serial = ShimSerial

    def __getattr__(self, name: str) -> Any:
        return getattr(serial, name)


def patch(runner: Path, port: str) -> None:
    """Import the runner's device modules from ``runner`` and point their discovery at ``port``."""
    sys.path.insert(0, str(runner))
    # The runner's own modules, from its directory.
    device_manager = importlib.import_module("device_manager")
    serial_device = importlib.import_module("serial_device")

    def scan(self: Any) -> None:
        """The device list's ``dut`` entry on ``port``; no USB scan, no power or interface board."""
        duts = [d for d in self._device_defs if d.get("type") == "dut"]
        if not duts:
            raise RuntimeError("tinyhil shim: the device list has no entry of type dut")
        self._add_device(SimpleNamespace(device=port), duts[-1])
        for d in self.values():
            self._instantiate(d)

    setattr(device_manager.DeviceManager, "scan", scan)
    setattr(serial_device, "serial", _SerialAsSeen())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.mlperf_shim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", required=True, help="the runner's directory (benchmark/runner)")
    parser.add_argument("--port", required=True, help="the DUT's port URL (unix:///path, socket://host:port, ...)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then main.py's arguments")
    ns = parser.parse_args(argv)
    rest = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    runner = Path(ns.runner).resolve()
    patch(runner, ns.port)
    sys.argv = [str(runner / "main.py"), *rest]
    code = 0
    try:
        runpy.run_path(str(runner / "main.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # the runner's own failure: its traceback, as Python would print it
        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.__stdout__.flush() if sys.__stdout__ else None
    sys.__stderr__.flush() if sys.__stderr__ else None
    # A read thread of the runner's SerialDevice left running after a failure would
    # keep the process alive; it has nothing more to say.
    time.sleep(0.05)
    os._exit(code)


if __name__ == "__main__":
    main()
