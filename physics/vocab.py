"""The project's vocabularies, each defined once: forms, argparse, the API schema and the physics read them here.

Adding a member here (and its physics, where it has any) is the whole change: every entry point derives its
choices from these enums.
"""

from __future__ import annotations

from enum import StrEnum


class Precision(StrEnum):
    """Weights precision of a gpufit-torch benchmark run (the runner's own quantization is weight-only)."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"
    INT8 = "int8"
    INT4 = "int4"

    @property
    def bits(self) -> float:
        """Returns bits per weight as stored: int4 keeps a bf16 scale and zero per group of 128 (4 + 32/128)."""
        return {"fp32": 32.0, "bf16": 16.0, "fp16": 16.0, "int8": 8.0, "int4": 4.25}[self.value]

    @property
    def quantized(self) -> bool:
        """Returns True for the weight-only integer formats (module swap in the runner)."""
        return self in (Precision.INT8, Precision.INT4)

    @property
    def quant_kind(self) -> str:
        """Returns the estimator's format kind: 'float' for float weights, 'torch' for the runner's int formats."""
        return "torch" if self.quantized else "float"

    @property
    def format_name(self) -> str:
        """Returns the catalog format that matches this precision (the model page's quantization rows)."""
        return {"int8": "torch-int8", "int4": "torch-int4"}.get(self.value, self.value)

    @property
    def label(self) -> str:
        return {
            "bf16": "bf16",
            "fp16": "fp16",
            "fp32": "fp32 (CPU)",
            "int8": "int8 weight-only",
            "int4": "int4 weight-only",
        }[self.value]


class KVCache(StrEnum):
    """Element type of the KV cache. q8/q4 are llama.cpp's q8_0 (34 bytes per 32 values) and q4_0 (18 per 32)."""

    FP16 = "fp16"
    Q8 = "q8"
    Q4 = "q4"

    @property
    def bits(self) -> float:
        """Returns bits per cached element, block scales included."""
        return {"fp16": 16.0, "q8": 8.5, "q4": 4.5}[self.value]

    @property
    def label(self) -> str:
        return self.value


class Split(StrEnum):
    """How a model is spread over several GPUs."""

    LAYER = "layer"
    TENSOR = "tensor"

    @property
    def label(self) -> str:
        return {"layer": "Layer split (llama.cpp)", "tensor": "Tensor parallel (vLLM)"}[self.value]


class Engine(StrEnum):
    """Inference engines an estimate may be made for; each has its own calibration rows."""

    LLAMA_CPP = "llama.cpp"
    VLLM = "vllm"
    TENSORRT_LLM = "tensorrt-llm"
    SGLANG = "sglang"
    TRANSFORMERS = "transformers"
    GPT_FAST = "gpt-fast"
    MLC = "mlc"
    EXLLAMAV2 = "exllamav2"
    GPUFIT_TORCH = "gpufit-torch"

    @property
    def label(self) -> str:
        return self.value


class Preset(StrEnum):
    """Model shapes a gpufit-torch benchmark job may run (built from the model's config.json)."""

    MIXTRAL_8X7B = "mixtral-8x7b"
    TINY = "tiny"

    @property
    def label(self) -> str:
        return {"mixtral-8x7b": "Mixtral-8x7B (real shapes)", "tiny": "Tiny Mixtral (tests, seconds on a CPU)"}[
            self.value
        ]


def choices(vocabulary: type[StrEnum]) -> list[tuple[str, str]]:
    """Returns Django-style (value, label) pairs for a vocabulary."""
    return [(member.value, member.label) for member in vocabulary]


def values(vocabulary: type[StrEnum]) -> tuple[str, ...]:
    """Returns the vocabulary's values in declaration order (argparse choices, API enums)."""
    return tuple(member.value for member in vocabulary)
