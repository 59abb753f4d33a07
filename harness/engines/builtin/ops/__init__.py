"""Op lowerings of the builtin engine; importing this package registers them all."""

from harness.engines.builtin.ops import fully_connected, reshape  # noqa: F401
