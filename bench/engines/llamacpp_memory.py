"""The estimator's memory terms checked against llama.cpp's own allocator, on any machine.

For a model config and a GGUF format, a sparse file of the model's architecture (every weight zero, a hole on disk)
is loaded with mmap on the CPU, without CPU repacking, and a context is made at each asked length. llama.cpp logs
the buffers it allocates (weights, KV cache, compute, output); those are compared with the estimator's weights,
KV cache and overhead for the same workload (one sequence, fp16 KV cache, a 512-token micro-batch).

The estimator's overhead has two parts: a fixed 0.5 GB per GPU for the runtime's own context (a CUDA context,
Metal's command buffers), which llama.cpp does not allocate as a buffer and so never logs, and the activation
buffers, which are what llama.cpp's compute and output buffers hold. The comparison therefore sets the activation
part against the compute buffers, and the total without the fixed part against llama.cpp's total; the fixed part
is reported beside it.
"""

from __future__ import annotations

import csv
import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.engines.llamacpp import DEFAULT_CACHE, LoadError, free, load
from bench.gguf_writer import cached_gguf
from physics.arch import ModelArch, arch_from_config
from physics.estimator import GB, OVERHEAD_BASE_GB, Build, GPUSpec, Quant, Workload, estimate

CONTEXTS = (4096, 32768)
MICRO_BATCH = 512  # llama.cpp's default n_ubatch, and the prompt the estimate assumes
# A device large enough for any catalog model: fit does not matter here, only the memory terms.
_ANY_DEVICE = GPUSpec(name="memory check", vendor="other", segment="datacenter", memory_gb=1e6, bandwidth_gb_s=1000.0)


@dataclass(frozen=True)
class MemoryRow:
    """One (model, format, context): the estimator's memory terms beside the buffers llama.cpp allocated."""

    model: str
    fmt: str
    context: int
    est_weights_gb: float
    est_kv_gb: float
    est_activations_gb: float  # the estimator's overhead less its fixed runtime part
    est_fixed_gb: float  # the fixed runtime part (not a llama.cpp buffer)
    cpp_weights_gb: float  # model buffers
    cpp_kv_gb: float  # KV buffers (both caches of a sliding-window model)
    cpp_compute_gb: float  # compute + output buffers
    status: str = "ok"  # "ok" | "error" (then message says why)
    message: str = ""

    @property
    def est_total_gb(self) -> float:
        """Returns the estimate comparable with llama.cpp's buffers: weights + KV + activations."""
        return self.est_weights_gb + self.est_kv_gb + self.est_activations_gb

    @property
    def cpp_total_gb(self) -> float:
        return self.cpp_weights_gb + self.cpp_kv_gb + self.cpp_compute_gb

    def error_pct(self, term: str) -> float | None:
        """Returns (estimate − llama.cpp) / llama.cpp × 100 for "weights", "kv", "compute" or "total"."""
        est, cpp = {
            "weights": (self.est_weights_gb, self.cpp_weights_gb),
            "kv": (self.est_kv_gb, self.cpp_kv_gb),
            "compute": (self.est_activations_gb, self.cpp_compute_gb),
            "total": (self.est_total_gb, self.cpp_total_gb),
        }[term]
        if self.status != "ok" or not cpp:
            return None
        return (est - cpp) / cpp * 100

    def to_dict(self) -> dict:
        """Returns the row as a JSON-ready dict, with totals and errors."""
        data = asdict(self)
        data.update(est_total_gb=self.est_total_gb, cpp_total_gb=self.cpp_total_gb)
        for term in ("weights", "kv", "compute", "total"):
            data[f"err_{term}_pct"] = self.error_pct(term)
        return data


def estimated_terms(arch: ModelArch, fmt: str, context: int) -> tuple[float, float, float, float]:
    """Returns the estimator's (weights, KV, activations, fixed) GB for one sequence at context on one device."""
    quant = Quant(name=fmt, bits_per_weight=16.0 if fmt in ("F16", "BF16") else 4.5, kind="gguf")
    work = Workload(context=context, prompt_tokens=MICRO_BATCH, batch=1, kv_cache="fp16", backend="llama.cpp")
    est = estimate(arch, quant, Build(gpu=_ANY_DEVICE), work)
    return est.weights_gb, est.kv_cache_gb, est.overhead_gb - OVERHEAD_BASE_GB, OVERHEAD_BASE_GB


