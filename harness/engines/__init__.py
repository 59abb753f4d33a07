"""Inference engines: each turns a Model into C sources for a firmware."""
