"""The runner's model shapes: plain data, importable without torch (the web side reads them for estimates)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelConfig:
    name: str  # preset name, reported with every benchmark
    dim: int  # hidden size of the residual stream
    n_layers: int  # transformer blocks
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads (grouped-query attention)
    head_dim: int  # per-head width; dim == n_heads * head_dim for Mixtral
    ffn_dim: int  # hidden width of one expert's SwiGLU
    n_experts: int  # experts per MoE layer
    top_k: int  # experts each token is routed to
    vocab_size: int  # tokenizer vocabulary
    rope_theta: float  # rotary embedding base
    norm_eps: float  # RMSNorm epsilon
    max_seq_len: int  # longest context the model was trained for

    def with_layers(self, n: int) -> ModelConfig:
        """Returns the same config with n transformer blocks (1 <= n <= this config's depth)."""
        if not 1 <= n <= self.n_layers:
            raise ValueError(f"layers must be between 1 and {self.n_layers}, got {n}")
        return replace(self, n_layers=n)


# Values from mistralai/Mixtral-8x7B-v0.1 config.json (hidden_size 4096, intermediate_size 14336, 32 layers,
# 32 heads, 8 KV heads, 8 local experts, 2 per token, vocab 32000, rope_theta 1e6, rms_norm_eps 1e-5, 32768 positions).
MIXTRAL_8X7B = ModelConfig("mixtral-8x7b", 4096, 32, 32, 8, 128, 14336, 8, 2, 32000, 1e6, 1e-5, 32768)
# Small enough for a unit test in milliseconds, but it keeps GQA (2 query heads per KV head) and top-2 of 4 experts.
TINY = ModelConfig("tiny", 64, 2, 4, 2, 16, 128, 4, 2, 256, 1e6, 1e-5, 256)
PRESETS: dict[str, ModelConfig] = {c.name: c for c in (MIXTRAL_8X7B, TINY)}
