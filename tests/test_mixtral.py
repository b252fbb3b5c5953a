"""The torch Mixtral against transformers' MixtralForCausalLM, its decode paths, and the checkpoint loader."""

from __future__ import annotations

import json

import pytest
import torch

from bench import mixtral
from bench.mixtral import MIXTRAL_8X7B, TINY, build_meta, init_random, load_checkpoint

pytestmark = pytest.mark.torch


def hf_model_from(ours: mixtral.Mixtral):
    """Returns transformers' MixtralForCausalLM holding our model's weights (fused expert layout of 5.x)."""
    from transformers import MixtralConfig, MixtralForCausalLM

    c = ours.cfg
    hf_cfg = MixtralConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.dim,
        intermediate_size=c.ffn_dim,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_kv_heads,
        head_dim=c.head_dim,
        num_local_experts=c.n_experts,
        num_experts_per_tok=c.top_k,
        max_position_embeddings=c.max_seq_len,
        rope_theta=c.rope_theta,
        rms_norm_eps=c.norm_eps,
        tie_word_embeddings=False,
    )
    hf = MixtralForCausalLM(hf_cfg).eval()
    sd = {
        "model.embed_tokens.weight": ours.tok_embeddings.weight,
        "model.norm.weight": ours.norm.weight,
        "lm_head.weight": ours.output.weight,
    }
    for i, layer in enumerate(ours.layers):
        p = f"model.layers.{i}."
        sd[p + "self_attn.q_proj.weight"] = layer.attention.wq.weight
        sd[p + "self_attn.k_proj.weight"] = layer.attention.wk.weight
        sd[p + "self_attn.v_proj.weight"] = layer.attention.wv.weight
        sd[p + "self_attn.o_proj.weight"] = layer.attention.wo.weight
        sd[p + "input_layernorm.weight"] = layer.attention_norm.weight
        sd[p + "post_attention_layernorm.weight"] = layer.ffn_norm.weight
        sd[p + "mlp.gate.weight"] = layer.moe.gate.weight
        # transformers fuses gate (our w1) and up (our w3) as [E, 2*ffn, dim], gate first, then up.
        sd[p + "mlp.experts.gate_up_proj"] = torch.cat([layer.moe.experts.w1, layer.moe.experts.w3], dim=1)
        sd[p + "mlp.experts.down_proj"] = layer.moe.experts.w2
    hf.load_state_dict({k: v.detach().clone() for k, v in sd.items()}, strict=True)
    return hf


@pytest.fixture(scope="module")
def tiny() -> mixtral.Mixtral:
    torch.manual_seed(0)
    model = init_random(build_meta(TINY), "cpu", torch.float32, seed=1).eval()
    model.setup_caches(batch=2, max_seq=32)
    return model


@torch.no_grad()
def test_prefill_logits_match_transformers(tiny):
    hf = hf_model_from(tiny)
    tokens = torch.randint(0, TINY.vocab_size, (2, 12), generator=torch.Generator().manual_seed(3))
    ours = tiny(tokens, torch.arange(12))
    ref = hf(tokens).logits
    assert ours.shape == ref.shape == (2, 12, TINY.vocab_size)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


@torch.no_grad()
def test_decode_steps_with_kv_cache_match_transformers(tiny):
    hf = hf_model_from(tiny)
    seq = torch.randint(0, TINY.vocab_size, (2, 9), generator=torch.Generator().manual_seed(4))
    tiny(seq[:, :5], torch.arange(5))  # prefill fills cache slots 0..4
    for pos in range(5, 9):
        step = tiny(seq[:, pos : pos + 1], torch.tensor([pos]))  # one token per sequence, through the cache
        ref = hf(seq[:, : pos + 1]).logits[:, -1:]  # the oracle recomputes the whole prefix
        torch.testing.assert_close(step, ref, atol=2e-5, rtol=1e-4)


@torch.no_grad()
def test_gather_decode_path_matches_dispatch_path(tiny):
    experts = tiny.layers[0].moe.experts
    x = torch.randn(4, TINY.dim)
    idx = torch.tensor([[0, 3], [1, 0], [3, 2], [2, 1]])
    w = torch.softmax(torch.randn(4, 2), -1)
    torch.testing.assert_close(experts.forward_gather(x, idx, w), experts.forward_dispatch(x, idx, w))


