"""Writes a GGUF of a model's architecture at its real shapes: random weights for timing, or a sparse file for memory.

The tensors, their types and bytes come from :mod:`physics.gguf` (llama.cpp's per-tensor choices for each format),
so the file reads per decode step exactly what the estimator assumes. Kernel speed does not depend on the weight
values, so random block bytes with small finite scales stand in for a real checkpoint. A sparse file (every weight
zero, a hole on disk) costs neither disk nor time, and llama.cpp maps it like any other file; that is what the
memory comparison loads.

Files are cached per (model, format, sparse or random) in a folder the caller names (the worker's cache folder);
``cached_gguf`` checks the size of a cached file against its layout before reusing it, and ``clear_cache`` empties
the folder. Supported architectures: those of :data:`physics.gguf.GGUF_ARCH` (llama, mistral, mixtral, qwen2,
qwen3, qwen3moe, gemma, gemma2, gemma3, granite, phi3, deepseek2).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from physics.arch import ModelArch, arch_from_config
from physics.gguf import BLOCKS, FILE_TYPES, GGUFLayout, GGUFTensor, layout

WRITER_VERSION = 2  # part of every cache key: bump when the file layout or metadata changes
_ALIGN = gguf.GGUF_DEFAULT_ALIGNMENT
_POOL_BLOCKS = 8192  # random blocks generated per type and tiled over a tensor (values do not change kernel speed)
_CHUNK_BYTES = 64 << 20  # write large tensors in pieces of this size

# Offsets of each block type's fp16 scale fields, and the scale written there (ggml-common.h block layouts).
# The values keep every weight under about 0.1, so that random activations stay finite through deep models.
_SCALES: dict[str, tuple[tuple[int, float], ...]] = {
    "Q4_0": ((0, 3e-3),),
    "Q5_0": ((0, 3e-3),),
    "Q5_1": ((0, 3e-3), (2, 0.0)),
    "Q8_0": ((0, 2e-4),),
    "Q4_K": ((0, 1e-4), (2, 1e-4)),
    "Q5_K": ((0, 1e-4), (2, 1e-4)),
    "Q6_K": ((208, 1e-4),),
}
_Q6K_SCALES = slice(192, 208)  # Q6_K's sixteen int8 sub-block scales, kept small as well


@dataclass(frozen=True)
class WrittenGGUF:
    """A GGUF on disk and what is in it."""

    path: Path
    layout: GGUFLayout
    file_bytes: int  # the file's length (header + tensor data)
    sparse: bool  # True: every weight is zero and the data is a hole on disk


def arch_of(config: dict[str, Any], name: str = "") -> ModelArch:
    """Returns the architecture of a config.json dict (physics.arch, the estimator's own reading)."""
    return arch_from_config(config, name=name)


def write_gguf(
    path: str | os.PathLike,
    config: dict[str, Any],
    fmt: str,
    *,
    sparse: bool = False,
    seed: int = 0,
    name: str = "",
) -> WrittenGGUF:
    """Returns the GGUF written at ``path`` for ``config`` in format ``fmt`` (random weights, or sparse zeros).

    Raises physics.gguf.UnsupportedModel for an architecture without a layout, ValueError for an unknown format.
    """
    arch = arch_of(config, name)
    lay = layout(arch, fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = _Writer(path, lay.arch)
    _metadata(writer, lay.arch, arch, config, fmt, name or arch.model_type)
    _tokenizer(writer, arch.vocab)
    for t, ty in zip(lay.tensors, lay.types, strict=True):
        writer.add_tensor_info(
            t.name,
            tuple(reversed(t.shape)),  # numpy order, outermost first
            np.dtype(np.float32),
            _nbytes(t, ty),
            raw_dtype=gguf.GGMLQuantizationType[ty],
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    fout = writer.fout[0]
    start = _pad(fout.tell())
    end = start + sum(_pad(_nbytes(t, ty)) for t, ty in zip(lay.tensors, lay.types, strict=True))
    if sparse:
        fout.truncate(end)  # a hole: zero weights, no disk blocks
    else:
        fout.write(bytes(start - fout.tell()))
        rng = np.random.default_rng(seed)
        for t, ty in zip(lay.tensors, lay.types, strict=True):
            _write_tensor(fout, t, ty, rng)
    writer.close()
    return WrittenGGUF(path=path, layout=lay, file_bytes=end, sparse=sparse)


def expected_file_bytes(config: dict[str, Any], fmt: str) -> int:
    """Returns the length write_gguf gives the file, without writing tensor data (the header is built in memory)."""
    arch = arch_of(config)
    lay = layout(arch, fmt)
    writer = _Writer(None, lay.arch)
    _metadata(writer, lay.arch, arch, config, fmt, arch.model_type)
    _tokenizer(writer, arch.vocab)
    header = 24 + len(_kv_bytes(writer))
    for t, ty in zip(lay.tensors, lay.types, strict=True):
        header += 8 + len(t.name.encode()) + 4 + 8 * len(t.shape) + 4 + 8
        del ty
    return _pad(header) + sum(_pad(_nbytes(t, ty)) for t, ty in zip(lay.tensors, lay.types, strict=True))


def cached_gguf(
    cache_dir: str | os.PathLike,
    config: dict[str, Any],
    fmt: str,
    *,
    sparse: bool = False,
    label: str = "",
    seed: int = 0,
    progress=None,
) -> WrittenGGUF:
    """Returns the cached GGUF for (config, fmt, sparse), writing it first when it is missing or the wrong size.

    The file name holds a label (the model's slug) and a hash of the config, format, seed and writer version.
    Before writing random weights it checks that the disk has room for them (OSError with the figures if not).
    """
    cache_dir = Path(cache_dir)
    key = json.dumps([config, fmt, sparse, seed, WRITER_VERSION], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in (label or "model"))[:60]
    path = cache_dir / f"{stem}-{fmt}-{'sparse' if sparse else 'random'}-{digest}.gguf"
    arch = arch_of(config, label)
    lay = layout(arch, fmt)
    if path.exists():
        size = path.stat().st_size
        data = sum(_pad(_nbytes(t, ty)) for t, ty in zip(lay.tensors, lay.types, strict=True))
        if data < size < data + (64 << 20):  # the tensor data plus a header of at most 64 MiB
            return WrittenGGUF(path=path, layout=lay, file_bytes=size, sparse=sparse)
        path.unlink()  # a partial or stale file
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not sparse:
        need, free = lay.weight_bytes, shutil.disk_usage(cache_dir).free
        if need + (1 << 30) > free:
            raise OSError(
                f"not enough disk in {cache_dir} for a {fmt} file of {label or arch.model_type}: "
                f"{need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free (clear the cache or point it elsewhere)"
            )
    if progress:
        progress(f"writing {path.name} ({lay.weight_bytes / 1e9:.2f} GB{', sparse' if sparse else ''})")
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        written = write_gguf(tmp, config, fmt, sparse=sparse, seed=seed, name=label)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return WrittenGGUF(path=path, layout=written.layout, file_bytes=written.file_bytes, sparse=sparse)


def cache_usage(cache_dir: str | os.PathLike) -> tuple[int, int]:
    """Returns (GGUF files, bytes they take on disk) in the cache folder; sparse files count their real blocks."""
    files = list(Path(cache_dir).glob("*.gguf")) if Path(cache_dir).is_dir() else []
    return len(files), sum(f.stat().st_blocks * 512 for f in files)


def clear_cache(cache_dir: str | os.PathLike) -> tuple[int, int]:
    """Returns (files removed, bytes freed) after deleting every cached GGUF (and partial write) in the folder."""
    folder = Path(cache_dir)
    if not folder.is_dir():
        return 0, 0
    removed = freed = 0
    for f in [*folder.glob("*.gguf"), *folder.glob("*.tmp*")]:
        freed += f.stat().st_blocks * 512
        f.unlink(missing_ok=True)
        removed += 1
    return removed, freed


# --- metadata ----------------------------------------------------------------------------------------------------


def _metadata(w: gguf.GGUFWriter, kind: str, arch: ModelArch, config: dict, fmt: str, name: str) -> None:
    """Adds the general and architecture keys llama.cpp reads for ``kind`` (names per gguf-py's constants)."""
    cfg = config.get("text_config") or config
    # The model's name goes in general.basename: llama.cpp changes token attributes by general.name ("phi-3"…),
    # looking up tokens a synthetic vocabulary does not have.
    w.add_name(f"gpufit random-weight {fmt}")
    w.add_basename(name)
    w.add_file_type(FILE_TYPES[fmt])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(arch.context_length)
    w.add_embedding_length(arch.hidden)
    w.add_block_count(arch.layers)
    w.add_feed_forward_length(arch.dense_ffn or arch.ffn)
    w.add_head_count(arch.heads)
    w.add_head_count_kv(1 if kind == "deepseek2" else arch.kv_heads)
    w.add_layer_norm_rms_eps(arch.norm_eps)
    w.add_rope_freq_base(arch.rope_theta)
    w.add_vocab_size(arch.vocab)
    rotary = arch.head_dim
    if cfg.get("partial_rotary_factor"):
        rotary = int(arch.head_dim * float(cfg["partial_rotary_factor"]))
    if kind == "deepseek2":
        _deepseek(w, arch, cfg)
        return
    w.add_rope_dimension_count(rotary)
    if arch.head_dim * arch.heads != arch.hidden or kind in ("gemma", "gemma2", "gemma3", "qwen3", "qwen3moe"):
        w.add_key_length(arch.head_dim)
        w.add_value_length(arch.head_dim)
    if arch.experts:
        w.add_expert_count(arch.experts)
        w.add_expert_used_count(arch.experts_per_token)
        if kind == "qwen3moe":
            w.add_expert_feed_forward_length(arch.ffn)
    if kind == "gemma2":
        w.add_sliding_window(arch.sliding_window or 4096)
        w.add_attn_logit_softcapping(float(cfg.get("attn_logit_softcapping") or 50.0))
        w.add_final_logit_softcapping(float(cfg.get("final_logit_softcapping") or 30.0))
    if kind == "gemma3" and arch.sliding_window:
        w.add_sliding_window(arch.sliding_window)
    if kind == "granite":
        # Granite scales the embedding, the residual branches, attention and the logits by fixed multipliers.
        w.add_embedding_scale(float(cfg.get("embedding_multiplier") or 1.0))
        w.add_residual_scale(float(cfg.get("residual_multiplier") or 1.0))
        w.add_attention_scale(float(cfg.get("attention_multiplier") or 1.0 / arch.head_dim**0.5))
        w.add_logit_scale(float(cfg.get("logits_scaling") or 1.0))


def _deepseek(w: gguf.GGUFWriter, arch: ModelArch, cfg: dict) -> None:
    """Adds DeepSeek-V2/V3's keys: MLA ranks and head widths, dense lead blocks, experts and their gating."""
    w.add_leading_dense_block_count(arch.layers - arch.moe_layers)
    if arch.q_lora_rank:
        w.add_q_lora_rank(arch.q_lora_rank)
    w.add_kv_lora_rank(arch.kv_lora_rank)
    # MLA is stored as one shared latent "head": keys of latent + rotary width, values of latent width.
    w.add_key_length(arch.kv_lora_rank + arch.qk_rope_head_dim)
    w.add_value_length(arch.kv_lora_rank)
    w.add_key_length_mla(arch.qk_nope_head_dim + arch.qk_rope_head_dim)
    w.add_value_length_mla(arch.v_head_dim)
    w.add_rope_dimension_count(arch.qk_rope_head_dim)
    w.add_expert_feed_forward_length(arch.ffn)
    w.add_expert_count(arch.experts)
    w.add_expert_used_count(arch.experts_per_token)
    w.add_expert_shared_count(int(cfg.get("n_shared_experts") or 0))
    if cfg.get("routed_scaling_factor"):
        w.add_expert_weights_scale(float(cfg["routed_scaling_factor"]))
    if cfg.get("norm_topk_prob"):
        w.add_expert_weights_norm(True)
    if cfg.get("scoring_func") == "sigmoid":
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)


class _Writer(gguf.GGUFWriter):
    """gguf's writer, with a fast path for the token list (gguf packs an array value by value: seconds for 256K)."""

    def _pack_val(self, val, vtype, add_vtype, sub_type=None) -> bytes:
        if not isinstance(val, _Strings):
            return super()._pack_val(val, vtype, add_vtype, sub_type)
        encoded = [s.encode("utf-8") for s in val]
        head = struct.pack("<I", vtype) if add_vtype else b""  # ARRAY, then its element type and length
        head += struct.pack("<IQ", gguf.GGUFValueType.STRING, len(encoded))
        return head + b"".join(struct.pack("<Q", len(e)) + e for e in encoded)


class _Strings(list):
    """A list of strings that _Writer packs in one pass."""


def _tokenizer(w: gguf.GGUFWriter, vocab: int) -> None:
    """Adds a synthetic SentencePiece-style vocabulary of the model's size: benchmarks feed token ids directly.

    Byte tokens come first after the three specials, so that llama.cpp finds its line-feed token; scores and token
    types are optional in a llama vocabulary and left out.
    """
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens = tokens[:vocab] + [f"tok{i}" for i in range(min(len(tokens), vocab), vocab)]
    w.add_tokenizer_model("llama")
    w.add_array(gguf.Keys.Tokenizer.LIST, _Strings(tokens))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)


def _kv_bytes(w: gguf.GGUFWriter) -> bytes:
    """Returns the serialised key/value section of a writer (to size a header without writing it)."""
    out = bytearray()
    for key, val in w.kv_data[0].items():
        out += w._pack_val(key, gguf.GGUFValueType.STRING, add_vtype=False)
        out += w._pack_val(val.value, val.type, add_vtype=True, sub_type=val.sub_type)
    return bytes(out)


# --- tensor data --------------------------------------------------------------------------------------------------


def _pad(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _nbytes(t: GGUFTensor, ggml_type: str) -> int:
    block, size = BLOCKS[ggml_type]
    return t.numel // block * size


def _write_tensor(fout, t: GGUFTensor, ggml_type: str, rng: np.random.Generator) -> None:
    """Writes one tensor's bytes (and the padding after it): norms 1, biases 0, everything else random."""
    nbytes = _nbytes(t, ggml_type)
    if ggml_type == "F32" and (t.name.endswith("norm.weight") or t.name.endswith(".bias")):
        value = 1.0 if t.name.endswith("norm.weight") else 0.0
        fout.write(np.full(t.numel, value, dtype=np.float32).tobytes())
    else:
        pool = _pool(ggml_type, rng)
        left = nbytes
        while left:
            piece = min(left, _CHUNK_BYTES)
            reps = -(-piece // len(pool))
            fout.write((pool if reps == 1 else np.tile(pool, reps))[:piece].tobytes())
            left -= piece
    fout.write(bytes(_pad(nbytes) - nbytes))


def _pool(ggml_type: str, rng: np.random.Generator) -> np.ndarray:
    """Returns a flat uint8 array of whole random blocks of ggml_type, with small finite scales."""
    block, size = BLOCKS[ggml_type]
    if ggml_type in ("F32", "F16", "BF16"):
        values = rng.normal(0.0, 0.02, size=_POOL_BLOCKS * 64).astype(np.float32)
        if ggml_type == "F16":
            return values.astype(np.float16).view(np.uint8)
        if ggml_type == "BF16":
            return (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        return values.view(np.uint8)
    blocks = rng.integers(0, 256, size=(_POOL_BLOCKS, size), dtype=np.uint8)
    for offset, scale in _SCALES[ggml_type]:
        blocks[:, offset : offset + 2] = np.frombuffer(np.float16(scale).tobytes(), dtype=np.uint8)
    if ggml_type == "Q6_K":
        blocks[:, _Q6K_SCALES] = rng.integers(-8, 9, size=(_POOL_BLOCKS, 16), dtype=np.int8).view(np.uint8)
    del block
    return blocks.reshape(-1)
