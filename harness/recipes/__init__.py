"""Compression recipes: a float .tflite in, a quantized (and maybe compressed) .tflite out.

Each recipe is one small module that registers itself by name pattern with
:func:`recipe`; :func:`parse_recipe` turns a user's name (``int8``,
``prune50-int8``, ``cluster16-lut``) into a :class:`RecipeSpec`, and
:func:`apply_recipe` runs it, cached under ``~/.cache/tinyhil/recipes`` by
(input model hash, recipe, parameters, calibration data, tool versions).

The quantizing recipes need ai-edge-quantizer (``pip install -e '.[recipes]'``)
and calibration data (:mod:`harness.recipes.calibration`); without either
they refuse with a :class:`RecipeError` instead of guessing.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from harness.errors import UserInputError

INSTALL_HINT = "pip install -e '.[recipes]'"


class RecipeError(UserInputError):
    """A recipe that cannot run: unknown name, bad parameter, no calibration data, a refused model."""


@dataclass(frozen=True)
class Calibration:
    """Float32 inputs (one array per model input, per sample) and where they came from."""

    samples: tuple[tuple[np.ndarray, ...], ...]
    source: str

    def digest(self) -> str:
        h = hashlib.sha256(self.source.encode())
        for s in self.samples:
            for a in s:
                h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
        return h.hexdigest()


RecipeFn = Callable[[bytes, "Calibration | None", dict[str, int]], bytes]


@dataclass(frozen=True)
class RecipeDef:
    pattern: str  # what the user types, e.g. "prune<P>-int8"
    regex: re.Pattern[str]
    fn: RecipeFn
    summary: str
    check: Callable[[dict[str, int]], None] = field(default=lambda _p: None)


REGISTRY: dict[str, RecipeDef] = {}


def recipe(pattern: str, summary: str, check: Callable[[dict[str, int]], None] | None = None
           ) -> Callable[[RecipeFn], RecipeFn]:
    """Register ``fn`` under ``pattern``; ``<X>`` in a pattern is an integer parameter ``x``."""
    regex = re.compile("^" + re.sub(r"<([A-Z])>", lambda m: f"(?P<{m.group(1).lower()}>\\d+)",
                                    re.escape(pattern).replace(r"\<", "<").replace(r"\>", ">")) + "$")

    def register(fn: RecipeFn) -> RecipeFn:
        REGISTRY[pattern] = RecipeDef(pattern, regex, fn, summary, check or (lambda _p: None))
        return fn

    return register


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe name resolved to its definition and integer parameters."""

    name: str
    definition: RecipeDef
    params: tuple[tuple[str, int], ...]


def recipe_names() -> list[str]:
    _load_all()
    return list(REGISTRY)


def parse_recipe(name: str) -> RecipeSpec:
    """``prune50-int8`` -> RecipeSpec; an unknown name or a bad parameter is a RecipeError."""
    _load_all()
    name = name.strip()
    for d in REGISTRY.values():
        m = d.regex.match(name)
        if m:
            params = {k: int(v) for k, v in m.groupdict().items()}
            d.check(params)
            return RecipeSpec(name, d, tuple(sorted(params.items())))
    raise RecipeError(f"unknown recipe {name!r}: expected one of {', '.join(REGISTRY)}")


def parse_recipes(names: str | list[str]) -> list[RecipeSpec]:
    items = names.split(",") if isinstance(names, str) else [n for x in names for n in x.split(",")]
    specs = [parse_recipe(n) for n in items if n.strip()]
    if not specs:
        raise RecipeError("--recipes: give at least one recipe, e.g. int8,prune50-int8")
    return specs


def require_quantizer() -> None:
    """Raise RecipeError when ai-edge-quantizer is not installed."""
    try:
        import ai_edge_quantizer  # noqa: F401
    except ImportError:
        raise RecipeError(f"recipes need ai-edge-quantizer, which is not installed: {INSTALL_HINT}") from None


def _tool_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("ai-edge-quantizer", "tflite-micro"):
        try:
            out.append(f"{pkg}={version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg}=none")
    return ",".join(out)


# Bumped when a recipe's implementation changes what it writes.
RECIPES_VERSION = 3


def apply_recipe(spec: RecipeSpec, float_model: Path, calibration: Calibration | None,
                 cache: Path | None = None) -> Path:
    """Run ``spec`` on ``float_model``; returns the cached output .tflite."""
    from harness.firmware import cache_dir

    raw = float_model.read_bytes()
    key = hashlib.sha256("\0".join([
        hashlib.sha256(raw).hexdigest(), spec.definition.pattern, repr(spec.params),
        calibration.digest() if calibration is not None else "-", _tool_versions(), str(RECIPES_VERSION),
    ]).encode()).hexdigest()[:24]
    out = (cache or cache_dir() / "recipes") / f"{float_model.stem}.{spec.name}.{key}.tflite"
    if out.is_file():
        return out
    data = spec.definition.fn(raw, calibration, dict(spec.params))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def _load_all() -> None:
    from harness.recipes import cluster, int8, int8_per_tensor, int16x8, prune  # noqa: F401