def compare_memory(
    name: str,
    config: dict,
    fmt: str = "Q4_K_M",
    contexts: Iterable[int] = CONTEXTS,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
    simulate: bool = True,
) -> list[MemoryRow]:
    """Returns one MemoryRow per context for a model config (a sparse GGUF loaded by llama.cpp on the CPU).

    Contexts longer than the model's own are cut to it. A model llama.cpp refuses gives rows with status "error".
    """
    arch = arch_from_config(config, name=name)
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    lengths = sorted({min(c, arch.context_length) for c in contexts})
    written = cached_gguf(cache, config, fmt, sparse=True, label=name, progress=progress)
    rows = []
    for n_ctx in lengths:
        w, kv, act, fixed = estimated_terms(arch, fmt, n_ctx)
        loaded = None
        try:
            loaded = load(
                written.path, n_ctx, gpu=None, flash_attn=True, repack=False, n_ubatch=MICRO_BATCH, simulate=simulate
            )
            b = loaded.buffers
            rows.append(
                MemoryRow(name, fmt, n_ctx, w, kv, act, fixed, b.model / GB, b.kv / GB, (b.compute + b.output) / GB)
            )
        except LoadError as exc:
            rows.append(MemoryRow(name, fmt, n_ctx, w, kv, act, fixed, 0.0, 0.0, 0.0, "error", str(exc)[:500]))
        finally:
            free(loaded)
    return rows


# --- the table ----------------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "model",
    "fmt",
    "context",
    "status",
    "est_weights_gb",
    "cpp_weights_gb",
    "err_weights_pct",
    "est_kv_gb",
    "cpp_kv_gb",
    "err_kv_pct",
    "est_activations_gb",
    "cpp_compute_gb",
    "err_compute_pct",
    "est_total_gb",
    "cpp_total_gb",
    "err_total_pct",
    "est_fixed_gb",
    "message",
)


def write_csv(rows: Iterable[MemoryRow], path: str | os.PathLike) -> None:
    """Writes the rows as CSV (GB to 4 decimals, errors to 2) with CSV_COLUMNS as the header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(CSV_COLUMNS)
        for row in rows:
            data = row.to_dict()
            out.writerow([_cell(name, data[name]) for name in CSV_COLUMNS])


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Returns the rows of a table written by write_csv, numbers as floats (None where empty)."""
    with Path(path).open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key, value in row.items():
            if key not in ("model", "fmt", "status", "message"):
                row[key] = float(value) if value not in ("", None) else None
        row["context"] = int(row["context"])
    return rows


def _cell(name: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}" if name.startswith("err_") else f"{value:.4f}"
    return str(value)


def summary(rows: Iterable[MemoryRow]) -> dict[str, dict[str, float]]:
    """Returns, per term (weights, kv, compute, total), the rows compared and the max and median |error| in %."""
    ok = [r for r in rows if r.status == "ok"]
    out = {}
    for term in ("weights", "kv", "compute", "total"):
        errors = [abs(e) for r in ok if (e := r.error_pct(term)) is not None]
        out[term] = {
            "rows": len(errors),
            "max_abs_pct": max(errors, default=0.0),
            "median_abs_pct": statistics.median(errors) if errors else 0.0,
        }
    out["models"] = {"count": len({r.model for r in ok})}
    return out


def markdown_table(rows: Iterable[MemoryRow]) -> str:
    """Returns the rows as a markdown table (GB, and the estimate's error against llama.cpp in %)."""
    head = (
        "| model | format | context | weights est / llama.cpp GB | err | KV est / llama.cpp GB | err "
        "| activations est / compute GB | err | total est / llama.cpp GB | err |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        if r.status != "ok":
            lines.append(f"| {r.model} | {r.fmt} | {r.context} | {r.message} |||||||")
            continue
        cells = [r.model, r.fmt, f"{r.context:,}"]
        for term, est, cpp in (
            ("weights", r.est_weights_gb, r.cpp_weights_gb),
            ("kv", r.est_kv_gb, r.cpp_kv_gb),
            ("compute", r.est_activations_gb, r.cpp_compute_gb),
            ("total", r.est_total_gb, r.cpp_total_gb),
        ):
            cells += [f"{est:.3f} / {cpp:.3f}", f"{r.error_pct(term):+.1f} %"]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
