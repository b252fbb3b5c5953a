"""Architecture facts and exact parameter counts from a published Hugging Face ``config.json``.

Pure Python, no Django: the catalog loader, the estimator and the benchmark validator all read
the same :class:`ModelArch`, so a layer count or a parameter total is derived in exactly one place.

Counting rules (see docs/models.md for the long form):

* ``total_params`` is every weight the model needs to generate text: embedding, each layer's
  attention (with biases where the architecture has them), norms, router, experts, shared experts,
  the final norm and the output head unless it is tied to the embedding.  DeepSeek-V3's
  multi-token-prediction module is a training / speculative-decoding add-on and is **not** in the
  total; it is reported apart as ``mtp_params``.  Vision towers of multimodal wrappers are not
  counted either: the facts describe the text decoder.
* ``active_params`` is ``total_params`` less the ``experts - experts_per_token`` routed experts a
  token does not visit in each MoE layer.  The input embedding stays in, which is how Mistral AI
  counts Mixtral-8x7B's 12.9B.
* ``decode_read_params`` is ``active_params`` less the input embedding (a decode step gathers one
  row of it, not the matrix) unless the embedding is tied to the output head, which every step
  reads in full.  OpenAI's "active" figures for gpt-oss and DeepSeek's 36.6B are counted this way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from physics.vocab import KVCache

# Keys a model type leaves out of its config.json because transformers' config class supplies
# them.  Only values that change a count or a context length are listed, each copied from the
# class defaults (transformers 5.24, Gemma3TextConfig), so a sparse published config still parses.
_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {
        "vocab_size": 262208,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": True,
        "num_attention_heads": 8,  # gemma-3-4b-it leaves its head layout to these defaults
        "num_key_value_heads": 4,
        "head_dim": 256,
    },
}

# Architectures whose config.json does not say tie_word_embeddings because the class default is
# what the checkpoint does (Gemma, Cohere's Command R/Aya and StarCoder2 tie input and output embeddings).
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3", "gemma3_text", "cohere", "cohere2", "starcoder2"}

# Per-head RMSNorm on queries and keys (head_dim weights each): Qwen3 (and its VL text decoder),
# Gemma 3, EXAONE 4, and GLM-4.5 when use_qk_norm is set.
_QK_NORM_TYPES = {"qwen3", "qwen3_moe", "qwen3_vl_text", "qwen3_vl_moe_text", "gemma3", "gemma3_text", "exaone4"}

# Biased Q/K/V projections with an unbiased o_proj, whatever attention_bias says.
_QKV_BIAS_TYPES = {"qwen2", "qwen2_moe", "qwen2_5_vl", "glm4_moe"}

# Cohere's parallel block: one LayerNorm (weight only) feeds attention and MLP side by side.
_ONE_NORM_TYPES = {"cohere", "cohere2"}

# LayerNorm with a bias (two vectors per norm) instead of RMSNorm: StarCoder2, Phi-3.5-MoE.
_BIASED_NORM_TYPES = {"starcoder2", "phimoe"}


class ConfigError(ValueError):
    """A config.json that cannot be turned into architecture facts; the message names the key."""


@dataclass(frozen=True)
class ModelArch:
    """Shapes and exact parameter counts of one decoder-only transformer: the one architecture type.

    Built from a config.json by :func:`arch_from_config` (catalog models and the runner's presets alike), or
    from a catalog row by ``planner.inputs.model_arch``. Absent features are 0 (no MLA rank, no window).
    """

    name: str
    total_params: int  # exact count (Mixtral-8x7B: 46_702_792_704)
    active_params: int  # per token, input embedding included
    layers: int
    hidden: int
    heads: int  # query heads
    kv_heads: int  # key/value heads (== heads for MHA; MLA keeps its own latent cache, see kv_lora_rank)
    head_dim: int  # per query head; an explicit `head_dim` key wins over hidden // heads
    vocab: int
    context_length: int  # what we report as the model's context, see context_note
    ffn: int = 0  # FFN width of a dense layer, or of one routed expert in an MoE model
    experts: int = 0  # routed experts per MoE layer; 0 for a dense model
    experts_per_token: int = 0  # routed experts a token visits; 0 for a dense model
    expert_params: int = 0  # one routed expert in one layer (Mixtral: 3 x 4096 x 14336)
    moe_layers: int = 0  # layers whose FFN is a mixture of experts
    shared_expert_params: int = 0  # always-on shared experts, per MoE layer
    embedding_params: int = 0  # input embedding (vocab x hidden); 0 = vocab x hidden
    tied_embeddings: bool = False  # lm_head shares the embedding matrix (then every step reads it whole)
    attention: str = "gqa"  # "gqa" (incl. MHA/MQA) | "mla" | "hybrid-sliding"
    kv_lora_rank: int = 0  # MLA latent width that the KV cache stores
    qk_rope_head_dim: int = 0  # MLA decoupled rotary key width, cached beside the latent
    sliding_window: int = 0  # tokens a sliding-window layer attends to
    sliding_layers: int = 0  # layers limited to sliding_window (0: every layer is global)
    model_type: str = ""
    dense_ffn: int = 0  # FFN width of the dense layers of an MoE model (== ffn for a dense model)
    context_note: str = ""  # where context_length came from
    original_context: int | None = None  # pre-extension window when a rope scaling is configured
    rope_scaling_type: str | None = None
    q_lora_rank: int = 0  # MLA query compression rank (0: full-rank query projection)
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    decode_read_params: int = 0  # active less the input embedding unless it is tied (see the module docstring)
    mtp_params: int = 0  # DeepSeek multi-token-prediction module, not in total_params
    rope_theta: float = 10000.0  # rotary base (the benchmark runner builds its model from these)
    norm_eps: float = 1e-5  # RMSNorm epsilon

    @property
    def is_moe(self) -> bool:
        """Returns True when at least one layer routes tokens to experts."""
        return self.experts > 0

    def as_dict(self) -> dict[str, Any]:
        """Returns the facts as a plain dict (for JSON, fixtures and the catalog loader)."""
        data = asdict(self)
        data["is_moe"] = self.is_moe
        return data


def _text_config(config: Any) -> dict[str, Any]:
    """Returns the decoder's own config: the nested text_config of a multimodal wrapper, else config."""
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a dict parsed from config.json, got {type(config).__name__}")
    if not config:
        raise ConfigError("config is empty: missing key 'model_type' and the shape keys ('num_hidden_layers', …)")
    text = config.get("text_config")
    if text is None:
        return dict(config)
    if not isinstance(text, dict):
        raise ConfigError(f"'text_config' must be an object, got {type(text).__name__}")
    merged = dict(text)
    # Wrappers keep a few decoder keys at the top level (vocab_size, tie_word_embeddings).
    for key in ("vocab_size", "tie_word_embeddings"):
        if key not in merged and key in config:
            merged[key] = config[key]
    for key, value in _TYPE_DEFAULTS.get(str(merged.get("model_type", "")), {}).items():
        merged.setdefault(key, value)
    return merged


def _int(cfg: dict[str, Any], key: str, *, default: int | None = None, minimum: int = 1) -> int:
    """Returns cfg[key] as an int ≥ minimum, or default when the key is absent or null."""
    value = cfg.get(key)
    if value is None:
        if default is None:
            raise ConfigError(f"config is missing required key '{key}' (model_type {cfg.get('model_type')!r})")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"'{key}' must be a whole number, got {value!r}")
    if int(value) < minimum:
        raise ConfigError(f"'{key}' must be ≥ {minimum}, got {value!r}")
    return int(value)


