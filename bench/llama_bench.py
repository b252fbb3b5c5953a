"""llama-bench over generated GGUFs: the llama.cpp scoreboards' own timing, for catalog models, on one GPU host.

``scripts/gpu_llamacpp.sh`` builds llama.cpp for the visible GPU and calls this module with the built
``llama-bench``. For each step of a plan it writes the model's GGUF with random weights at the real shapes and
llama.cpp's per-tensor types (:mod:`bench.gguf_writer`: kernel speed does not depend on the weight values), runs
``llama-bench -o jsonl`` on it with every layer on the GPU, and

* appends each record llama-bench prints, with the model's config file and format, to a JSON-lines file at once,
  so a run cut short keeps what it measured;
* prints one table row per test: pp (prompt) or tg (generation), depth, flash attention, tok/s and its spread.

Files are written once and removed when the plan moves to another model (a 70B file fills much of a small disk).
``--budget-s`` starts no new step after that many seconds. No Django, no network; needs gguf and numpy.
``--ship`` turns a sweep's flash-attention runs into a measured-results file that ``load_catalog`` loads (shown on
the GPU and model pages beside the estimate, not folded into calibration: the shipped fit answers to the public set).

    python3 -m bench.llama_bench --llama-bench build/bin/llama-bench --out llama_bench.jsonl
    python3 -m bench.llama_bench --ship bench/data/llama-bench-h200-2026-12-04.jsonl bench/data/llama-bench-h200-2026-12-04.about.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.gguf_writer import cached_gguf
from physics.arch import arch_from_config
from physics.presets import read_config
from physics.runs import BenchResult, BenchSpec
from physics.vocab import Engine


@dataclass(frozen=True)
class Step:
    """One llama-bench call: a catalog config (models/data/configs), a GGUF format and llama-bench's test flags."""

    config: str  # file name in models/data/configs
    fmt: str  # a physics.gguf format
    flags: tuple[str, ...]  # llama-bench's -p/-n/-d/-fa/-ub flags


def _both_fa(*flags: str) -> tuple[str, ...]:
    return (*flags, "-fa", "0,1")


# The default plan, most useful first: one dense 8B model at the llama.cpp scoreboards' pp512/tg128 and longer
# prompts, after a filled cache, at three precisions; a small model (fixed costs per step), a MoE model and a 70B.
PLAN: tuple[Step, ...] = (
    Step("llama-3-1-8b-instruct.json", "Q4_K_M", _both_fa("-p", "512,2048", "-n", "128")),
    Step("llama-3-1-8b-instruct.json", "Q4_K_M", _both_fa("-p", "512", "-n", "128", "-d", "4096,16384")),
    Step("llama-3-1-8b-instruct.json", "Q8_0", _both_fa("-p", "512", "-n", "128")),
    Step("llama-3-1-8b-instruct.json", "F16", _both_fa("-p", "512", "-n", "128")),
    Step("llama-3-2-1b-instruct.json", "Q4_K_M", _both_fa("-p", "512", "-n", "128")),
    Step("qwen3-30b-a3b.json", "Q4_K_M", _both_fa("-p", "512", "-n", "128")),
    Step("llama-3-1-70b-instruct.json", "Q4_K_M", _both_fa("-p", "512", "-n", "128")),
)


def command(binary: str, path: Path, step: Step, repeats: int) -> list[str]:
    """Returns the llama-bench command line for one step (all layers on the GPU, JSON lines out)."""
    return [binary, "-m", str(path), "-ngl", "99", "-r", str(repeats), "-o", "jsonl", *step.flags]


def parse(stdout: str) -> list[dict]:
    """Returns the records of llama-bench's JSON-lines output (lines that are not JSON objects are skipped)."""
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def test_label(r: dict) -> str:
    """Returns llama-bench's own test label: pp512, tg128, pp512 @ d4096."""
    name = f"pp{r['n_prompt']}" if r.get("n_prompt") else f"tg{r['n_gen']}"
    return f"{name} @ d{r['n_depth']}" if r.get("n_depth") else name


def row(step: Step, r: dict) -> str:
    """Returns one table row: model, format, test, flash attention, micro-batch, tok/s and its spread."""
    fa = r.get("flash_attn")
    fa = {True: "on", False: "off"}.get(fa, str(fa))  # llama-bench writes 0 or 1 (equal to False, True)
    return (
        f"| {step.config.removesuffix('.json')} | {step.fmt} | {test_label(r)} | {fa} | {r.get('n_ubatch')} "
        f"| {r['avg_ts']:,.1f} | {r.get('stddev_ts', 0.0):,.1f} |"
    )


