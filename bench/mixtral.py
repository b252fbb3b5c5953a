"""A compact torch Mixtral (sparse Mixture of Experts) for benchmarking at the real shapes.

Layout, top-down: config and presets -> KV cache -> blocks (norm, attention, MoE) -> model -> materialisation
(random init in place, or a local Hugging Face safetensors checkpoint). No Django import: the GPU host runs this
without the web stack.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# The shapes live apart so that the web process can read them without importing torch; re-exported here.
from physics.presets import MIXTRAL_8X7B, PRESETS, TINY, ModelConfig  # noqa: F401

# torch._grouped_mm runs one matmul per group of rows in a single call (CPU fallback, CUDA kernels for bf16 on
# Hopper and newer). It is a private API, so every use goes through _grouped_mm_ok() and falls back to a loop.
HAS_GROUPED_MM = hasattr(torch, "_grouped_mm")


class KVCache(nn.Module):
    """Static cache: preallocated once, written at input_pos, so decode never reallocates (CUDA-graph friendly)."""

    def __init__(self, batch: int, n_kv: int, max_seq: int, head_dim: int, dtype: torch.dtype, device: torch.device):
        super().__init__()
        shape = (batch, n_kv, max_seq, head_dim)  # [B, n_kv, S, hd]
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the whole cache after writing k, v ([B, n_kv, T, hd]) at positions input_pos ([T])."""
        self.k.index_copy_(2, input_pos, k.to(self.k.dtype))
        self.v.index_copy_(2, input_pos, v.to(self.v.dtype))
        return self.k, self.v


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32: bf16 sums of squares over 4096 channels lose too many bits.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_tables(seq_len: int, head_dim: int, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (cos, sin), each [seq_len, head_dim] float32, in the half-split layout of the HF checkpoints."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)  # [S, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [S, hd]
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Returns x ([B, H, T, hd]) rotated by the angles of its positions (cos/sin: [T, hd])."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor, input_pos: torch.Tensor
    ):
        b, t, _ = x.shape
        hd = self.cfg.head_dim
        q = self.wq(x).view(b, t, self.cfg.n_heads, hd).transpose(1, 2)  # [B, H, T, hd]
        k = self.wk(x).view(b, t, self.cfg.n_kv_heads, hd).transpose(1, 2)  # [B, n_kv, T, hd]
        v = self.wv(x).view(b, t, self.cfg.n_kv_heads, hd).transpose(1, 2)  # [B, n_kv, T, hd]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        assert self.kv_cache is not None, "call model.setup_caches() first"
        k, v = self.kv_cache.update(input_pos, k, v)  # [B, n_kv, S, hd]
        # The mask hides unwritten cache slots and the future; enable_gqa shares each KV head across its query group.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)  # [B, H, T, hd]
        return self.wo(y.transpose(1, 2).reshape(b, t, self.cfg.n_heads * hd))  # [B, T, dim]


def _grouped_mm_ok(x: torch.Tensor) -> bool:
    """Returns whether torch._grouped_mm can serve this activation's dtype and device."""
    if not HAS_GROUPED_MM:
        return False
    if x.device.type == "cuda":
        # The CUDA kernel is bf16-only and needs sm90+ (Hopper); older cards take the per-expert loop.
        return x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device)[0] >= 9
    return x.device.type == "cpu"