@torch.no_grad()
def test_per_expert_loop_matches_grouped_mm(tiny, monkeypatch):
    experts = tiny.layers[1].moe.experts
    x = torch.randn(7, TINY.dim)
    # Expert 2 gets no tokens: an empty group must not shift the others.
    idx = torch.tensor([[0, 1], [1, 3], [3, 0], [0, 1], [1, 3], [3, 0], [0, 3]])
    w = torch.softmax(torch.randn(7, 2), -1)
    grouped = experts.forward_dispatch(x, idx, w)
    monkeypatch.setattr(mixtral, "HAS_GROUPED_MM", False)
    looped = experts.forward_dispatch(x, idx, w)
    torch.testing.assert_close(grouped, looped, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_routing_counts_every_assignment(tiny):
    mixtral.reset_routing_stats(tiny)
    tiny(torch.zeros(2, 3, dtype=torch.long), torch.arange(3))
    for moe in tiny.moe_layers():
        assert int(moe.expert_counts.sum()) == 2 * 3 * TINY.top_k
        assert int(moe.calls) == 1
        assert 1 <= int(moe.touched) <= TINY.n_experts


@torch.no_grad()
def test_load_checkpoint_reads_published_expert_names(tiny, tmp_path):
    from safetensors.torch import save_file

    tensors = {
        "model.embed_tokens.weight": tiny.tok_embeddings.weight,
        "model.norm.weight": tiny.norm.weight,
        "lm_head.weight": tiny.output.weight,
    }
    names = {"wq": "q_proj", "wk": "k_proj", "wv": "v_proj", "wo": "o_proj"}
    for i, layer in enumerate(tiny.layers):
        p = f"model.layers.{i}."
        for ours, hf in names.items():
            tensors[f"{p}self_attn.{hf}.weight"] = getattr(layer.attention, ours).weight
        tensors[p + "input_layernorm.weight"] = layer.attention_norm.weight
        tensors[p + "post_attention_layernorm.weight"] = layer.ffn_norm.weight
        tensors[p + "block_sparse_moe.gate.weight"] = layer.moe.gate.weight
        for w in ("w1", "w2", "w3"):
            for e in range(TINY.n_experts):
                tensors[f"{p}block_sparse_moe.experts.{e}.{w}.weight"] = getattr(layer.moe.experts, w)[e]
    # Two shards plus the index, named the way the published checkpoint names its 19 files.
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    weight_map = {}
    for fname, ks in shards.items():
        save_file({k: tensors[k].contiguous().clone() for k in ks}, str(tmp_path / fname))
        weight_map.update(dict.fromkeys(ks, fname))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))

    loaded = load_checkpoint(build_meta(TINY), tmp_path).eval()
    loaded.setup_caches(batch=1, max_seq=16)
    tokens = torch.tensor([[1, 5, 9, 200]])
    tiny.setup_caches(batch=1, max_seq=16)
    torch.testing.assert_close(loaded(tokens, torch.arange(4)), tiny(tokens, torch.arange(4)))
    tiny.setup_caches(batch=2, max_seq=32)


def test_load_checkpoint_rejects_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(build_meta(TINY), tmp_path)


def test_with_layers_keeps_shapes_and_bounds_depth():
    assert MIXTRAL_8X7B.with_layers(2).n_layers == 2
    assert MIXTRAL_8X7B.with_layers(2).ffn_dim == 14336
    with pytest.raises(ValueError):
        MIXTRAL_8X7B.with_layers(33)


def test_meta_model_has_mixtral_8x7b_parameter_count():
    model = build_meta(MIXTRAL_8X7B)
    total = sum(p.numel() for p in model.parameters())
    # 46.7B parameters, as published for Mixtral-8x7B; meta tensors cost no memory.
    assert 46.6e9 < total < 46.8e9


@torch.no_grad()
def test_random_init_stays_finite_at_32_layers():
    cfg = TINY.resized(32)
    model = init_random(build_meta(cfg), "cpu", torch.bfloat16, seed=0)
    model.setup_caches(batch=1, max_seq=16)
    logits = model(torch.tensor([[1, 2, 3]]), torch.arange(3))
    assert logits.dtype == torch.bfloat16
    assert torch.isfinite(logits).all()
    assert 0 < float(logits.float().std()) < 10
