"""GGUF files as llama.cpp lays them out: which tensors a model has, the type each gets in a format, their bytes.

Pure Python. The benchmark's GGUF writer (bench.gguf_writer) writes exactly these tensors, and the estimator's
weight bytes for a GGUF format come from the same list, so a generated file and an estimate cannot disagree.

Facts re-expressed here, with where they come from (llama.cpp as vendored by llama-cpp-python 0.3.36):

* Block layouts (ggml/src/ggml-common.h): Q4_0 18 bytes per 32 weights, Q5_0 22, Q5_1 24, Q8_0 34; the K-quants
  use 256-weight super-blocks of 144 (Q4_K), 176 (Q5_K) and 210 bytes (Q6_K).
* Tensor names and shapes per architecture (src/models/<arch>.cpp, ``load_arch_tensors``; names as in gguf-py's
  constants). Shapes are in ggml order: the row length (input features) first.
* Which tensors stay in float32 (conversion/base.py): 1-D tensors, norms, biases and the MoE router.
* The per-tensor type of a mixed format (src/llama-quant.cpp, ``llama_tensor_get_type_impl``): for Q4_K_M and
  Q5_K_M, attention V (or fused QKV) and FFN down of "more bits" layers are Q6_K; the output head (or a tied
  embedding) is Q6_K; 8-expert models keep attention K and V at Q8_0 and, in Q4_K_*, attention output at Q5_K;
  80-layer Llama/Qwen2 ("70B") lift attention V from Q4_K to Q5_K. A row length that the block does not divide
  falls back to a 32-block type (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0), else F16.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from physics.arch import ModelArch

# ggml type → (weights per block, bytes per block)
BLOCKS: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "Q4_0": (32, 18),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
}

# A file format (llama-quantize's name) → the type most tensors get.
FORMAT_TYPES: dict[str, str] = {
    "Q4_0": "Q4_0",
    "Q4_K_S": "Q4_K",
    "Q4_K_M": "Q4_K",
    "Q5_K_S": "Q5_K",
    "Q5_K_M": "Q5_K",
    "Q6_K": "Q6_K",
    "Q8_0": "Q8_0",
    "F16": "F16",
    "BF16": "BF16",
}
# llama_ftype numbers, written to general.file_type (include/llama.h).
FILE_TYPES: dict[str, int] = {
    "F16": 1,
    "Q4_0": 2,
    "Q8_0": 7,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "BF16": 32,
}
_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}

# Hugging Face model_type → llama.cpp architecture (Mistral and Mixtral convert to "llama"; Kimi K2 is DeepSeek-V3).
GGUF_ARCH: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "mixtral": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3moe",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "granite": "granite",
    "gemma3_text": "gemma3",
    "phi3": "phi3",
    "deepseek_v2": "deepseek2",
    "deepseek_v3": "deepseek2",
    "kimi_k2": "deepseek2",
}


class UnsupportedModel(ValueError):
    """A model whose GGUF layout this module does not know (its architecture is named in the message)."""


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: name, ggml shape (row length first), and how the quantizer treats it."""

    name: str  # "blk.3.attn_v.weight"
    shape: tuple[int, ...]  # ggml order: (row length, rows[, experts])
    layer: int = -1  # block index; -1 for the embedding, final norm and head
    float32: bool = False  # norms, biases and the MoE router stay F32 in every format
    experts: int = 0  # >0: a stacked expert tensor (one decode step reads experts_per_token of them)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def tensor_bytes(shape: tuple[int, ...], ggml_type: str) -> int:
    """Returns the bytes of a tensor of ``shape`` (ggml order) stored as ``ggml_type``."""
    block, size = BLOCKS[ggml_type]
    numel = 1
    for d in shape:
        numel *= d
    if shape[0] % block:
        raise ValueError(f"row length {shape[0]} is not a multiple of {ggml_type}'s block of {block}")
    return numel // block * size


def gguf_arch(arch: ModelArch) -> str:
    """Returns llama.cpp's architecture name for a model; raises UnsupportedModel when there is none here.

    An architecture without a model_type (one rebuilt from a catalog row) is laid out as a generic "llama"
    (separate Q, K, V; gated FFN), unless it uses latent attention, whose shapes a row does not hold.
    """
    if not arch.model_type and arch.attention != "mla":
        return "llama"
    try:
        return GGUF_ARCH[arch.model_type]
    except KeyError:
        raise UnsupportedModel(
            f"no GGUF layout for model_type {arch.model_type!r}; supported: {sorted(set(GGUF_ARCH))}"
        ) from None


