"""An RFC 2217 server for one serial URL: a "board on another host" on this one.

pyserial's ``serial.rfc2217.PortManager`` does the protocol (telnet option
negotiation, baud rate and control-line requests, 0xFF escaping); this module
only moves bytes between one TCP client and the serial side, e.g. QEMU's UART
at ``socket://127.0.0.1:PORT``. The serial side is opened when a client
connects (QEMU started with ``wait=on`` holds the guest until then) and closed
when it leaves, and a serial side that goes away drops the client, as a
remote board unplugged would. Lifecycle::

    with Rfc2217Bridge("socket://127.0.0.1:4000") as bridge:
        port = serial.serial_for_url(bridge.url)   # rfc2217://127.0.0.1:<port>

Serves one client at a time, on the loopback interface unless told otherwise.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import serial
import serial.rfc2217

from harness.transport import open_url


class _Connection:
    """The TCP side as PortManager wants it (``write``), safe from two threads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)


class Rfc2217Bridge:
    """Serves ``rfc2217://host:port`` for the serial port at ``serial_url``."""

    def __init__(self, serial_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.serial_url = serial_url
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rfc2217-bridge", daemon=True)
        self.clients = 0
        self.errors: list[str] = []

    @property
    def url(self) -> str:
        return f"rfc2217://{self.host}:{self.port}"

    def start(self) -> "Rfc2217Bridge":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> "Rfc2217Bridge":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            self.clients += 1
            try:
                self._bridge(client)
            except (OSError, serial.SerialException) as e:
                self.errors.append(str(e))
            finally:
                client.close()

    def _bridge(self, client: socket.socket) -> None:
        ser = open_url(self.serial_url, timeout=0.1)
        conn = _Connection(client)
        manager = serial.rfc2217.PortManager(ser, conn)
        done = threading.Event()

        def serial_to_client() -> None:
            try:
                while not done.is_set():
                    data = ser.read(4096)
                    if data:
                        conn.write(b"".join(manager.escape(data)))
            except (OSError, serial.SerialException):
                pass  # the serial side went away: drop the client below
            finally:
                done.set()
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        reader = threading.Thread(target=serial_to_client, name="rfc2217-serial", daemon=True)
        reader.start()
        client.settimeout(0.2)
        try:
            while not done.is_set() and not self._stop.is_set():
                try:
                    data = client.recv(4096)
                except socket.timeout:
                    continue
                if not data:
                    break
                ser.write(b"".join(manager.filter(data)))
        finally:
            done.set()
            reader.join(timeout=5)
            ser.close()
