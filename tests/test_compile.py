"""The --compile decode path on the CPU: compiled blocks give eager's logits, share one graph, and never copy weights."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from torch._inductor.utils import run_and_get_code

from bench.mixtral import TINY, build_meta, init_random
from bench.quantize import quantize_model, use_fused_kernels
from bench.runner import BenchSpec, compile_decode_blocks, run_benchmark

pytestmark = pytest.mark.torch

FOUR_LAYERS = TINY.resized(4)


def _allocations(code: str) -> list[int]:
    """Returns the element count of every buffer the generated code allocates."""
    sizes = []
    for shape in re.findall(r"empty_strided\w*\(\(([^)]*)\)", code):
        n = 1
        for dim in filter(None, (d.strip() for d in shape.split(","))):
            n *= int(dim)
        sizes.append(n)
    return sizes


@pytest.mark.parametrize("mode", ["float", "int8", "int4", "int8 with prefill kernels"])
@torch.no_grad()
def test_a_compiled_decode_step_gives_the_eager_logits_and_reads_weights_in_place(mode):
    # Inductor compiles C++ here (tens of seconds per mode): one decode step per weight format.
    torch._dynamo.reset()
    model = init_random(build_meta(FOUR_LAYERS), "cpu", torch.float32, seed=3)
    if mode != "float":
        model = quantize_model(model, mode.split()[0], group_size=32)
    if mode.endswith("prefill kernels"):  # what the runner does under --compile: eager prefill on the int8 kernel
        assert use_fused_kernels(model, torch.float32, modes=("int8",)) == "int8: aten._weight_int8pack_mm"
    model.eval().setup_caches(batch=1, max_seq=16)
    model(torch.tensor([[1, 5, 9, 13]]), torch.arange(4))
    step_tok, step_pos = torch.tensor([[7]]), torch.tensor([4])
    eager = model(step_tok, step_pos).clone()
    model(torch.tensor([[1, 5, 9, 13]]), torch.arange(4))  # same cache state again

    compile_decode_blocks(model)
    got, code = run_and_get_code(lambda: model(step_tok, step_pos))

    torch.testing.assert_close(got, eager, rtol=1e-4, atol=1e-4)
    # One graph for the four blocks (plus the final norm and lm_head), not one per layer.
    assert len(code) <= 3, f"{len(code)} graphs for {FOUR_LAYERS.n_layers} blocks"
    # Gathered experts and dequantized weights stay inside the reductions: no buffer as large as a weight
    # matrix is ever written (an expert matrix is ffn x dim = 8,192 values; lm_head 16,384).
    expert_matrix = FOUR_LAYERS.ffn_dim * FOUR_LAYERS.dim
    assert max(_allocations("\n".join(code))) < expert_matrix // 4


def test_a_compiled_run_reports_its_compile_time_and_kernels():
    spec = BenchSpec(preset="tiny", precision="int8", compile=True, prompt_tokens=8, new_tokens=3, repeats=1)
    r = run_benchmark(spec)
    assert r.status == "ok", r.message
    assert r.compile_s and r.compile_s > 0 and r.decode_tok_s > 0
    assert r.kernels.startswith("prefill: int8: aten._weight_int8pack_mm; decode step compiled into")
    assert r.kernels.endswith("graphs, weights dequantized inside its reductions")
    int4 = run_benchmark(dataclasses.replace(spec, precision="int4", group_size=32))
    assert int4.status == "ok", int4.message
    assert int4.kernels.startswith("prefill: int4: dequantize + matmul; int8: aten._weight_int8pack_mm; decode step")
