"""The benchmark runner: one BenchSpec in, one frozen BenchResult out; out-of-memory is a result, not a crash.

Timing method (docs/benchmarks.md): warm-up and compilation untimed and reported apart; the device is synchronised
before every clock read; peak-memory statistics are reset before the measured region; prefill and decode are timed
separately; figures are medians over repeats, with min/max as the spread.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch._inductor.config
from torch._dynamo.utils import counters

from bench.devices import cpu_name
from bench.mixtral import PRESETS, build_meta, init_random, reset_routing_stats
from bench.prompts import prompt_batch
from bench.quantize import quantize_model, use_fused_kernels
from physics.runs import BenchResult, BenchSpec, format_row
from physics.vocab import Precision, values

Progress = Callable[[float, str], None]
Step = Callable[[], torch.Tensor]  # one decode step: logits [B, 1, vocab] from the static decode inputs


def _module_bytes(module, recurse: bool = True) -> int:
    """Returns bytes of the module's parameters and persistent buffers (weights, codes and scales)."""
    total = sum(p.numel() * p.element_size() for p in module.parameters(recurse=recurse))
    for name, buf in module.named_buffers(recurse=recurse):
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("k", "v", "expert_counts", "touched", "calls", "rope_cos", "rope_sin", "positions"):
            continue  # caches and counters are not weights
        total += buf.numel() * buf.element_size()
    return total


def weight_bytes(model) -> int:
    """Returns the bytes of every weight of the model (works on meta models too)."""
    return _module_bytes(model)


def active_bytes(model, batch: int, experts_touched: list[float]) -> int:
    """Returns weight bytes one decode step reads, given the mean distinct experts touched in each layer."""
    dim_row = model.tok_embeddings.weight[0].numel() * model.tok_embeddings.weight.element_size()
    total = batch * dim_row + _module_bytes(model.norm) + _module_bytes(model.output)
    for layer, touched in zip(model.layers, experts_touched, strict=True):
        experts = layer.moe.experts
        total += _module_bytes(layer) - _module_bytes(experts)  # attention, norms, router
        total += round(_module_bytes(experts) / experts.n_experts * touched)
    return total


def _sync(device) -> None:

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _dtype(precision: str):

    if precision == "fp32":
        return torch.float32
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16


