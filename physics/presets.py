"""The benchmark runner's model presets, built from config.json like every catalog model (no torch, no Django).

A preset is a name and a Hugging Face-style config. Its architecture (:class:`physics.arch.ModelArch`, with the
exact parameter counts) comes from :func:`physics.arch.arch_from_config`, the same function the catalog loader
uses; :class:`ModelConfig` only renames those facts to the torch modules' hyperparameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from physics.arch import ModelArch, arch_from_config
from physics.vocab import Preset

# The catalog's published configs (models/data/configs), read as data files.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "models" / "data" / "configs"


def read_config(filename: str) -> dict[str, Any]:
    """Returns a published config.json from the catalog's config folder."""
    return json.loads((CONFIG_DIR / filename).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ModelConfig:
    """The runner's view of one architecture: the names its torch modules take, read off the ModelArch."""

    name: str  # preset name, reported with every benchmark
    config: dict[str, Any] = field(compare=False, repr=False)  # config.json keys; num_hidden_layers sets the depth

    @cached_property
    def arch(self) -> ModelArch:
        """Returns the architecture and exact counts at this depth."""
        return arch_from_config(self.config, name=self.name)

    dim = property(lambda self: self.arch.hidden)  # hidden size of the residual stream
    n_layers = property(lambda self: self.arch.layers)  # transformer blocks
    n_heads = property(lambda self: self.arch.heads)  # query heads
    n_kv_heads = property(lambda self: self.arch.kv_heads)  # key/value heads (grouped-query attention)
    head_dim = property(lambda self: self.arch.head_dim)  # per-head width
    ffn_dim = property(lambda self: self.arch.ffn)  # hidden width of one expert's SwiGLU
    n_experts = property(lambda self: self.arch.experts)  # experts per MoE layer
    top_k = property(lambda self: self.arch.experts_per_token)  # experts each token is routed to
    vocab_size = property(lambda self: self.arch.vocab)  # tokenizer vocabulary
    rope_theta = property(lambda self: self.arch.rope_theta)  # rotary embedding base
    norm_eps = property(lambda self: self.arch.norm_eps)  # RMSNorm epsilon
    max_seq_len = property(lambda self: self.arch.context_length)  # longest context the model was trained for

    def resized(self, n: int) -> ModelConfig:
        """Returns the same architecture with n transformer blocks (any n ≥ 1: tests build deeper tiny models)."""
        if n < 1:
            raise ValueError(f"layers must be at least 1, got {n}")
        return replace(self, config={**self.config, "num_hidden_layers": n})

    def with_layers(self, n: int) -> ModelConfig:
        """Returns the same config with n transformer blocks (1 <= n <= this config's depth)."""
        if not 1 <= n <= self.n_layers:
            raise ValueError(f"layers must be between 1 and {self.n_layers}, got {n}")
        return self.resized(n)


# mistralai/Mixtral-8x7B-v0.1's config.json: hidden 4096, FFN 14336, 32 layers, 32 heads, 8 KV heads, 8 experts,
# 2 per token, vocabulary 32000, rope_theta 1e6, rms_norm_eps 1e-5, 32768 positions.
MIXTRAL_8X7B = ModelConfig(Preset.MIXTRAL_8X7B.value, read_config("mixtral-8x7b-v0-1.json"))
# Small enough for a unit test in milliseconds, but it keeps GQA (2 query heads per KV head) and top-2 of 4 experts.
TINY = ModelConfig(
    Preset.TINY.value,
    {
        "model_type": "mixtral",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 128,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "vocab_size": 256,
        "rope_theta": 1e6,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 256,
    },
)
PRESETS: dict[str, ModelConfig] = {c.name: c for c in (MIXTRAL_8X7B, TINY)}
# The estimator's Mixtral-8x7B (the reference page's model), from the same config.
MIXTRAL_8X7B_ARCH: ModelArch = arch_from_config(read_config("mixtral-8x7b-v0-1.json"), name="Mixtral-8x7B")
