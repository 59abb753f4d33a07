"""Stand-ins shared by the tests (no toolchain, no QEMU)."""

from __future__ import annotations


class BytesPort:
    """A serial port that plays back ``data`` and accepts any write."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def write(self, data: bytes) -> int:
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out, self.data = self.data[:size], self.data[size:]
        return out

    def close(self) -> None:
        pass