def _optional_int(cfg: dict[str, Any], key: str) -> int | None:
    """Returns cfg[key] as a positive int, or None when it is absent or null."""
    return None if cfg.get(key) is None else _int(cfg, key)


def _context(cfg: dict[str, Any]) -> tuple[int, str, int | None, str | None]:
    """Returns (context length, how it was found, original window, rope scaling type)."""
    max_pos = _int(cfg, "max_position_embeddings")
    scaling = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    if not isinstance(scaling, dict):
        return max_pos, "max_position_embeddings (no rope scaling configured)", None, None
    kind = scaling.get("rope_type") or scaling.get("type")
    original = scaling.get("original_max_position_embeddings") or cfg.get("original_max_position_embeddings")
    factor = scaling.get("factor")
    if original and factor and kind in ("yarn", "linear", "dynamic") and int(original * factor) > max_pos:
        # The scaling stretches positions past the advertised maximum: the extended window is real.
        extended = int(original * factor)
        return extended, f"{kind} rope scaling: {original} × {factor:g}", int(original), kind
    note = f"max_position_embeddings (already includes {kind} rope scaling)" if kind else "max_position_embeddings"
    return max_pos, note, int(original) if original else None, kind


def _sliding(cfg: dict[str, Any], model_type: str, layers: int, context: int) -> tuple[int | None, int]:
    """Returns (sliding window, number of layers restricted to it)."""
    window = cfg.get("sliding_window")
    if window is None or cfg.get("use_sliding_window") is False:
        return None, 0
    window = _int(cfg, "sliding_window")
    if window >= context:
        return None, 0  # a window as long as the context restricts nothing (phi-3, qwen2 leftovers)
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        if len(layer_types) != layers:
            raise ConfigError(f"'layer_types' lists {len(layer_types)} layers but num_hidden_layers is {layers}")
        return window, sum(1 for kind in layer_types if kind == "sliding_attention")
    if model_type == "gemma2" or model_type == "gpt_oss":
        return window, math.ceil(layers / 2)  # even layers are local, odd layers global
    pattern = cfg.get("sliding_window_pattern")
    if model_type in ("gemma3", "gemma3_text"):
        pattern = 6 if pattern is None else int(pattern)  # 5 local : 1 global
    if pattern:
        return window, layers - layers // int(pattern)  # every pattern-th layer is global
    return window, layers  # mistral-style: every layer uses the window


