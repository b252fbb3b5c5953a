"""One-shot check of a GPU host: device report, copy bandwidth, matmul rate, then the Mixtral benchmark suite.

Results are printed and appended to gpu_check.json ($OUT or --out) as soon as each exists, most important first,
because the run may be stopped at its time limit. No Django, no network, nothing installed.
Usage: python3 -m bench.gpu_check [--budget-s 420]; on a CPU: --device cpu --layers 1 --quick.
Afterwards, on the repository's machine: python3 -m bench.gpu_check --ship path/to/gpu_check.json --command "..."
writes the results where load_catalog loads them (inference/data/measured-<card>-<date>.json).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.devices import DeviceInfo, detect_devices
from bench.runner import BenchResult, BenchSpec, format_row, run_benchmark
from physics import estimator as est
from physics.presets import MIXTRAL_8X7B_ARCH

# Dense bf16 tensor-core TFLOPS from NVIDIA's H100/H200 SXM datasheets (989.4 without sparsity).
DATASHEET_BF16_TFLOPS = {"H100 80GB HBM3": 989.4, "H200": 989.4}
# Datasheet memory bandwidth, GB/s (H100 SXM 3.35 TB/s, H200 4.8 TB/s), beside NVML's bus x clock figure.
DATASHEET_BANDWIDTH_GB_S = {"H100 80GB HBM3": 3350.0, "H200": 4800.0}


def _datasheet(table: dict[str, float], name: str) -> float | None:
    for key, value in table.items():
        if name.replace("NVIDIA ", "").strip() == key:
            return value
    return None


def measure_copy_gb_s(device: str, mb: int, iters: int = 10) -> float:
    """Returns device-to-device copy bandwidth (bytes read + written per second, GB/s), best of iters."""

    src = torch.ones(mb * 1024 * 1024 // 2, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    nbytes = 2 * src.numel() * src.element_size()
    del src, dst
    return nbytes / best / 1e9


def measure_matmul_tflops(device: str, n: int, iters: int = 10) -> float:
    """Returns the mean rate of n x n x n matmuls on random data (bf16 on CUDA, fp32 on CPU), TFLOPS."""

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e12


def _sync(device: str) -> None:

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def suite(layers: int, quick: bool, new_tokens: int, repeats: int, device: str, bf16_layers: int) -> list[BenchSpec]:
    """Returns the specs in order of importance: b1 decode first (the headline), then quantized, batch, long prompt."""
    if quick:
        base = BenchSpec(preset="tiny", layers=None, batch=1, prompt_tokens=16, new_tokens=4, repeats=2, device=device)
        return [
            replace(base, precision="fp32"),
            replace(base, precision="int8"),
            replace(base, precision="int4", group_size=32),
            replace(base, precision="fp32", batch=4),
            replace(base, precision="int8", fused=False),
            replace(base, precision="int8", compile=True),
        ]
    base = BenchSpec(preset="mixtral-8x7b", new_tokens=new_tokens, repeats=repeats, device=device, prompt_tokens=128)
    cuda = device.startswith("cuda")
    bf16 = replace(base, precision="bf16", layers=bf16_layers)
    int8 = replace(base, precision="int8", layers=layers, batch=1)
    int4 = replace(base, precision="int4", layers=layers, batch=1)
    # Compiled decode (one compiled block shared by all layers, replayed from a CUDA graph on a GPU): the path
    # meant to reach the bandwidth target, first, so a short run still measures it.
    compiled = {"compile": True, "cuda_graph": cuda}
    specs = [
        replace(bf16, batch=1, **compiled),
        replace(int8, **compiled),
        replace(int4, **compiled),
        # The eager paths: grouped expert matmuls under a CUDA graph (bf16), the fused weight-only kernels.
        replace(bf16, batch=1, cuda_graph=True) if cuda else replace(bf16, batch=1),
        int8,
        int4,
        replace(bf16, batch=8, cuda_graph=cuda),
        replace(int8, batch=8),
        replace(bf16, batch=1, prompt_tokens=2048, **compiled),
        # The quantized runs again through dequantize + matmul: what the fused kernels gain on this device.
        replace(int8, fused=False),
        replace(int4, fused=False),
    ]
    return [s for s in specs if s is not None]


def estimator_figures(result: BenchResult, gpu: DeviceInfo, tflops: float | None) -> dict | None:
    """Returns the estimator's figures for the same spec on this device (an "error" entry when it cannot tell).

    The bridge compares full-depth figures: measured ones directly when all layers ran, else the runner's
    extrapolation. Weight bytes come from the model as run, so the estimator prices exactly what was read.
    """
    if result.spec["preset"] != "mixtral-8x7b":
        return {"error": "the estimator bridge compares Mixtral-8x7B runs only"}
    try:
        spec = result.spec
        model = MIXTRAL_8X7B_ARCH
        bits = 8 * result.full_depth_weight_bytes / model.total_params
        quant = est.Quant(spec["precision"], bits, kind="torch", weight_bytes=result.full_depth_weight_bytes)
        peak_tflops = _datasheet(DATASHEET_BF16_TFLOPS, gpu.name) or tflops
        bandwidth = _datasheet(DATASHEET_BANDWIDTH_GB_S, gpu.name) or gpu.bandwidth_gb_s
        segment = "datacenter" if gpu.kind == "cuda" else "other"
        spec_gpu = est.GPUSpec(
            gpu.name,
            "nvidia" if gpu.kind == "cuda" else "other",
            segment,
            gpu.memory_gb,
            bandwidth,
            fp16_tflops=peak_tflops,
        )
        workload = est.Workload(
            context=spec["prompt_tokens"] + spec["new_tokens"],
            prompt_tokens=spec["prompt_tokens"],
            batch=spec["batch"],
            backend="torch",
        )
        e = est.estimate(model, quant, est.Build(spec_gpu), workload)
    except Exception as exc:  # an estimator mid-rewrite must not cost the measured figures
        return {"error": f"estimate failed: {type(exc).__name__}: {exc}"}
    # The runner's decode_tok_s counts every sequence of the batch, so it compares with the aggregate figure.
    aggregate = getattr(e, "decode_tok_s_aggregate", e.decode_tok_s * spec["batch"])
    out = {"decode_tok_s": aggregate, "prefill_tok_s": e.prefill_tok_s, "ttft_s": e.ttft_s, "total_gb": e.total_gb}
    if result.full_depth_decode_tok_s:
        out["decode_ratio"] = result.full_depth_decode_tok_s / aggregate
    if result.full_depth_prefill_tok_s:
        out["prefill_ratio"] = result.full_depth_prefill_tok_s / e.prefill_tok_s
    return out


def to_measured(records: list[dict], command: str, host: str | None = None) -> dict:
    """Returns the measured-results document (inference/data/measured-*.json) for one GPU check's JSON lines.

    Runs that ended "ok" or "oom" are kept, in the order they ran; an "error" run measured nothing. The host name
    defaults to the device's name, so runs from one card share one registered host.
    """
    device_rec = next((r for r in records if r.get("kind") == "device"), None)
    runs = [r for r in records if r.get("kind") == "bench" and r["result"]["status"] in ("ok", "oom")]
    if device_rec is None or not runs:
        raise ValueError("no device record or no finished run in the GPU check output")
    target = runs[0]["result"]["spec"]["device"]
    device = next((d for d in device_rec["devices"] if d["torch_device"] == target), device_rec["devices"][-1])
    date = device_rec.get("date") or time.strftime("%Y-%m-%d")
    slug = "-".join(device["name"].replace("NVIDIA", "").lower().split()) or "device"
    return {
        "about": (
            f"Benchmarks of gpufit's torch Mixtral (random weights at the real shapes) measured with "
            f"scripts/gpu_check.sh on {device['name']} on {date}. Loaded by load_catalog as measured results."
        ),
        "date": date,
        "host": host or f"{slug}-lent",
        "catalog_gpu": device["name"],
        "device": device,
        "copy_gb_s": device_rec["copy_gb_s"],
        "matmul_tflops": device_rec["matmul_tflops"],
        "datasheet_gb_s": device_rec.get("datasheet_gb_s"),
        "runs": [{"command": command, "result": r["result"]} for r in runs],
    }


def ship(check_output: Path, command: str, dest_dir: Path | None = None, host: str | None = None) -> Path:
    """Writes a GPU check's results as inference/data/measured-<card>-<date>.json; returns the file written."""
    records = [json.loads(line) for line in check_output.read_text().splitlines() if line.strip()]
    doc = to_measured(records, command, host)
    dest_dir = dest_dir or Path(__file__).resolve().parent / "data"
    slug = doc["host"].removesuffix("-lent")
    path = dest_dir / f"measured-{slug}-{doc['date']}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def _append(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Runs the check; returns 0 when every spec gave a result ("ok" or "oom"), else 1."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cuda:0 when a GPU is visible, else cpu")
    p.add_argument("--layers", type=int, default=None, help="layers for int8/int4 and (if they fit) bf16; default 32")
    p.add_argument("--quick", action="store_true", help="tiny shapes, for a CPU smoke run")
    p.add_argument("--budget-s", type=float, default=420.0, help="start no new spec after this many seconds")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="JSON-lines file; default $OUT/gpu_check.json or ./gpu_check.json")
    p.add_argument(
        "--ship",
        metavar="GPU_CHECK_JSON",
        default=None,
        help="run nothing: write that check's results as inference/data/measured-<card>-<date>.json",
    )
    p.add_argument("--command", default="scripts/gpu_check.sh", help="with --ship: the command that was run")
    p.add_argument("--dest", default=None, help="with --ship: the folder to write to; default inference/data")
    a = p.parse_args(argv)
    if a.ship:
        print(f"wrote {ship(Path(a.ship), a.command, Path(a.dest) if a.dest else None)}")
        return 0
    t_start = time.perf_counter()
    out = Path(a.out or Path(os.environ.get("OUT", ".")) / "gpu_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")

    device = a.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    devices = detect_devices(use_torch=True)
    gpu = next((d for d in devices if d.torch_device == device), devices[-1])
    print("devices:")
    for d in devices:
        print(f"  {d.torch_device}: {d.name}, {d.memory_gb:.1f} GB, {d.bandwidth_gb_s} GB/s ({d.bandwidth_source})")
    print(f"  torch {torch.__version__}, CUDA {torch.version.cuda}, driver {gpu.driver_version}")
    copy_gb_s = measure_copy_gb_s(device, 64 if a.quick else 4096)
    tflops = measure_matmul_tflops(device, 512 if a.quick else 8192)
    sheet_bw = _datasheet(DATASHEET_BANDWIDTH_GB_S, gpu.name)
    print(
        f"copy bandwidth {copy_gb_s:.0f} GB/s (read + write), matmul {tflops:.1f} TFLOPS, datasheet bandwidth {sheet_bw} GB/s"
    )
    _append(
        out,
        {
            "kind": "device",
            "date": time.strftime("%Y-%m-%d"),
            "devices": [d.to_dict() for d in devices],
            "copy_gb_s": copy_gb_s,
            "matmul_tflops": tflops,
            "datasheet_gb_s": sheet_bw,
        },
    )
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()

    layers = a.layers or 32
    bf16_layers = layers
    if not a.quick and gpu.kind == "cuda" and gpu.memory_gb < 100:
        # 32 bf16 layers are 93.4 GB: on an 80 GB card run the most that fit with room for KV cache and activations.
        bf16_layers = min(layers, int((gpu.memory_gb - 6) / 2.92))
        print(f"bf16 runs use {bf16_layers} of 32 layers on this {gpu.memory_gb:.0f} GB device (figures extrapolated)")
    specs = suite(layers, a.quick, a.new_tokens, a.repeats, device, bf16_layers)
    print(
        f"{'spec':48} {'prefill':>9} {'TTFT ms':>8} {'decode':>8} {'peak GB':>8} {'GB/s':>7} {'%copy':>6} {'%sheet':>6} {'est dec':>8} {'meas/est':>8}"
    )
    failures = 0
    for i, spec in enumerate(specs):
        elapsed = time.perf_counter() - t_start
        if elapsed > a.budget_s:
            print(f"budget: {elapsed:.0f} s used of {a.budget_s:.0f}; {len(specs) - i} specs not started")
            break
        r = run_benchmark(spec)
        est = estimator_figures(r, gpu, tflops) if r.status == "ok" else None
        name = f"{spec.precision} b{spec.batch} p{spec.prompt_tokens} L{r.model_layers or spec.layers}{' compiled' if spec.compile else ''}{' graph' if spec.cuda_graph else ''}{' unfused' if not spec.fused else ''}"
        if r.status == "ok":
            pct_copy = 100 * r.achieved_gb_s / copy_gb_s
            pct_sheet = f"{100 * r.achieved_gb_s / sheet_bw:6.1f}" if sheet_bw else "     -"
            est_dec = f"{est['decode_tok_s']:8.2f}" if est and "decode_tok_s" in est else "       -"
            ratio = f"{est['decode_ratio']:8.2f}" if est and "decode_ratio" in est else "       -"
            print(
                f"{name:48} {r.prefill_tok_s:9.1f} {r.ttft_s * 1e3:8.1f} {r.decode_tok_s:8.2f} {r.peak_memory_gb:8.2f} "
                f"{r.achieved_gb_s:7.0f} {pct_copy:6.1f} {pct_sheet} {est_dec} {ratio}"
            )
            print(
                f"    {format_row(r)}; materialise {r.materialise_s:.1f} s, warm-up {r.warmup_s:.1f} s, compile/capture {r.compile_s}"
            )
        else:
            failures += r.status == "error"
            print(f"{name:48} {r.status.upper()}: {r.message[:300]}")
        _append(out, {"kind": "bench", "result": r.to_dict(), "estimate": est, "copy_gb_s": copy_gb_s})
        sys.stdout.flush()
    print(f"total {time.perf_counter() - t_start:.0f} s; results in {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