def _env(device) -> dict:

    info = {
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "driver_version": None,
        "engine_version": torch.__version__,
        "engine_flags": {"threads": torch.get_num_threads()} if device.type == "cpu" else {},
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        # pynvml missing or NVML unavailable: the driver version stays unknown.
        with contextlib.suppress(Exception):
            import pynvml

            pynvml.nvmlInit()
            v = pynvml.nvmlSystemGetDriverVersion()
            info["driver_version"] = v.decode() if isinstance(v, bytes) else v
            pynvml.nvmlShutdown()
    else:
        info["device_name"] = cpu_name()
    return info


def _peak_memory(device) -> tuple[float, str]:

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9, "torch.cuda.max_memory_allocated over the measured region"
    import resource

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss_kb * 1024 / 1e9, "process RSS high-water mark (getrusage ru_maxrss), whole process lifetime"


def _is_oom(exc: BaseException) -> bool:

    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def build_model(spec: BenchSpec, device):
    """Returns the materialised model for spec, built on meta and filled in place on device."""

    cfg = PRESETS[spec.preset]
    cfg = cfg.with_layers(spec.layers or cfg.n_layers)
    model = build_meta(cfg)
    if spec.precision in ("int8", "int4"):
        quantize_model(model, spec.precision, group_size=spec.group_size)
    dtype = _dtype(spec.precision)
    planned = weight_bytes(model.to(dtype=dtype))
    kv = 2 * cfg.n_layers * spec.batch * cfg.n_kv_heads * (spec.prompt_tokens + spec.new_tokens) * cfg.head_dim * 2
    if spec.memory_limit_gb is not None and (planned + kv) / 1e9 > spec.memory_limit_gb:
        raise torch.OutOfMemoryError(
            f"out of memory: weights {planned / 1e9:.1f} GB + KV cache {kv / 1e9:.2f} GB exceed memory_limit_gb={spec.memory_limit_gb}"
        )
    return init_random(model, device, dtype, seed=spec.seed).eval()


def compile_decode_blocks(model) -> None:
    """Compiles each transformer block, the final norm and lm_head of model in place, for single-token steps.

    The 32 blocks share one compiled graph (their weights are graph inputs, not constants), so compiling costs
    one block, not the unrolled model. The expert stacks switch to the gathered form, which compiles into
    reductions that read each chosen expert's weights once. Callers keep prefill eager (set_stance "force_eager").
    """
    for moe in model.moe_layers():
        moe.experts.prefer_gather = True
    for module in (*model.layers, model.norm, model.output):
        module.compile(dynamic=False)


def compiled_graph_count() -> int:
    """Returns how many distinct graphs torch.compile has produced in this process so far."""

    return int(counters["stats"]["unique_graphs"])


def run_benchmark(spec: BenchSpec, progress: Progress | None = None) -> BenchResult:
    """Returns the measured result of spec: status "ok", "oom" (with the message) or "error"."""

    spec.validate()
    report = progress or (lambda _pct, _msg: None)
    device = torch.device(spec.device)
    model = None
    try:
        report(0.0, "building model")
        return _run(spec, device, report)
    except Exception as exc:
        status = "oom" if _is_oom(exc) else "error"
        message = str(exc) if status == "oom" else "".join(traceback.format_exception_only(exc)).strip()
        return BenchResult(spec=asdict(spec), status=status, message=message[:2000], **_env(device))
    finally:
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _run(spec: BenchSpec, device, report: Progress) -> BenchResult:
    """Returns the "ok" result of spec: build, warm up, compile if asked, then time prefill and decode apart."""
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    model = build_model(spec, device)
    with torch.inference_mode():
        model.setup_caches(spec.batch, spec.prompt_tokens + spec.new_tokens)
        _sync(device)
        materialise_s = time.perf_counter() - t0
        report(10.0, f"materialised {model.cfg.n_layers} layers in {materialise_s:.1f} s")
        inputs = _Inputs.for_spec(spec, model.cfg.vocab_size, device)

        def eager_step():  # one decode step through the model as it stands (compiled blocks run compiled)
            return model(inputs.step_tok, inputs.step_pos)  # [B, 1, vocab]

        if spec.compile:
            # A worker lives through many jobs: start each compiled run from empty caches, so graphs of earlier
            # shapes never count against dynamo's recompile limit (past it, a step would silently run eager).
            torch._dynamo.reset()
        graphs_before = compiled_graph_count()
        kernels = _prepare_kernels(spec, model, report)
        warmup_s = _warm_up(spec, model, inputs, eager_step, device)
        step, notes, compile_s = _compile_step(spec, eager_step, graphs_before, device, report)
        measured = _measure(spec, model, inputs, step, device, report)
        figures = _figures(spec, model, measured)
        env = _env(device)
        report(100.0, "done")
        return BenchResult(
            spec=asdict(spec),
            status="ok",
            **figures,
            materialise_s=materialise_s,
            warmup_s=warmup_s,
            compile_s=compile_s,
            kernels="; ".join(p for p in (kernels, *notes) if p),
            **env,
        )


@dataclass(frozen=True)
class _Inputs:
    """The run's input tensors. The decode ones are static: a compiled or captured step reads them in place."""

    tokens: torch.Tensor  # [B, P] prompt token ids
    prefill_pos: torch.Tensor  # [P] their positions
    step_tok: torch.Tensor  # [B, 1] the token each sequence feeds the next decode step
    step_pos: torch.Tensor  # [1] its position

    @classmethod
    def for_spec(cls, spec: BenchSpec, vocab_size: int, device) -> _Inputs:
        """Returns the prompt batch of spec on device and zeroed decode inputs."""
        # Real Mixtral token ids; folded into a test preset's smaller vocabulary (no-op for 32000).
        tokens = torch.tensor(prompt_batch(spec.batch, spec.prompt_tokens), device=device) % vocab_size  # [B, P]
        return cls(
            tokens=tokens,
            prefill_pos=torch.arange(spec.prompt_tokens, device=device),
            step_tok=torch.zeros(spec.batch, 1, dtype=torch.long, device=device),
            step_pos=torch.zeros(1, dtype=torch.long, device=device),
        )

    def feed(self, tok: torch.Tensor, pos: int) -> None:
        """Sets the next decode step's inputs: token tok [B] at position pos."""
        self.step_tok.copy_(tok[:, None])
        self.step_pos.fill_(pos)


def _eager(spec: BenchSpec):
    """Returns the context prefill and the warm-up run in: eager even under --compile (only decode is compiled)."""
    return torch.compiler.set_stance("force_eager") if spec.compile else contextlib.nullcontext()


def _prepare_kernels(spec: BenchSpec, model, report: Progress) -> str:
    """Returns which kernels the matmuls use ("" for plain float), after compiling or fusing model as spec asks."""
    quantized = spec.precision in ("int8", "int4")
    if spec.compile:
        compile_decode_blocks(model)
        if quantized and spec.fused:
            # Eager prefill through the fused int8 kernel; the compiled step dequantizes in its reductions.
            return "prefill: " + use_fused_kernels(model, _dtype(spec.precision), modes=("int8",))
        return "prefill: dequantize + matmul (fused kernels turned off)" if quantized else ""
    if not quantized:
        return ""
    if not spec.fused:
        return f"{spec.precision}: dequantize + matmul (fused kernels turned off)"
    kernels = use_fused_kernels(model, _dtype(spec.precision))
    if kernels:
        report(11.0, kernels)
    return kernels


def _warm_up(spec: BenchSpec, model, inputs: _Inputs, eager_step: Step, device) -> float:
    """Returns the seconds of the untimed warm-up: one prefill and two decode steps (one when new_tokens is 1), eager.

    It loads and autotunes the kernels, so that the first timed repeat does not pay for them. The cache holds
    prompt_tokens + new_tokens positions, so the warm-up never steps past the last one.
    """
    tw = time.perf_counter()
    with _eager(spec):
        first = model(inputs.tokens, inputs.prefill_pos)[:, -1].argmax(-1)  # [B]
        for i in range(min(2, spec.new_tokens)):
            inputs.feed(first, spec.prompt_tokens + i)
            eager_step()
    _sync(device)
    return time.perf_counter() - tw


def _compile_step(
    spec: BenchSpec, eager_step: Step, graphs_before: int, device, report: Progress
) -> tuple[Step, list[str], float | None]:
    """Returns the decode step to time, notes on how it runs, and its compile seconds (None when it stays eager).

    Under --compile, two calls trace and compile the blocks compile_decode_blocks marked; under --cuda-graph the
    step is then captured once and replayed.
    """
    if not (spec.compile or spec.cuda_graph):
        return eager_step, [], None
    report(15.0, "compiling the decode step")
    tc = time.perf_counter()
    step, notes = eager_step, []
    if spec.compile:
        # Coordinate-descent tuning picks the block sizes of inductor's reductions; its matrix-vector
        # kernels reach full bandwidth on CUDA only with it. The CPU backend ignores it.
        with torch._inductor.config.patch(coordinate_descent_tuning=device.type == "cuda"):
            for _ in range(2):
                step()
        graphs = compiled_graph_count() - graphs_before
        dequant = ", weights dequantized inside its reductions" if spec.precision in ("int8", "int4") else ""
        notes.append(f"decode step compiled into {graphs} graphs{dequant}")
    if spec.cuda_graph:
        step = _capture_cuda_graph(step, device)
        notes.append("decode step replayed from a CUDA graph")
    _sync(device)
    return step, notes, time.perf_counter() - tc


def _capture_cuda_graph(step: Step, device) -> Step:
    """Returns a step that replays one captured call of step; its output tensor is the same one every replay."""
    # Two calls on a side stream first, as torch.cuda.graph asks, so that lazy initialisation is not captured.
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        graph_out = step()

    def replay():
        graph.replay()
        return graph_out

    return replay


@dataclass
class _Measured:
    """What the timed repeats recorded."""

    prefill_s: list[float] = field(default_factory=list)  # per repeat: the forward pass over the prompt
    ttft_s: list[float] = field(default_factory=list)  # per repeat: prefill and choosing the first token
    decode_s: list[float] = field(default_factory=list)  # per repeat: all new tokens
    step_s: list[float] = field(default_factory=list)  # every decode step of every repeat
    touched: list[float] = field(default_factory=list)  # per layer: mean distinct experts a decode step read
    histogram: list[list[int]] = field(default_factory=list)  # [layer][expert]: tokens routed while decoding
    peak_memory_gb: float = 0.0
    peak_memory_source: str = ""


def _measure(spec: BenchSpec, model, inputs: _Inputs, step: Step, device, report: Progress) -> _Measured:
    """Returns the timings, routing counts and peak memory of spec.repeats runs of prefill then decode."""
    cfg = model.cfg
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    m = _Measured(touched=[0.0] * cfg.n_layers, histogram=[[0] * cfg.n_experts for _ in range(cfg.n_layers)])
    for r in range(spec.repeats):
        report(20.0 + 75.0 * r / spec.repeats, f"repeat {r + 1}/{spec.repeats}: prefill")
        nxt, prefill_s, ttft_s = _time_prefill(spec, model, inputs, device)
        m.prefill_s.append(prefill_s)
        m.ttft_s.append(ttft_s)
        reset_routing_stats(model)
        report(20.0 + 75.0 * (r + 0.3) / spec.repeats, f"repeat {r + 1}/{spec.repeats}: decode")
        decode_s, step_s = _time_decode(spec, inputs, step, nxt, device)
        m.step_s.extend(step_s)
        m.decode_s.append(decode_s)
        _add_routing(model, m, spec.repeats)
    m.peak_memory_gb, m.peak_memory_source = _peak_memory(device)
    return m


def _time_prefill(spec: BenchSpec, model, inputs: _Inputs, device) -> tuple[torch.Tensor, float, float]:
    """Returns the first new token [B], the prefill seconds and the time to that first token."""
    _sync(device)
    ta = time.perf_counter()
    with _eager(spec):
        logits = model(inputs.tokens, inputs.prefill_pos)  # [B, P, vocab]
    _sync(device)
    tb = time.perf_counter()
    nxt = logits[:, -1].argmax(-1)  # [B] greedy: sampling choice does not change the cost
    _sync(device)
    return nxt, tb - ta, time.perf_counter() - ta


def _time_decode(
    spec: BenchSpec, inputs: _Inputs, step: Step, first: torch.Tensor, device
) -> tuple[float, list[float]]:
    """Returns the seconds to decode spec.new_tokens tokens after first [B], and the seconds of each step."""
    step_s = []
    nxt = first
    td = time.perf_counter()
    for i in range(spec.new_tokens):
        inputs.feed(nxt, spec.prompt_tokens + i)
        ts = time.perf_counter()
        nxt = step()[:, -1].argmax(-1)  # [B]
        _sync(device)
        step_s.append(time.perf_counter() - ts)
    return time.perf_counter() - td, step_s


def _add_routing(model, m: _Measured, repeats: int) -> None:
    """Adds one repeat's routing counts of model's MoE layers to m (touched experts as a mean over repeats)."""
    for li, moe in enumerate(model.moe_layers()):
        m.touched[li] += float(moe.touched) / max(int(moe.calls), 1) / repeats
        for e, c in enumerate(moe.expert_counts.tolist()):
            m.histogram[li][e] += c


def _figures(spec: BenchSpec, model, m: _Measured) -> dict:
    """Returns the result fields derived from the measurement: rates, latencies, bytes, routing, full depth."""
    cfg = model.cfg
    step_s = statistics.median(m.step_s)
    act = active_bytes(model, spec.batch, m.touched)
    shares = [max(h) / max(sum(h), 1) for h in m.histogram]
    kv_elt = model.layers[0].attention.kv_cache.k.element_size()
    max_seq = spec.prompt_tokens + spec.new_tokens
    kv_bytes = 2 * cfg.n_layers * spec.batch * cfg.n_kv_heads * max_seq * cfg.head_dim * kv_elt
    wbytes = weight_bytes(model)
    prefill_s, ttft_s = statistics.median(m.prefill_s), statistics.median(m.ttft_s)
    decode_rates = [spec.batch * spec.new_tokens / t for t in m.decode_s]
    full_layers = PRESETS[spec.preset].n_layers
    full_w, ratio_decode, ratio_prefill, how = _full_depth(spec, model, m.touched, act, wbytes)
    decode_tok_s = spec.batch / step_s
    return {
        "model_layers": cfg.n_layers,
        "full_layers": full_layers,
        "prefill_tok_s": spec.batch * spec.prompt_tokens / prefill_s,
        "ttft_s": ttft_s,
        "decode_tok_s": decode_tok_s,
        "decode_tok_s_min": min(decode_rates),
        "decode_tok_s_max": max(decode_rates),
        "per_token_latency_ms": step_s * 1e3,
        "per_token_latency_p90_ms": statistics.quantiles(m.step_s, n=10)[-1] * 1e3
        if len(m.step_s) > 1
        else step_s * 1e3,
        "peak_memory_gb": m.peak_memory_gb,
        "peak_memory_source": m.peak_memory_source,
        "weight_bytes": wbytes,
        "active_bytes_per_token": act,
        "kv_bytes_per_token": kv_bytes,
        "experts_touched_per_layer": sum(m.touched) / len(m.touched),
        "achieved_gb_s": act / step_s / 1e9,
        "expert_histogram": m.histogram,
        "expert_share_max": max(shares),
        "routing_collapsed": max(shares) > 0.6,
        "full_depth_weight_bytes": full_w,
        "full_depth_decode_tok_s": decode_tok_s / ratio_decode,
        "full_depth_prefill_tok_s": spec.batch * spec.prompt_tokens / prefill_s / ratio_prefill,
        "full_depth_ttft_s": ttft_s * ratio_prefill,
        "extrapolation": how,
    }


def _full_depth(spec: BenchSpec, model, touched: list[float], act: int, wbytes: int) -> tuple[int, float, float, str]:
    """Returns the preset's full-depth weight bytes, the decode and prefill time ratios to it, and how they were got.

    Decode keeps the achieved bandwidth over the full depth's active bytes; prefill keeps the FLOP rate over the
    full depth's active parameters (a linear model per layer).
    """
    cfg, full_cfg = model.cfg, PRESETS[spec.preset]
    full_layers = full_cfg.n_layers
    if cfg.n_layers == full_layers:
        return wbytes, 1.0, 1.0, "all layers ran: no extrapolation"
    full_meta = build_meta(full_cfg)
    if spec.precision in ("int8", "int4"):
        quantize_model(full_meta, spec.precision, group_size=spec.group_size)
    full_meta.to(dtype=_dtype(spec.precision))
    full_w = weight_bytes(full_meta)
    mean_touched = sum(touched) / len(touched)
    ratio_decode = active_bytes(full_meta, spec.batch, [mean_touched] * full_layers) / act
    per_layer = (wbytes - _module_bytes(model.output) - _module_bytes(model.tok_embeddings)) / cfg.n_layers
    fixed = _module_bytes(model.output)
    ratio_prefill = (fixed + per_layer * full_layers) / (fixed + per_layer * cfg.n_layers)
    how = (
        f"{cfg.n_layers} of {full_layers} layers ran; decode scaled by active bytes "
        f"(x{ratio_decode:.2f}, same achieved bandwidth), prefill by active weights (x{ratio_prefill:.2f})"
    )
    return full_w, ratio_decode, ratio_prefill, how


def main(argv: list[str] | None = None) -> int:
    """Runs one benchmark from the command line; returns the exit status (0 ok, 2 oom, 1 error)."""
    p = argparse.ArgumentParser(description="Benchmark the torch Mixtral at real shapes with random weights.")
    p.add_argument("--preset", default="mixtral-8x7b")
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--precision", default="bf16", choices=values(Precision))
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--cuda-graph", action="store_true")
    p.add_argument("--no-fused", action="store_true", help="int8/int4: dequantize + matmul instead of fused kernels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-limit-gb", type=float, default=None)
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    a = p.parse_args(argv)
    spec = BenchSpec(
        preset=a.preset,
        layers=a.layers,
        precision=a.precision,
        batch=a.batch,
        prompt_tokens=a.prompt_tokens,
        new_tokens=a.new_tokens,
        repeats=a.repeats,
        device=a.device,
        compile=a.compile,
        cuda_graph=a.cuda_graph,
        fused=not a.no_fused,
        seed=a.seed,
        group_size=a.group_size,
        memory_limit_gb=a.memory_limit_gb,
    )
    progress = None if a.json else (lambda pct, msg: print(f"[{pct:5.1f}%] {msg}", file=sys.stderr))
    result = run_benchmark(spec, progress)
    print(json.dumps(result.to_dict(), indent=1) if a.json else format_row(result))
    return {"ok": 0, "oom": 2}.get(result.status, 1)


if __name__ == "__main__":
    sys.exit(main())