def _experts(cfg: dict[str, Any], model_type: str) -> tuple[int, int]:
    """Returns (routed experts per MoE layer, experts visited per token); (0, 0) when dense."""
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        if cfg.get(key):
            experts = _int(cfg, key)
            break
    else:
        return 0, 0
    for key in ("num_experts_per_tok", "experts_per_token", "num_experts_per_token"):
        if cfg.get(key):
            top_k = _int(cfg, key)
            break
    else:
        raise ConfigError(f"MoE config ({model_type}) is missing required key 'num_experts_per_tok'")
    if top_k > experts:
        raise ConfigError(f"'num_experts_per_tok' ({top_k}) exceeds the number of experts ({experts})")
    return experts, top_k


def _deepseek_like(model_type: str) -> bool:
    """Returns True for DeepSeek-V2/V3 layouts, including models that reuse them under their own name.

    Kimi K2 ships ``model_type: kimi_k2`` with ``DeepseekV3ForCausalLM`` weights: the same dense
    first layers (``first_k_dense_replace``), MLA and aux-loss-free router bias. GLM-5
    (``glm_moe_dsa``) is DeepSeek-V3.2's layout: MLA with the sparse-attention indexer.
    """
    return model_type.startswith("deepseek") or model_type in ("kimi_k2", "glm_moe_dsa")


def _is_moe_layer(cfg: dict[str, Any], model_type: str, index: int) -> bool:
    """Returns True when layer `index` (0-based) has routed experts in an MoE model."""
    if _deepseek_like(model_type):
        first_dense = int(cfg.get("first_k_dense_replace") or 0)
        freq = int(cfg.get("moe_layer_freq") or 1)
        return index >= first_dense and index % freq == 0
    if model_type == "glm4_moe":
        return index >= int(cfg.get("first_k_dense_replace") or 0)
    if model_type == "llama4_text":
        # Llama4TextConfig: moe_layers, else every interleave_moe_layer_step-th layer (Scout 1, Maverick 2)
        if cfg.get("moe_layers") is not None:
            return index in cfg["moe_layers"]
        step = int(cfg.get("interleave_moe_layer_step") or 1)
        return (index + 1) % step == 0
    if model_type.startswith("qwen"):
        if index in (cfg.get("mlp_only_layers") or []):
            return False
        step = int(cfg.get("decoder_sparse_step") or 1)
        return (index + 1) % step == 0
    return True


