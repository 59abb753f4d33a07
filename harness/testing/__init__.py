"""Stand-ins for hardware, for tinyhil's tests and for trying a setup without a board."""
