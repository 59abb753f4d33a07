"""tinyhil's ahead-of-time int8 engine: Python plans and emits C, kernels are C99."""

from harness.engines.builtin.codegen import GeneratedModel, generate

__all__ = ["GeneratedModel", "generate"]