def _mla_attention_params(cfg: dict[str, Any], hidden: int, heads: int) -> tuple[int, dict[str, int]]:
    """Returns (weights of one MLA attention block, its ranks and head widths) for DeepSeek-style layouts."""
    kv_lora = _int(cfg, "kv_lora_rank")
    q_lora = _optional_int(cfg, "q_lora_rank") or 0
    rope_dim = _int(cfg, "qk_rope_head_dim")
    nope_dim = _int(cfg, "qk_nope_head_dim")
    v_dim = _int(cfg, "v_head_dim")
    qk_dim = nope_dim + rope_dim
    if q_lora:  # down-projection, its RMSNorm, then up to every head
        attn = hidden * q_lora + q_lora + q_lora * heads * qk_dim
    else:
        attn = hidden * heads * qk_dim
    # the latent plus the shared rotary key, the latent's norm, the up-projection to K(nope) and V
    attn += hidden * (kv_lora + rope_dim) + kv_lora + kv_lora * heads * (nope_dim + v_dim)
    attn += heads * v_dim * hidden  # o_proj
    if cfg.get("index_n_heads"):
        # DeepSeek-V3.2's (and GLM-5's) lightning indexer: its own query up-projection from the query
        # latent, one shared key projection with a LayerNorm (weight and bias), and per-head weights.
        index_heads, index_dim = _int(cfg, "index_n_heads"), _int(cfg, "index_head_dim")
        attn += (q_lora or hidden) * index_heads * index_dim + hidden * index_dim + 2 * index_dim
        attn += hidden * index_heads
    dims = {"q_lora_rank": q_lora, "kv_lora_rank": kv_lora, "qk_rope_head_dim": rope_dim,
            "qk_nope_head_dim": nope_dim, "v_head_dim": v_dim}  # fmt: skip
    return attn, dims


def _gqa_attention_params(
    cfg: dict[str, Any], model_type: str, hidden: int, heads: int, kv_heads: int, head_dim: int
) -> int:
    """Returns the weights of one grouped-query attention block: Q, K, V, O and their biases and norms."""
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    attn = hidden * q_out + 2 * hidden * kv_out + q_out * hidden
    biased = bool(cfg.get("attention_bias") or cfg.get("use_bias"))
    if model_type in _QKV_BIAS_TYPES or biased:
        attn += q_out + 2 * kv_out  # q/k/v biases: Qwen2 always has them, others when the config says so
    if biased and model_type not in _QKV_BIAS_TYPES:
        attn += hidden  # the bias flag also puts a bias on o_proj (llama, gpt-oss, starcoder2)
    if model_type in _QK_NORM_TYPES or (model_type == "glm4_moe" and cfg.get("use_qk_norm")):
        attn += 2 * head_dim  # per-head RMSNorm on queries and keys
    if model_type == "gpt_oss":
        attn += heads  # one learned attention-sink logit per head
    return attn


def _norm_params(model_type: str, hidden: int) -> tuple[int, int]:
    """Returns (norm weights per layer, vectors per norm: 2 for a LayerNorm with a bias, else 1).

    Gemma 2/3 wrap both attention and MLP in pre- and post-norms; Cohere's parallel block has one
    norm; everyone else has two.
    """
    if model_type.startswith("gemma2") or model_type.startswith("gemma3"):
        norms = 4
    elif model_type in _ONE_NORM_TYPES:
        norms = 1
    else:
        norms = 2
    vectors = 2 if model_type in _BIASED_NORM_TYPES else 1
    return norms * vectors * hidden, vectors


def _ffn_params(
    cfg: dict[str, Any], model_type: str, hidden: int, dense_ffn: int, ffn: int, experts: int
) -> tuple[int, int, int, int]:
    """Returns (dense MLP, one routed expert, router, shared experts) weights of one layer."""
    if model_type == "starcoder2":
        dense_mlp = 2 * hidden * dense_ffn + dense_ffn + hidden  # c_fc and c_proj, both biased, no gate
    else:
        dense_mlp = 3 * hidden * dense_ffn  # gate, up, down (every other family here is gated)
    expert = 3 * hidden * ffn
    if not experts:
        return dense_mlp, expert, 0, 0
    router = hidden * experts
    if model_type == "gpt_oss":
        expert += 2 * ffn + hidden  # gate_up and down biases
        router += experts  # the router has a bias
    elif (_deepseek_like(model_type) and cfg.get("topk_method") == "noaux_tc") or model_type == "glm4_moe":
        router += experts  # e_score_correction_bias of the aux-loss-free balancing
    shared = int(cfg.get("n_shared_experts") or 0) * 3 * hidden * ffn
    if model_type == "llama4_text":
        shared = 3 * hidden * ffn  # one always-on shared expert of the routed experts' width
    if cfg.get("shared_expert_intermediate_size"):
        # Qwen1.5/Qwen2-MoE: one wide shared expert and its sigmoid gate (hidden -> 1)
        shared = 3 * hidden * _int(cfg, "shared_expert_intermediate_size") + hidden
    return dense_mlp, expert, router, shared


