"""The --compile decode path on the CPU: torch.compile of the gathered-weight form gives eager's logits."""

from __future__ import annotations

import pytest
import torch

from inference.mixtral import TINY, build_meta, init_random
from inference.quantize import quantize_model
from inference.runner import BenchSpec, run_benchmark

pytestmark = pytest.mark.torch


@torch.no_grad()
def test_a_compiled_int8_decode_step_gives_the_eager_logits():
    # Inductor compiles C++ here, which takes tens of seconds: one test covers the path the GPU check uses.
    model = quantize_model(init_random(build_meta(TINY), "cpu", torch.float32, seed=3), "int8", group_size=32).eval()
    model.setup_caches(batch=2, max_seq=16)
    prompt = torch.tensor([[1, 5, 9, 13], [2, 6, 10, 14]])
    model(prompt, torch.arange(4))
    step_tok, step_pos = torch.tensor([[7], [8]]), torch.tensor([4])
    eager = model(step_tok, step_pos).clone()
    for moe in model.moe_layers():
        moe.experts.prefer_gather = True  # what the runner sets under --compile
    compiled = torch.compile(lambda: model(step_tok, step_pos), dynamic=False)
    got = compiled()
    torch.testing.assert_close(got, eager, rtol=1e-4, atol=1e-4)


def test_a_compiled_run_reports_its_compile_time_and_kernels():
    spec = BenchSpec(preset="tiny", precision="int8", compile=True, prompt_tokens=8, new_tokens=3, repeats=1)
    r = run_benchmark(spec)
    assert r.status == "ok", r.message
    assert r.compile_s and r.compile_s > 0 and r.decode_tok_s > 0
    assert r.kernels == "int8: dequantize + matmul, fused by torch.compile"