def matvec(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Returns w [..., out, in] applied to x [..., in] (leading dims broadcast): [..., out] in float32.

    For gathered experts, w is [T, k, out, in] (one matrix per token copy) and x [T, k or 1, in]. Under
    torch.compile it is written as a product and a sum, which inductor emits as one reduction that loads each
    weight once, straight from the expert stack: the gather (and a dequantization in w's expression) fuse into the
    load. A batched matmul there would first copy the gathered weights, tripling the bytes moved. Eager, the
    product would be that copy in float32, so the matmul is used.
    """
    if torch.compiler.is_compiling():
        return (x.float().unsqueeze(-2) * w.float()).sum(-1)
    return torch.matmul(w.to(x.dtype), x.unsqueeze(-1)).squeeze(-1).float()


class RoutedFFN(nn.Module):
    """Shared routing logic of the expert stacks; subclasses provide forward_gather and _ffn for their storage."""

    # Set by the runner for torch.compile: the gathered-weight path is what inductor fuses for tiny batches.
    prefer_gather = False

    def use_gather(self, n_tokens: int) -> bool:
        """Returns whether n_tokens routed tokens should take the gathered-weight path."""
        return self.prefer_gather and n_tokens <= 16

    def forward(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Returns sum_k weights[t, k] * expert_{idx[t, k]}(x[t]) for x [T, dim], idx/weights [T, k]."""
        if self.use_gather(x.shape[0]):
            return self.forward_gather(x, idx, weights)
        return self.forward_dispatch(x, idx, weights)

    def forward_dispatch(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Returns the MoE output by sorting token copies by expert and running one matmul per expert."""
        t, k = idx.shape
        flat = idx.reshape(-1)  # [T*k]
        order = torch.argsort(flat, stable=True)  # token copies grouped by expert
        token_of = order // k  # [T*k] source row of each sorted copy
        xs = x[token_of]  # [T*k, dim]
        # scatter_add instead of bincount: bincount syncs with the host on CUDA, which breaks graph capture.
        counts = torch.zeros(self.n_experts, dtype=torch.int32, device=x.device)
        counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
        h = self._ffn(xs, counts)  # [T*k, dim]
        h = h * weights.reshape(-1)[order].unsqueeze(-1).to(h.dtype)
        return torch.zeros_like(x).index_add_(0, token_of, h.to(x.dtype))


class Experts(RoutedFFN):
    """The n_experts SwiGLU FFNs of one layer, stored stacked: w1/w3 [E, ffn, dim], w2 [E, dim, ffn]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_experts, self.top_k = cfg.n_experts, cfg.top_k
        self.w1 = nn.Parameter(torch.empty(cfg.n_experts, cfg.ffn_dim, cfg.dim))
        self.w3 = nn.Parameter(torch.empty(cfg.n_experts, cfg.ffn_dim, cfg.dim))
        self.w2 = nn.Parameter(torch.empty(cfg.n_experts, cfg.dim, cfg.ffn_dim))

    def forward_gather(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Returns the MoE output by gathering each token's expert weights; only sensible for a few tokens."""
        xt = x.unsqueeze(1)  # [T, 1, dim]: every chosen expert of a token reads the same row
        h = F.silu(matvec(xt, self.w1[idx])) * matvec(xt, self.w3[idx])  # [T, k, ffn]
        y = matvec(h.to(x.dtype), self.w2[idx])  # [T, k, dim]
        return (y * weights.unsqueeze(-1)).sum(1).to(x.dtype)

    def _ffn(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Returns the SwiGLU output of rows xs [N, dim] already grouped by expert (counts [E] rows each)."""
        if _grouped_mm_ok(xs) and self.w1.dtype == xs.dtype:
            offs = torch.cumsum(counts, 0, dtype=torch.int32)
            a = torch._grouped_mm(xs, self.w1.transpose(-2, -1), offs=offs)  # [N, ffn]
            b = torch._grouped_mm(xs, self.w3.transpose(-2, -1), offs=offs)  # [N, ffn]
            return torch._grouped_mm(F.silu(a) * b, self.w2.transpose(-2, -1), offs=offs)  # [N, dim]
        out = torch.empty(xs.shape[0], self.w2.shape[1], dtype=xs.dtype, device=xs.device)
        start = 0
        for e, n in enumerate(counts.tolist()):  # host sync: fine for prefill, avoided by the paths above
            if n:
                rows = xs[start : start + n]
                out[start : start + n] = F.linear(
                    F.silu(F.linear(rows, self.w1[e])) * F.linear(rows, self.w3[e]), self.w2[e]
                )
                start += n
        return out


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.gate = nn.Linear(cfg.dim, cfg.n_experts, bias=False)  # the router; never quantized
        self.experts = Experts(cfg)
        # Routing statistics, accumulated on the device without host syncs; the runner reads and resets them.
        self.register_buffer("expert_counts", torch.zeros(cfg.n_experts, dtype=torch.int64), persistent=False)
        self.register_buffer("touched", torch.zeros((), dtype=torch.int64), persistent=False)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        flat = x.reshape(b * t, d)  # [B*T, dim]
        logits = self.gate(flat)  # [B*T, E]
        top_logits, idx = torch.topk(logits, self.cfg.top_k, dim=-1)  # [B*T, k]
        # Softmax over the top-k logits equals Mixtral's softmax-then-renormalise over the chosen experts.
        weights = torch.softmax(top_logits.float(), dim=-1)
        counts = torch.zeros_like(self.expert_counts).scatter_add_(0, idx.reshape(-1), torch.ones_like(idx.reshape(-1)))
        self.expert_counts += counts
        self.touched += (counts > 0).sum()
        self.calls += 1
        return self.experts(flat, idx, weights).view(b, t, d)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.moe = MoE(cfg)

    def forward(self, x, cos, sin, mask, input_pos):
        h = x + self.attention(self.attention_norm(x), cos, sin, mask, input_pos)
        return h + self.moe(self.ffn_norm(h))


class Mixtral(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.max_seq = 0

    def setup_caches(self, batch: int, max_seq: int) -> None:
        """Allocates the KV caches and rotary tables on the model's device, in the embedding's dtype."""
        w = self.tok_embeddings.weight
        self.max_seq = max_seq
        for layer in self.layers:
            layer.attention.kv_cache = KVCache(
                batch, self.cfg.n_kv_heads, max_seq, self.cfg.head_dim, w.dtype, w.device
            )
        cos, sin = rope_tables(max_seq, self.cfg.head_dim, self.cfg.rope_theta, w.device)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.register_buffer("positions", torch.arange(max_seq, device=w.device), persistent=False)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        """Returns logits [B, T, vocab] for tokens [B, T] placed at positions input_pos [T] of the cache."""
        cos, sin = self.rope_cos[input_pos], self.rope_sin[input_pos]  # [T, hd]
        mask = self.positions[None, :] <= input_pos[:, None]  # [T, S]: causal, and hides unwritten slots
        x = self.tok_embeddings(tokens)  # [B, T, dim]
        for layer in self.layers:
            x = layer(x, cos, sin, mask, input_pos)
        return self.output(self.norm(x))

    def moe_layers(self) -> list[MoE]:
        """Returns the MoE module of every block, in order."""
        return [layer.moe for layer in self.layers]


def build_meta(cfg: ModelConfig) -> Mixtral:
    """Returns the model with every tensor on the meta device: shapes only, no memory."""
    with torch.device("meta"):
        return Mixtral(cfg)


@torch.no_grad()
def init_random(model: Mixtral, device: str | torch.device, dtype: torch.dtype, seed: int = 0) -> Mixtral:
    """Returns model materialised on device with random weights, filled in place there (no host copy).

    Normal(0, 0.02) weights, output projections scaled by 1/sqrt(2 * layers) as in GPT-2, so the residual stream
    and the logits stay finite at 32 layers. Quantized modules (bench.quantize) fill their own integer codes.
    """
    # Cast while still on meta (free), so the device never holds a float32 copy of a bf16 model.
    model.to(dtype=dtype)
    model.to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    out_std = 0.02 / math.sqrt(2 * model.cfg.n_layers)
    for name, module in model.named_modules():
        fill = getattr(module, "fill_random_", None)
        if fill is not None:
            # Quantized linears use the first std; quantized experts use it for w1/w3 and the second for w2.
            fill(gen, out_std if name.endswith("wo") else 0.02, out_std)
            continue
        for pname, p in module.named_parameters(recurse=False):
            if isinstance(module, RMSNorm):
                p.fill_(1.0)
            else:
                p.normal_(0.0, out_std if name.endswith("wo") or pname == "w2" else 0.02, generator=gen)
    reset_routing_stats(model)
    return model


# Published checkpoint name (per layer) -> our parameter name; experts are stacked from per-expert tensors.
_HF_LAYER_NAMES = {
    "self_attn.q_proj.weight": "attention.wq.weight",
    "self_attn.k_proj.weight": "attention.wk.weight",
    "self_attn.v_proj.weight": "attention.wv.weight",
    "self_attn.o_proj.weight": "attention.wo.weight",
    "block_sparse_moe.gate.weight": "moe.gate.weight",
    "input_layernorm.weight": "attention_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


@torch.no_grad()
def load_checkpoint(
    model: Mixtral, folder: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
) -> Mixtral:
    """Returns model holding the weights of a local Hugging Face Mixtral safetensors checkpoint (published names)."""
    from safetensors import safe_open

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = sorted(p.name for p in folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors files in {folder}")
    raw: dict[str, torch.Tensor] = {}
    for fname in files:
        with safe_open(str(folder / fname), framework="pt", device=device) as f:  # memory-mapped reads
            for key in f.keys():
                raw[key] = f.get_tensor(key)
    cast = (lambda t: t.to(dtype)) if dtype is not None else (lambda t: t)
    state: dict[str, torch.Tensor] = {
        "tok_embeddings.weight": cast(raw.pop("model.embed_tokens.weight")),
        "norm.weight": cast(raw.pop("model.norm.weight")),
        "output.weight": cast(raw.pop("lm_head.weight")),
    }
    cfg = model.cfg
    for i in range(cfg.n_layers):
        pre = f"model.layers.{i}."
        for hf, ours in _HF_LAYER_NAMES.items():
            state[f"layers.{i}.{ours}"] = cast(raw.pop(pre + hf))
        for w in ("w1", "w2", "w3"):
            experts = [raw.pop(f"{pre}block_sparse_moe.experts.{e}.{w}.weight") for e in range(cfg.n_experts)]
            state[f"layers.{i}.moe.experts.{w}"] = cast(torch.stack(experts))  # [E, out, in]
    model.load_state_dict(state, assign=True, strict=True)
    for moe in model.moe_layers():  # non-persistent buffers are not in the checkpoint: make them real
        for bname, buf in list(moe.named_buffers(recurse=False)):
            moe.register_buffer(bname, torch.zeros(buf.shape, dtype=buf.dtype, device=device), persistent=False)
    return model


def reset_routing_stats(model: Mixtral) -> None:
    """Zeroes every MoE layer's routing counters (expert counts, experts touched, calls)."""
    for moe in model.moe_layers():
        moe.expert_counts.zero_()
        moe.touched.zero_()
        moe.calls.zero_()