def arch_from_config(config: dict[str, Any], name: str = "") -> ModelArch:
    """Returns the architecture facts and exact parameter counts described by a config.json dict.

    Raises ConfigError, naming the key, for anything that is not a usable decoder config.
    """
    cfg = _text_config(config)
    model_type = str(cfg.get("model_type") or "")
    if not model_type:
        raise ConfigError("config is missing required key 'model_type'")

    layers = _int(cfg, "num_hidden_layers")
    hidden = _int(cfg, "hidden_size")
    heads = _int(cfg, "num_attention_heads")
    kv_heads = _int(cfg, "num_key_value_heads", default=heads)
    if heads % kv_heads:
        raise ConfigError(f"'num_attention_heads' ({heads}) is not a multiple of 'num_key_value_heads' ({kv_heads})")
    head_dim = _int(cfg, "head_dim", default=hidden // heads)
    vocab = _int(cfg, "vocab_size")
    context, context_note, original_context, rope_kind = _context(cfg)
    experts, top_k = _experts(cfg, model_type)
    is_mla = cfg.get("kv_lora_rank") is not None
    tied = bool(cfg.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT))

    dense_ffn = _int(cfg, "intermediate_size")
    ffn = _int(cfg, "moe_intermediate_size", default=dense_ffn) if experts else dense_ffn
    if model_type == "llama4_text":
        # Llama 4: experts and the shared expert use intermediate_size, dense layers intermediate_size_mlp
        dense_ffn = _int(cfg, "intermediate_size_mlp", default=dense_ffn)

    # --- per layer: attention, norms, feed-forward ----------------------------------------
    if is_mla:
        attn, mla = _mla_attention_params(cfg, hidden, heads)
        head_dim = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
    else:
        attn, mla = _gqa_attention_params(cfg, model_type, hidden, heads, kv_heads, head_dim), {}
    norms, norm_vectors = _norm_params(model_type, hidden)
    dense_mlp, expert, router, shared = _ffn_params(cfg, model_type, hidden, dense_ffn, ffn, experts)

    moe_layers = sum(1 for i in range(layers) if experts and _is_moe_layer(cfg, model_type, i))
    dense_layers = layers - moe_layers

    per_layer_common = attn + norms
    moe_layer_total = per_layer_common + router + experts * expert + shared
    moe_layer_active = per_layer_common + router + top_k * expert + shared
    dense_layer = per_layer_common + dense_mlp

    embedding = vocab * hidden
    head = 0 if tied else vocab * hidden
    if model_type == "phimoe" and cfg.get("lm_head_bias"):
        head += vocab
    outer = embedding + head + hidden * norm_vectors  # + final norm

    total = outer + dense_layers * dense_layer + moe_layers * moe_layer_total
    active = outer + dense_layers * dense_layer + moe_layers * moe_layer_active
    decode_read = active if tied else active - embedding

    mtp = 0
    if (_deepseek_like(model_type) or model_type == "glm4_moe") and cfg.get("num_nextn_predict_layers"):
        # each MTP module: one more MoE layer, two input norms, the 2h→h projection, its output norm
        per_module = moe_layer_total + 2 * hidden + 2 * hidden * hidden + hidden
        mtp = _int(cfg, "num_nextn_predict_layers") * per_module

    window, sliding_layers = _sliding(cfg, model_type, layers, context)
    if is_mla:
        attention = "mla"
    elif sliding_layers:
        attention = "hybrid-sliding"
    else:
        attention = "gqa"

    return ModelArch(
        name=name,
        model_type=model_type,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        ffn=ffn,
        dense_ffn=dense_ffn,
        vocab=vocab,
        context_length=context,
        context_note=context_note,
        original_context=original_context,
        rope_scaling_type=rope_kind,
        experts=experts,
        experts_per_token=top_k,
        moe_layers=moe_layers,
        expert_params=expert if experts else 0,
        shared_expert_params=shared,
        embedding_params=embedding,
        tied_embeddings=tied,
        attention=attention,
        q_lora_rank=mla.get("q_lora_rank", 0),
        kv_lora_rank=mla.get("kv_lora_rank", 0),
        qk_rope_head_dim=mla.get("qk_rope_head_dim", 0),
        qk_nope_head_dim=mla.get("qk_nope_head_dim", 0),
        v_head_dim=mla.get("v_head_dim", 0),
        sliding_window=window or 0,
        sliding_layers=sliding_layers,
        total_params=total,
        active_params=active,
        decode_read_params=decode_read,
        mtp_params=mtp,
        rope_theta=float(cfg.get("rope_theta") or 10000.0),
        norm_eps=float(cfg.get("rms_norm_eps") or cfg.get("layer_norm_epsilon") or 1e-5),
    )


