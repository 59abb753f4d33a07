"""The TFLM engine behind the registry's protocol (harness.engines.Engine)."""

from __future__ import annotations

from typing import Sequence

from harness.engines import BuiltImage, EngineSpec, Progress, register
from harness.model import Model
from harness.runners.base import RunRecord, Runner
from harness.targets import TargetDescriptor


class TflmEngine:
    """TensorFlow Lite Micro from pinned source trees, reference or CMSIS-NN kernels."""

    name = "tflm"
    kernels: tuple[str, ...] = ("ref", "cmsis-nn")
    profiles = False

    def check(self, spec: EngineSpec, model: Model, targets: Sequence[TargetDescriptor]) -> None:
        from harness.engines.tflm.codegen import check_ops, resolver_methods
        from harness.engines.tflm.firmware import check_target
        from harness.engines.tflm.trees import find_trees

        trees = find_trees(spec.tflm_src, (spec.kernels,))
        check_ops(model, resolver_methods(trees.tflm))
        for target in targets:
            check_target(target)

    def build(self, spec: EngineSpec, model: Model, target: TargetDescriptor, runner: Runner,
              timeout_s: float, progress: Progress) -> BuiltImage:
        from harness.engines.tflm.firmware import build_tflm_firmware
        from harness.engines.tflm.trees import find_trees

        trees = find_trees(spec.tflm_src, (spec.kernels,))
        built = build_tflm_firmware(model, target, spec.kernels, trees, runner, timeout_s, progress)
        return BuiltImage(built.image, self.name, built.engine_version, spec.kernels, built.arena_used_bytes)

    def explain(self, spec: EngineSpec, record: RunRecord) -> RunRecord:
        from harness.engines.tflm.firmware import explain as tflm_explain

        return tflm_explain(record)


register(TflmEngine())
