"""The builtin engine behind the registry's protocol (harness.engines.Engine)."""

from __future__ import annotations

from typing import Sequence

from harness.engines import BuiltImage, EngineSpec, Progress, register
from harness.model import Model
from harness.runners.base import RunRecord, Runner
from harness.targets import TargetDescriptor


class BuiltinEngine:
    """tinyhil's ahead-of-time int8 engine: generated C + the kernel library."""

    name = "builtin"
    kernels: tuple[str, ...] = ()
    profiles = True

    def check(self, spec: EngineSpec, model: Model, targets: Sequence[TargetDescriptor]) -> None:
        from harness.engines.builtin import generate

        generate(model)  # an unsupported op is an UnsupportedOpError naming it

    def build(self, spec: EngineSpec, model: Model, target: TargetDescriptor, runner: Runner,
              timeout_s: float, progress: Progress) -> BuiltImage:
        from harness.build import build_firmware
        from harness.engines.builtin import generate
        from harness.results import engine_version

        progress("generating C" + (f" ({target.builtin_isa})" if target.builtin_isa else ""))
        gen = generate(model, target.builtin_isa)
        progress("building firmware")
        return BuiltImage(build_firmware(gen, target), self.name, engine_version(), "", None)

    def explain(self, spec: EngineSpec, record: RunRecord) -> RunRecord:
        return record


register(BuiltinEngine())