def kv_element_bytes(kv_cache: str = "fp16") -> float:
    """Returns the bytes of one cached element of a KV-cache type (block scales included)."""
    try:
        return KVCache(kv_cache).bits / 8
    except ValueError:
        raise ValueError(f"unknown KV cache type {kv_cache!r}; expected one of {[k.value for k in KVCache]}") from None


def kv_bytes_per_token_layer(arch: ModelArch, kv_cache: str = "fp16") -> float:
    """Returns the KV-cache bytes one token adds to one layer.

    GQA stores a key and a value per KV head: 2 x kv_heads x head_dim elements. MLA stores one compressed
    latent plus the shared rotary key: kv_lora_rank + qk_rope_head_dim elements. The element size is the
    KV-cache type's (fp16 2 bytes; q8_0 34 bytes per 32 values; q4_0 18 per 32).
    """
    element = kv_element_bytes(kv_cache)
    if arch.attention == "mla":
        return (arch.kv_lora_rank + arch.qk_rope_head_dim) * element
    return 2 * arch.kv_heads * arch.head_dim * element


def kv_token_layers(arch: ModelArch, context, window_slack: int = 0):
    """Returns the layer-tokens the cache holds at ``context``: global layers all of them, sliding ones the window.

    ``window_slack`` cells more are kept per sliding layer (llama.cpp sizes a sliding-window cache at the window
    plus one micro-batch, so that a whole batch fits past the window: llama-kv-cache-iswa.cpp).
    """
    windowed = arch.sliding_window > 0 and arch.sliding_layers > 0
    sliding = arch.sliding_layers if windowed else 0
    return token_layers(arch.layers, sliding, arch.sliding_window + window_slack, context)


def token_layers(layers, sliding_layers, window, context):
    """Returns kv_token_layers for arrays of models: ``sliding_layers`` of the ``layers`` hold at most ``window``
    tokens (0 sliding layers: every layer holds the whole context)."""
    ctx = np.asarray(context, dtype=float)
    sliding = np.asarray(sliding_layers)
    windowed = (layers - sliding) * ctx + sliding * np.minimum(ctx, window)
    return np.where(sliding > 0, windowed, layers * ctx)


def kv_cache_bytes(arch: ModelArch, context: int, batch: int = 1, kv_cache: str = "fp16", window_slack: int = 0) -> int:
    """Returns the KV cache in bytes for ``batch`` sequences of ``context`` tokens.

    kv_token_layers(context) x kv_bytes_per_token_layer x batch: a sliding-window layer never holds more than its
    window (plus window_slack). Mixtral-8x7B, fp16: 32 layers x 8 KV heads x 128 x 2 x 2 bytes = 128 KiB a token,
    4 GiB at 32K.
    """
    if context < 0:
        raise ValueError(f"context must be ≥ 0, got {context}")
    layer_tokens = float(kv_token_layers(arch, context, window_slack))
    return int(round(layer_tokens * kv_bytes_per_token_layer(arch, kv_cache) * batch))


def kv_bytes_per_token(arch: ModelArch, kv_cache: str = "fp16", context: int | None = None) -> int | float:
    """Returns the KV-cache bytes per token.

    Without ``context``: what a token adds across all layers while inside every window (layers x per layer).
    With it: the average over a ``context``-token sequence, which falls past the window for sliding layers.
    """
    if context is None:
        return int(round(kv_bytes_per_token_layer(arch, kv_cache) * arch.layers))
    if context <= 0:
        raise ValueError(f"context must be > 0, got {context}")
    return kv_cache_bytes(arch, context, 1, kv_cache) / context


def naive_kv_bytes_per_token(facts: ModelArch, bytes_per_element: float = 2) -> int:
    """Returns the plain-attention figure 2 × layers × kv_heads × head_dim × bytes, ignoring MLA and windows.

    For MLA this is what caching full per-head keys and values would cost (keys of qk width,
    values of v width), the baseline the latent cache is compared against.
    """
    if facts.attention == "mla":
        per_layer = facts.kv_heads * (facts.head_dim + (facts.v_head_dim or facts.head_dim))
        return int(facts.layers * per_layer * bytes_per_element)
    return int(2 * facts.layers * facts.kv_heads * facts.head_dim * bytes_per_element)