def tensor_plan(arch: ModelArch) -> list[GGUFTensor]:
    """Returns every tensor of the model's GGUF in the loader's order (by layer, then by name).

    A new list each call (the caller may change it); the work is done once per architecture (_plan).
    """
    return list(_plan(arch))


@lru_cache(maxsize=4096)
def _plan(arch: ModelArch) -> tuple[GGUFTensor, ...]:
    """Returns tensor_plan's tensors as a tuple, kept per architecture: every format of a model shares them.

    The elements add up to ``arch.total_params`` (tests check it for the catalog), so the file holds the model's
    exact parameter count. Optional tensors a converted file may carry (Phi-3's long-rope factors) are left out.
    """
    kind = gguf_arch(arch)
    h, v = arch.hidden, arch.vocab
    out = [GGUFTensor("token_embd.weight", (h, v)), GGUFTensor("output_norm.weight", (h,), float32=True)]
    if not arch.tied_embeddings and kind != "gemma2":
        out.append(GGUFTensor("output.weight", (h, v)))
    for i in range(arch.layers):
        out += sorted(_layer(arch, kind, i), key=lambda t: t.name)
    return tuple(out)


def _layer(arch: ModelArch, kind: str, i: int) -> list[GGUFTensor]:
    """Returns the tensors of block i (unsorted)."""
    h = arch.hidden

    def t(name: str, *shape: int, f32: bool = False, experts: int = 0) -> GGUFTensor:
        return GGUFTensor(f"blk.{i}.{name}", tuple(shape), layer=i, float32=f32 or len(shape) == 1, experts=experts)

    out = [t("attn_norm.weight", h), t("ffn_norm.weight", h)]
    if kind == "deepseek2":
        out += _mla(arch, t)
    else:
        q, kv = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
        if kind == "phi3":
            out.append(t("attn_qkv.weight", h, q + 2 * kv))
        else:
            out += [t("attn_q.weight", h, q), t("attn_k.weight", h, kv), t("attn_v.weight", h, kv)]
        out.append(t("attn_output.weight", q, h))
        if kind == "qwen2":
            out += [t("attn_q.bias", q), t("attn_k.bias", kv), t("attn_v.bias", kv)]
        if kind in ("qwen3", "qwen3moe", "gemma3"):
            out += [t("attn_q_norm.weight", arch.head_dim), t("attn_k_norm.weight", arch.head_dim)]
        if kind in ("gemma2", "gemma3"):
            out += [t("post_attention_norm.weight", h), t("post_ffw_norm.weight", h)]
    moe = arch.experts > 0 and _is_moe_layer(arch, i)
    if not moe:
        f = arch.dense_ffn or arch.ffn
        if kind == "phi3":
            out += [t("ffn_up.weight", h, 2 * f), t("ffn_down.weight", f, h)]
        else:
            out += [t("ffn_gate.weight", h, f), t("ffn_up.weight", h, f), t("ffn_down.weight", f, h)]
        return out
    e, f = arch.experts, arch.ffn
    out += [
        t("ffn_gate_inp.weight", h, e, f32=True),
        t("ffn_gate_exps.weight", h, f, e, experts=e),
        t("ffn_up_exps.weight", h, f, e, experts=e),
        t("ffn_down_exps.weight", f, h, e, experts=e),
    ]
    if arch.shared_expert_params:
        s = arch.shared_expert_params // (3 * h)  # width of the shared experts together
        out += [t("ffn_gate_shexp.weight", h, s), t("ffn_up_shexp.weight", h, s), t("ffn_down_shexp.weight", s, h)]
    if kind == "deepseek2" and _router_bias(arch):
        out.append(t("exp_probs_b.bias", e))
    return out