def run(binary: str, out: Path, cache: Path, plan: tuple[Step, ...], repeats: int, budget_s: float) -> int:
    """Runs the plan; returns how many steps failed. Records go to ``out`` as they come."""
    start = time.monotonic()
    failures = 0
    written: dict[tuple[str, str], Path] = {}
    print("| model | format | test | flash attention | ubatch | tok/s | sd |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: |")
    for i, step in enumerate(plan):
        if time.monotonic() - start > budget_s:
            print(f"budget of {budget_s:.0f} s spent: {len(plan) - i} steps not started", file=sys.stderr)
            break
        key = (step.config, step.fmt)
        if key not in written:
            for path in written.values():
                path.unlink(missing_ok=True)
            written.clear()
            t0 = time.monotonic()
            try:
                gguf = cached_gguf(cache, read_config(step.config), step.fmt, label=step.config.removesuffix(".json"))
            except OSError as exc:
                print(f"{step.config} {step.fmt}: {exc}", file=sys.stderr)
                failures += 1
                continue
            written[key] = gguf.path
            print(
                f"wrote {gguf.path.name} ({gguf.file_bytes / 1e9:.2f} GB) in {time.monotonic() - t0:.0f} s",
                file=sys.stderr,
            )
        cmd = command(binary, written[key], step, repeats)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        records = parse(proc.stdout) if proc.returncode == 0 else []
        if not records:
            failures += 1
            print(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}", file=sys.stderr)
            continue
        with out.open("a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({"config": step.config, "format": step.fmt, "command": cmd[1:], **r}) + "\n")
                print(row(step, r), flush=True)
    for path in written.values():
        path.unlink(missing_ok=True)
    return failures


def _result(pp: dict, tg: dict, device: dict, engine_version: str) -> BenchResult:
    """Returns one measured run: a prompt test and the generation test after the same cache depth."""
    config = read_config(pp["config"])
    layers = arch_from_config(config).layers
    spec = BenchSpec(
        engine=Engine.LLAMA_CPP.value,
        model_config=config,
        gguf_format=pp["format"],
        device="cuda:0",
        prompt_tokens=pp["n_prompt"],
        new_tokens=tg["n_gen"],
        repeats=len(tg["samples_ts"]),
        context_depth=pp["n_depth"],
        flash_attn=bool(pp["flash_attn"]),
    )
    prefill, decode = pp["avg_ts"], tg["avg_ts"]
    return BenchResult(
        spec=asdict(spec),
        status="ok",
        message="llama-bench records (bench/data), mean of the repeats",
        model_layers=layers,
        full_layers=layers,
        prefill_tok_s=prefill,
        ttft_s=pp["n_prompt"] / prefill,
        decode_tok_s=decode,
        decode_tok_s_min=min(tg["samples_ts"]),
        decode_tok_s_max=max(tg["samples_ts"]),
        per_token_latency_ms=1000.0 / decode,
        weight_bytes=pp["model_size"],
        full_depth_weight_bytes=pp["model_size"],
        full_depth_decode_tok_s=decode,
        full_depth_prefill_tok_s=prefill,
        full_depth_ttft_s=pp["n_prompt"] / prefill,
        extrapolation="all layers ran: no extrapolation",
        device_name=device["name"],
        cuda_version=device.get("cuda_version"),
        driver_version=device.get("driver_version"),
        host=device.get("host", ""),
        engine=Engine.LLAMA_CPP.value,
        engine_version=engine_version,
        engine_flags={
            "timing": "llama-bench",
            "flash_attn": bool(pp["flash_attn"]),
            "n_batch": pp["n_batch"],
            "n_ubatch": pp["n_ubatch"],
            "n_gpu_layers": pp["n_gpu_layers"],
            "kv_cache": pp["type_k"],
        },
    )


def to_measured(records: list[dict], about: dict) -> dict:
    """Returns the measured-results document (inference/data/measured-*.json) of a sweep's flash-attention runs.

    Each run pairs a prompt test with the generation test at the same model, format and cache depth (pp512 with
    tg128; pp512 @ d4096 with tg128 @ d4096); prompts with no such partner (pp2048) stay in the sweep's file only.
    ``about`` gives the document's date, host, catalog GPU, device record, engine version, command and text.
    """
    tests = {}
    for r in records:
        if r["flash_attn"]:
            kind = "pp" if r["n_prompt"] else "tg"
            tests.setdefault((r["config"], r["format"], r["n_depth"]), {}).setdefault(kind, []).append(r)
    runs = []
    for (config, _fmt, _depth), found in tests.items():
        for pp in found.get("pp", []):
            if pp["n_prompt"] == 512 and found.get("tg"):
                result = _result(pp, found["tg"][0], about["device"], about["engine_version"])
                runs.append(
                    {"command": about["command"], "model": config.removesuffix(".json"), "result": asdict(result)}
                )
    if not runs:
        raise ValueError("no flash-attention pp512 test with a generation test beside it")
    keys = ("about", "date", "host", "catalog_gpu", "device", "copy_gb_s", "matmul_tflops", "datasheet_gb_s", "fold")
    return {**{k: about.get(k) for k in keys}, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run llama-bench over generated GGUFs of catalog models.")
    p.add_argument("--llama-bench", default="llama-bench", help="path of the llama-bench binary")
    p.add_argument("--out", default="", help="JSON-lines file; default $OUT/llama_bench.jsonl or ./llama_bench.jsonl")
    p.add_argument("--cache", default="/tmp/gpufit-gguf", help="folder for the generated files")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=300.0, help="start no new step after this many seconds")
    p.add_argument("--steps", type=int, default=len(PLAN), help="run only the first N steps of the plan")
    p.add_argument(
        "--ship",
        nargs=2,
        metavar=("SWEEP_JSONL", "ABOUT_JSON"),
        help="run nothing: write a sweep's flash-attention runs as inference/data/measured-<host>.json",
    )
    a = p.parse_args(argv)
    if a.ship:
        records = [json.loads(line) for line in Path(a.ship[0]).read_text(encoding="utf-8").splitlines() if line]
        about = json.loads(Path(a.ship[1]).read_text(encoding="utf-8"))
        dest = Path(__file__).resolve().parent.parent / "inference" / "data" / f"measured-{about['host']}.json"
        dest.write_text(json.dumps(to_measured(records, about), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {dest}")
        return 0
    out = Path(a.out or Path(os.environ.get("OUT", ".")) / "llama_bench.jsonl")
    return 1 if run(a.llama_bench, out, Path(a.cache), PLAN[: a.steps], a.repeats, a.budget_s) else 0


if __name__ == "__main__":
    sys.exit(main())
