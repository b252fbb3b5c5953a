"""Weight-only int8/int4: packing, error bounds, what stays in high precision, direct materialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.mixtral import TINY, build_meta, init_random
from bench.quantize import (
    Int4Linear,
    Int8Linear,
    QuantExperts,
    dequantize_int4,
    kernel_self_test,
    quantize_int4,
    quantize_model,
    use_fused_kernels,
)

pytestmark = pytest.mark.torch


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def tiny_model(seed: int = 0):
    model = init_random(build_meta(TINY), "cpu", torch.float32, seed=seed).eval()
    model.setup_caches(batch=1, max_seq=32)
    return model


def test_int4_packing_round_trips_exact_codes():
    # Values already on the int4 grid of their group come back exactly: packing loses nothing.
    scales = torch.tensor([[0.5, 0.25]])
    codes = torch.tensor([[-7, -3, 0, 7, 3, -1, 5, -7]], dtype=torch.float32)  # each group spans +-7
    w = codes * scales.repeat_interleave(4, dim=1)
    packed, s = quantize_int4(w, group_size=4)
    assert packed.dtype == torch.uint8 and packed.shape == (1, 4)
    torch.testing.assert_close(dequantize_int4(packed, s, torch.float32), w)


@pytest.mark.parametrize(("mode", "group", "bound"), [("int8", 128, 0.01), ("int4", 32, 0.12), ("int4", 64, 0.13)])
def test_quantized_linear_output_error_is_bounded(mode, group, bound):
    torch.manual_seed(0)
    lin = nn.Linear(256, 96, bias=False)
    x = torch.randn(5, 256)
    q = Int8Linear.from_linear(lin) if mode == "int8" else Int4Linear.from_linear(lin, group)
    err = rel_err(q(x), lin(x))
    assert 0 < err < bound


@torch.no_grad()
@pytest.mark.parametrize(("mode", "bound"), [("int8", 0.02), ("int4", 0.2)])
def test_quantized_tiny_model_logits_stay_close(mode, bound):
    tokens = torch.tensor([[1, 17, 42, 99, 3, 250, 7, 8]])
    ref = tiny_model()(tokens, torch.arange(8))
    q = quantize_model(tiny_model(), mode, group_size=32)
    got = q(tokens, torch.arange(8))
    assert 0 < rel_err(got, ref) < bound


@torch.no_grad()
def test_router_and_embeddings_stay_in_high_precision():
    model = quantize_model(tiny_model(), "int4", group_size=32)
    layer = model.layers[0]
    assert type(layer.moe.gate) is nn.Linear and layer.moe.gate.weight.dtype == torch.float32
    assert model.tok_embeddings.weight.dtype == torch.float32
    assert isinstance(layer.attention.wq, Int4Linear)
    assert isinstance(layer.moe.experts, QuantExperts) and layer.moe.experts.w1.dtype == torch.uint8
    assert isinstance(model.output, Int8Linear)  # lm_head is int8 in both modes


@torch.no_grad()
def test_experts_get_scales_per_expert():
    model = tiny_model()
    w1 = model.layers[0].moe.experts.w1
    w1[1] *= 100  # one loud expert must not coarsen the others' grids
    q = QuantExperts(model.layers[0].moe.experts, "int8", 32)
    assert q.w1_scales.shape == (TINY.n_experts, TINY.ffn_dim)
    assert rel_err(q.weight("w1", 0, torch.float32), w1[0]) < 0.01


@torch.no_grad()
def test_quantized_gather_and_dispatch_paths_agree():
    q = QuantExperts(tiny_model().layers[0].moe.experts, "int4", 32)
    x = torch.randn(3, TINY.dim)
    idx = torch.tensor([[0, 1], [2, 3], [1, 2]])
    w = torch.softmax(torch.randn(3, 2), -1)
    torch.testing.assert_close(q.forward_gather(x, idx, w), q.forward_dispatch(x, idx, w), atol=1e-5, rtol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_meta_model_materialises_directly_in_integer_codes(mode):
    model = quantize_model(build_meta(TINY), mode, group_size=32)
    init_random(model, "cpu", torch.bfloat16, seed=2)
    experts = model.layers[1].moe.experts
    assert experts.w2.dtype == (torch.int8 if mode == "int8" else torch.uint8)
    assert experts.w2_scales.dtype == torch.bfloat16
    assert not any(t.is_meta for t in model.state_dict().values())
    model.setup_caches(batch=2, max_seq=16)
    logits = model(torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.arange(3))
    assert torch.isfinite(logits).all() and float(logits.float().std()) > 0


def test_int4_rejects_a_group_that_does_not_divide_the_width():
    with pytest.raises(ValueError):
        quantize_model(build_meta(TINY), "int4", group_size=48)


@torch.no_grad()
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_fused_kernels_give_the_reference_paths_logits(mode, dtype):
    # The same codes through torch's fused weight-only kernels and through dequantize + matmul.
    tokens = torch.tensor([[1, 17, 42, 99, 3, 250, 7, 8]])
    ref_model = quantize_model(tiny_model(), mode, group_size=32).to(dtype)
    fused_model = quantize_model(tiny_model(), mode, group_size=32).to(dtype)
    report = use_fused_kernels(fused_model, dtype)
    assert report.startswith(
        "int4: aten._weight_int4pack_mm_for_cpu" if mode == "int4" else "int8: aten._weight_int8pack_mm"
    )
    experts = fused_model.layers[0].moe.experts
    assert experts.fused and fused_model.output.fused
    assert not experts.use_gather(1)  # fused experts dispatch even a single token
    for model in (ref_model, fused_model):
        model.setup_caches(batch=1, max_seq=32)
    ref = ref_model(tokens, torch.arange(8)).float()
    got = fused_model(tokens, torch.arange(8)).float()
    bound = 1e-4 if dtype == torch.float32 else 0.03
    assert rel_err(got, ref) < bound
    # and one cached decode step
    nxt = torch.tensor([[5]])
    ref_step = ref_model(nxt, torch.tensor([8])).float()
    got_step = fused_model(nxt, torch.tensor([8])).float()
    assert rel_err(got_step, ref_step) < bound


@torch.no_grad()
def test_int4_kernel_layout_keeps_the_bytes_and_adds_zero_points():
    lin = nn.Linear(256, 64, bias=False)
    q = Int4Linear.from_linear(lin, 64)
    before = q.weight.numel() * q.weight.element_size()
    q.use_kernel()
    assert q.weight.numel() * q.weight.element_size() == before
    assert q.scales.shape == (256 // 64, 64, 2) and not q.scales[..., 1].any()


def test_a_device_without_a_kernel_gets_the_reason_not_a_crash():
    reason = kernel_self_test("int8", torch.device("meta"), torch.bfloat16)
    assert reason == "this torch build has no int8 weight-only kernel for meta"
    assert kernel_self_test("int8", torch.device("cpu"), torch.bfloat16) is None


def test_a_kernel_that_disagrees_with_the_reference_is_not_used(monkeypatch):
    import bench.quantize as qz

    monkeypatch.setattr(
        qz, "int8_mm", lambda x, codes, scales: torch.zeros(*x.shape[:-1], codes.shape[0], dtype=x.dtype)
    )
    model = quantize_model(tiny_model(), "int8", group_size=32)
    report = use_fused_kernels(model, torch.float32)
    assert report.startswith("int8: dequantize + matmul (_weight_int8pack_mm disagreed with the reference path")
    assert not model.output.fused and not model.layers[0].moe.experts.fused


def test_a_kernel_that_raises_is_not_used_and_the_reason_is_kept(monkeypatch):
    import bench.quantize as qz

    def broken(x, codes, scales):
        raise NotImplementedError("no kernel for this dtype")

    monkeypatch.setattr(qz, "int8_mm", broken)
    reason = kernel_self_test("int8", torch.device("cpu"), torch.float32)
    assert reason == "_weight_int8pack_mm failed on cpu (torch.float32): no kernel for this dtype"
    model = quantize_model(tiny_model(), "int8", group_size=32)
    assert use_fused_kernels(model, torch.float32).startswith("int8: dequantize + matmul (_weight_int8pack_mm failed")
    assert not model.output.fused
