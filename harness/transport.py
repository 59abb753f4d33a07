"""Byte streams to a device that lose nothing the device sends after the connection.

pyserial's ``socket://`` and ``rfc2217://`` handlers end ``open()`` with
``reset_input_buffer()``, which reads and throws away whatever has already
arrived. For an emulator that releases the guest the moment the connection is
accepted (QEMU's ``server=on,wait=on``) that discards the start of the boot
banner whenever the client is slower than the guest (a busy host), so the
session then starts mid-stream. Everything here keeps those bytes:

- :class:`StreamPort` is a port over a connected socket (TCP or Unix), with the
  part of pyserial's interface the DUT client uses (read, write, timeout,
  in_waiting, fileno, close) and nothing that discards input;
- :func:`open_url` opens any pyserial URL, with ``socket://`` served by a
  StreamPort and ``rfc2217://`` by pyserial's handler minus the discard.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path
from typing import Any

import serial
from serial import rfc2217


class StreamPort:
    """A connected socket as a serial port; nothing it has received is ever discarded.

    ``timeout`` follows pyserial: None blocks until ``size`` bytes or the peer
    closes, 0 returns what is there, a number waits that long at most.
    """

    # Line settings and modem lines a serial port has; a socket has none of them, but an
    # RFC 2217 server (harness.testing.rfc2217) reads and sets them like any port's.
    baudrate, bytesize, parity, stopbits = 115200, 8, "N", 1
    xonxoff = rtscts = dsrdtr = False
    rts = dtr = True
    break_condition = False
    cts = dsr = cd = True
    ri = False

    def __init__(self, sock: socket.socket, name: str, timeout: float | None = None) -> None:
        self._socket = sock
        self.name = name
        self.timeout = timeout
        self.is_open = True
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # A streamed input (th-batch) goes out at once, not after the peer's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def fileno(self) -> int:
        return self._socket.fileno()

    @property
    def in_waiting(self) -> int:
        ready, _, _ = select.select([self._socket], [], [], 0)
        if not ready:
            return 0
        try:
            return len(self._socket.recv(65536, socket.MSG_PEEK)) or 0
        except BlockingIOError:
            return 0

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise serial.PortNotOpenError()
        data = bytearray()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while len(data) < size:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._socket], [], [], wait)
            if not ready:
                break
            try:
                chunk = self._socket.recv(size - len(data))
            except BlockingIOError:
                continue
            except OSError as e:
                raise serial.SerialException(f"{self.name}: connection lost ({e})") from e
            if not chunk:
                if data:
                    break
                raise serial.SerialException(f"{self.name}: the device closed the connection")
            data += chunk
            if self.timeout == 0:
                break
        return bytes(data)

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [self._socket], [], None)
            if not ready:
                continue
            try:
                sent = self._socket.send(view)
            except BlockingIOError:
                continue
            except OSError as e:
                raise serial.SerialException(f"{self.name}: connection lost ({e})") from e
            view = view[sent:]
        return len(data)

    def flush(self) -> None:
        """Writes are complete when write() returns."""

    def reset_input_buffer(self) -> None:
        """Discards what has arrived: only when a caller asks (an RFC 2217 client's purge)."""
        while self.in_waiting:
            self._socket.recv(65536)

    def reset_output_buffer(self) -> None:
        """Nothing is buffered on our side."""

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._socket.close()

    def __enter__(self) -> StreamPort:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connect_unix(path: Path, timeout: float | None = 0.2) -> StreamPort:
    """A StreamPort on the Unix socket at ``path`` (raises OSError while nobody listens)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return StreamPort(sock, f"unix:{path}", timeout)


def connect_tcp(host: str, port: int, timeout: float | None = 0.2, connect_timeout: float = 5.0) -> StreamPort:
    """A StreamPort on ``host:port`` (raises OSError when nobody listens)."""
    sock = socket.create_connection((host, port), timeout=connect_timeout)
    return StreamPort(sock, f"socket://{host}:{port}", timeout)


class _KeepInputRfc2217(rfc2217.Serial):  # type: ignore[misc]
    """pyserial's RFC 2217 client without the input purge at the end of open()."""

    _opening = False

    def open(self) -> None:
        self._opening = True
        try:
            super().open()
        finally:
            self._opening = False

    def reset_input_buffer(self) -> None:
        if not self._opening:
            super().reset_input_buffer()


def open_url(url: str, **kwargs: Any) -> Any:
    """Open any pyserial port URL so that no byte received after the connection is lost.

    ``socket://host:port`` -> :class:`StreamPort`; ``rfc2217://`` -> pyserial's
    client without its purge; anything else (``/dev/ttyACM0``, ``COM3``,
    ``loop://``) -> ``serial.serial_for_url(url, **kwargs)``. Raises
    ``serial.SerialException`` when the port cannot be opened.
    """
    timeout = kwargs.get("timeout", 0.2)
    if url.startswith("socket://"):
        hostport = url[len("socket://"):].split("?", 1)[0].rstrip("/")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise serial.SerialException(f"{url}: expected socket://HOST:PORT")
        try:
            return connect_tcp(host, int(port), timeout)
        except OSError as e:
            raise serial.SerialException(f"could not open {url}: {e}") from e
    if url.startswith("rfc2217://"):
        port = _KeepInputRfc2217(None, **kwargs)
        port.port = url
        port.open()
        return port
    return serial.serial_for_url(url, **kwargs)


__all__ = ["StreamPort", "connect_tcp", "connect_unix", "open_url"]