def _mla(arch: ModelArch, t) -> list[GGUFTensor]:
    """Returns DeepSeek's multi-head latent attention tensors for one block (the split K/V up-projections)."""
    h, heads = arch.hidden, arch.heads
    qk = arch.qk_nope_head_dim + arch.qk_rope_head_dim
    out = [t("attn_kv_a_norm.weight", arch.kv_lora_rank)]
    if arch.q_lora_rank:
        out += [
            t("attn_q_a_norm.weight", arch.q_lora_rank),
            t("attn_q_a.weight", h, arch.q_lora_rank),
            t("attn_q_b.weight", arch.q_lora_rank, heads * qk),
        ]
    else:
        out.append(t("attn_q.weight", h, heads * qk))
    out += [
        t("attn_kv_a_mqa.weight", h, arch.kv_lora_rank + arch.qk_rope_head_dim),
        t("attn_k_b.weight", arch.qk_nope_head_dim, arch.kv_lora_rank, heads),
        t("attn_v_b.weight", arch.kv_lora_rank, arch.v_head_dim, heads),
        t("attn_output.weight", heads * arch.v_head_dim, h),
    ]
    return out


def _is_moe_layer(arch: ModelArch, i: int) -> bool:
    """Returns True when block i routes to experts (DeepSeek's first dense blocks do not)."""
    return i >= arch.layers - arch.moe_layers


def _router_bias(arch: ModelArch) -> bool:
    """Returns True for DeepSeek-V3-style routers (noaux_tc), which keep one correction bias per expert."""
    return arch.model_type in ("deepseek_v3", "kimi_k2")


def first_dense_layers(arch: ModelArch) -> int:
    """Returns how many leading blocks have a dense FFN (DeepSeek's first_k_dense_replace; 0 for the others)."""
    return arch.layers - arch.moe_layers if arch.experts else 0


def _more_bits(i: int, n: int) -> bool:
    """Returns llama.cpp's use_more_bits rule: the first and last eighth of n, and every third one between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _is_70b(arch: ModelArch, kind: str) -> bool:
    """Returns True when llama.cpp types the model "70B": 80 blocks of Llama with GQA, or of Qwen2."""
    return arch.layers == 80 and (
        kind == "qwen2" or (kind == "llama" and arch.heads != arch.kv_heads and not arch.experts)
    )


def tensor_types(arch: ModelArch, fmt: str, plan: list[GGUFTensor] | None = None) -> list[str]:
    """Returns the ggml type of each tensor of ``plan`` (default: tensor_plan(arch)) in format ``fmt``.

    Follows llama-quantize's choices for a file converted from 16-bit weights, without an importance matrix.
    """
    if fmt not in FORMAT_TYPES:
        raise ValueError(f"unknown GGUF format {fmt!r}; expected one of {sorted(FORMAT_TYPES)}")
    plan = tensor_plan(arch) if plan is None else plan
    mix = _Mix(arch, fmt, plan)
    return [mix.type_of(t) for t in plan]


def _role(name: str) -> str:
    """Returns the quantizer's category of a tensor name (llama-quant.cpp's tensor_get_category)."""
    if name == "output.weight":
        return "output"
    if name == "token_embd.weight":
        return "token_embd"
    for key, role in (
        ("attn_qkv.weight", "attn_qkv"),
        ("attn_kv_b.weight", "attn_qkv"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_q.weight", "attn_q"),
        ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"),
        ("ffn_gate", "ffn_gate"),
        ("ffn_down", "ffn_down"),
    ):
        if key in name:
            return role
    return "other"


class _Mix:
    """llama-quantize's walk over a file's tensors in loader order, with its attention-V and FFN-down counters."""

    def __init__(self, arch: ModelArch, fmt: str, plan: list[GGUFTensor]) -> None:
        self.arch, self.fmt, self.base = arch, fmt, FORMAT_TYPES[fmt]
        self.kind = gguf_arch(arch)
        self.quantized = self.base not in ("F16", "BF16")
        self.tied = not any(t.name == "output.weight" for t in plan)
        self.eight_experts = arch.experts == 8
        self.n_v = sum(1 for t in plan if _role(t.name) in ("attn_v", "attn_qkv"))
        self.i_v = 0  # attention-V tensors seen so far
        self.i_down = 0  # FFN-down tensors seen so far (dense models count them; MoE models read the block)

    def type_of(self, t: GGUFTensor) -> str:
        """Returns the type of the next tensor in loader order."""
        if t.float32:
            return "F32"
        if not self.quantized:
            return self.base
        role = _role(t.name)
        if role == "output" or (self.tied and role == "token_embd"):
            new = self._head(t)
        elif role in ("attn_v", "attn_qkv"):
            new = self._attn_v()
        elif role == "ffn_down":
            new = self._ffn_down(t)
        elif role == "attn_k" and self.eight_experts:
            new = "Q8_0"
        elif role == "attn_output" and self.eight_experts and self.fmt in ("Q4_K_S", "Q4_K_M"):
            new = "Q5_K"
        else:
            new = self.base
        return _fit_block(new, t.shape[0])

    def _head(self, t: GGUFTensor) -> str:
        if t.shape[0] % BLOCKS[self.base][0]:
            return "Q8_0"
        return self.base if self.base == "Q8_0" else "Q6_K"

    def _attn_v(self) -> str:
        new = self.base
        if self.fmt in ("Q4_K_M", "Q5_K_M") and _more_bits(self.i_v, self.n_v):
            new = "Q6_K"
        elif self.fmt == "Q4_K_S" and self.i_v < 4:
            new = "Q5_K"
        if _is_70b(self.arch, self.kind) and new == "Q4_K":
            new = "Q5_K"
        if self.eight_experts:
            new = "Q8_0"
        self.i_v += 1
        return new

    def _ffn_down(self, t: GGUFTensor) -> str:
        layer = t.layer if self.arch.experts > 1 else self.i_down
        n = self.arch.layers
        self.i_down += 1
        if self.fmt in ("Q4_K_M", "Q5_K_M") and _more_bits(layer, n):
            return "Q6_K"
        if self.fmt == "Q4_K_S" and layer < n // 8:
            return "Q5_K"
        return self.base


def _fit_block(ggml_type: str, row: int) -> str:
    """Returns ggml_type, or the quantizer's fallback when the row length is not a multiple of its block."""
    if row % BLOCKS[ggml_type][0] == 0:
        return ggml_type
    fallback = _FALLBACK.get(ggml_type, ggml_type)
    return fallback if row % BLOCKS[fallback][0] == 0 else "F16"


@dataclass(frozen=True)
class GGUFLayout:
    """A model's GGUF in one format: its tensors, their types and bytes, and what one decode step reads."""

    arch: str  # llama.cpp architecture
    fmt: str
    tensors: tuple[GGUFTensor, ...]
    types: tuple[str, ...]
    sizes: tuple[int, ...]  # bytes per tensor
    experts_per_token: int = 0  # experts a token visits in an MoE block

    @property
    def weight_bytes(self) -> int:
        """Returns the bytes of every tensor (the file less its header)."""
        return sum(self.sizes)

    def step_bytes(self, experts_touched: float | None = None) -> float:
        """Returns the weight bytes one single-token decode step reads.

        Everything but the input embedding (one row of it is gathered; a tied embedding is read whole as the
        head), with each stacked expert tensor counted for ``experts_touched`` of its experts (default: the
        experts a token visits).
        """
        total = 0.0
        tied = not any(t.name == "output.weight" for t in self.tensors)
        for t, size in zip(self.tensors, self.sizes, strict=True):
            if t.name == "token_embd.weight" and not tied:
                total += size / t.shape[1]  # one row
            elif t.experts:
                total += size / t.experts * (self.experts_per_token if experts_touched is None else experts_touched)
            else:
                total += size
        return total

    def by_type(self) -> dict[str, int]:
        """Returns bytes per ggml type."""
        out: dict[str, int] = {}
        for ty, size in zip(self.types, self.sizes, strict=True):
            out[ty] = out.get(ty, 0) + size
        return out


@lru_cache(maxsize=16384)
def layout(arch: ModelArch, fmt: str) -> GGUFLayout:
    """Returns the model's GGUF layout in ``fmt``; raises UnsupportedModel or ValueError (unknown format).

    Kept per (architecture, format): pages lay out every catalog model in every GGUF format.
    """
    plan = tensor_plan(arch)
    types = tensor_types(arch, fmt, plan)
    sizes = tuple(tensor_bytes(t.shape, ty) for t, ty in zip(plan, types, strict=True))
    return GGUFLayout(
        arch=gguf_arch(arch),
        fmt=fmt,
        tensors=tuple(plan),
        types=tuple(types),
        sizes=sizes,
        experts_per_token=arch.experts_per_token,
    )


def supported(arch: ModelArch) -> bool:
    """Returns True when tensor_plan knows the model's architecture (or can lay it out as a generic llama)."""
    return arch.model_type in GGUF_ARCH or (not arch.model_type and arch.attention != "mla")
