"""The llama.cpp engine, through llama-cpp-python's C API: timed like llama-bench, memory read from llama.cpp itself.

A run loads a GGUF (a random-weight file of the model's architecture written by bench.gguf_writer, cached per
model and format, or an operator's real file), puts every layer on the device, and times like llama-bench:

* the context is filled to ``context_depth`` tokens first (llama-bench ``-d``), untimed;
* an untimed warm-up runs one prompt batch and one generated token;
* each repeat removes everything past the depth from the KV cache, then times the prompt (pp: ``prompt_tokens`` in
  batches of 2048, micro-batches of 512) and, apart, generation (tg: ``new_tokens`` single-token steps);
* figures are medians over repeats, the spread is min–max, and every step of tg is timed for the latency p90.

Random token ids are fed, as llama-bench does; the tokenizer plays no part in the cost of a step. Peak memory is
the process RSS high-water mark over the run on the CPU (reset before loading where Linux allows it), and the sum
of the device buffers llama.cpp reports (weights, KV cache, compute) on a GPU. Achieved bandwidth is the weight
bytes one decode step reads (physics.gguf: the output head, attention, norms, router and the experts a token
visits) times the generation rate. Rates are llama-bench's: tokens over the time of a repeat, median of repeats.

Out of memory, a missing package, a build without the asked backend and an architecture without a GGUF layout are
results (status "oom" or "error") with a message, never exceptions.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import resource
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import gguf
import numpy as np

from bench.devices import cpu_name
from bench.engines.base import EngineInfo, Progress, failed
from bench.gguf_writer import cache_usage, cached_gguf, clear_cache
from physics.arch import ModelArch, arch_from_config, kv_cache_bytes
from physics.gguf import GGUFLayout, GGUFTensor, UnsupportedModel, layout
from physics.presets import PRESETS
from physics.runs import GGUF_FORMATS, BenchResult, BenchSpec
from physics.vocab import Engine as EngineName

INSTALL_HINT = (
    "Install it with `pip install llama-cpp-python==0.3.36` (it builds llama.cpp from source: about 7 minutes on "
    '2 cores; on a GPU host set CMAKE_ARGS="-DGGML_CUDA=on" first, see the README)'
)

try:  # an optional engine: a worker without it still lists it, as unavailable, with the install command
    import llama_cpp
except (ImportError, OSError) as exc:  # OSError: the package is there but its shared library does not load
    llama_cpp = None
    _IMPORT_ERROR = str(exc)
else:
    _IMPORT_ERROR = ""


def missing_message() -> str:
    """Returns why the engine cannot run here and how to install it."""
    why = f" ({_IMPORT_ERROR})" if _IMPORT_ERROR else ""
    return f"llama.cpp is not available on this worker: llama-cpp-python is not installed or does not load{why}. {INSTALL_HINT}"


N_BATCH = 2048  # llama-bench's default logical batch
N_UBATCH = 512  # and physical micro-batch
DEFAULT_CACHE = Path(os.environ.get("GPUFIT_GGUF_CACHE", Path.home() / ".cache" / "gpufit" / "gguf"))
_MIB = 1 << 20
_BUFFER_LINE = re.compile(
    r"(?P<where>[\w.-]+)\s+(?P<kind>model|KV|compute|output|RS)\s+buffer size\s*=\s*(?P<mib>[\d.]+) MiB"
)
# "llama_kv_cache: size = 512.00 MiB (4096 cells, 32 layers, 1/1 seqs), K (f16): …": the cache's tensors, also
# when allocation is only simulated (no_alloc), where the buffer lines say 0.
_KV_SIZE_LINE = re.compile(r"llama_kv_cache: size =\s*(?P<mib>[\d.]+) MiB")


# --- llama.cpp's log ----------------------------------------------------------------------------------------------


class _LogSink:
    """Collects llama.cpp's log lines while ``capture()`` is active; drops them otherwise (no stderr noise)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] | None = None
        self._partial = ""
        self._installed = False
        # Kept on the instance: ctypes calls back through this object for the life of the process.
        self._callback = llama_cpp.llama_log_callback(self._on_log) if llama_cpp else None

    def _on_log(self, level: int, text: bytes, user_data) -> None:
        del level, user_data
        with self._lock:
            if self._lines is None:
                return
            self._partial += (text or b"").decode("utf-8", "replace")
            *done, self._partial = self._partial.split("\n")
            self._lines.extend(done)

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[str]]:
        """Yields the list that llama.cpp's log lines are appended to until the block ends."""
        if not self._installed:
            llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))
            self._installed = True
        lines: list[str] = []
        with self._lock:
            self._lines, self._partial = lines, ""
        try:
            yield lines
        finally:
            with self._lock:
                if self._partial:
                    lines.append(self._partial)
                self._lines, self._partial = None, ""


_LOG = _LogSink()


@dataclass(frozen=True)
class Buffers:
    """The buffers llama.cpp says it allocated, in bytes, summed over devices (MiB figures from its log)."""

    model: int = 0  # weights (CPU_Mapped, CPU, CUDA0… model buffers)
    kv: int = 0  # KV cache (both caches of a sliding-window model)
    compute: int = 0  # the scheduler's compute buffers
    output: int = 0  # logits and embeddings output buffer
    by_device: dict = field(default_factory=dict)  # {"CUDA0 model": bytes, …}

    @property
    def total(self) -> int:
        return self.model + self.kv + self.compute + self.output

    def on(self, prefix: str) -> int:
        """Returns the bytes of every buffer whose device name starts with prefix ("CUDA", "Metal", "CPU")."""
        return sum(v for k, v in self.by_device.items() if k.startswith(prefix))


def parse_buffers(lines: list[str]) -> Buffers:
    """Returns the buffer sizes in llama.cpp log lines ("CPU_Mapped model buffer size = 4685.30 MiB", …)."""
    sums = {"model": 0, "KV": 0, "compute": 0, "output": 0, "RS": 0}
    by_device: dict[str, int] = {}
    for line in lines:
        m = _BUFFER_LINE.search(line)
        if not m:
            continue
        size = round(float(m["mib"]) * _MIB)
        sums[m["kind"]] += size
        key = f"{m['where']} {m['kind']}"
        by_device[key] = by_device.get(key, 0) + size
    kv = sums["KV"] + sums["RS"]
    if not kv:  # simulated allocation: the buffers are empty, the cache's own size line is not
        kv = sum(round(float(m["mib"]) * _MIB) for line in lines if (m := _KV_SIZE_LINE.search(line)))
    return Buffers(model=sums["model"], kv=kv, compute=sums["compute"], output=sums["output"], by_device=by_device)


# --- engine facts -------------------------------------------------------------------------------------------------


def system_info() -> str:
    """Returns llama.cpp's system line (backends and CPU features it was built with), or "" without llama.cpp."""
    if llama_cpp is None:
        return ""
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def backends(info: str) -> tuple[str, ...]:
    """Returns the backends a llama.cpp system line names (cpu always; cuda, metal, rocm, vulkan when built in)."""
    found = ["cpu"]
    for key, name in (("CUDA", "cuda"), ("METAL", "metal"), ("HIP", "rocm"), ("ROCM", "rocm"), ("VULKAN", "vulkan")):
        if key in info.upper() and name not in found:
            found.append(name)
    return tuple(found)


def engine_version() -> str:
    """Returns llama-cpp-python's version and the llama.cpp it bundles, as one string."""
    if llama_cpp is None:
        return ""
    return f"llama-cpp-python {llama_cpp.__version__} (bundled llama.cpp)"


# --- loading ------------------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    """A model and one context on it, with what llama.cpp logged while making them."""

    model: object
    ctx: object
    n_ctx: int
    vocab: int
    buffers: Buffers
    log: list[str]
    load_s: float


class LoadError(RuntimeError):
    """llama.cpp refused a model or a context; ``oom`` says whether it was for want of memory."""

    def __init__(self, message: str, oom: bool) -> None:
        super().__init__(message)
        self.oom = oom


def _is_oom_log(lines: list[str]) -> bool:
    text = "\n".join(lines).lower()
    return any(
        key in text for key in ("out of memory", "failed to allocate", "unable to allocate", "cudamalloc failed")
    )


def load(
    path: str | os.PathLike,
    n_ctx: int,
    *,
    gpu: int | None = None,
    threads: int | None = None,
    flash_attn: bool = True,
    repack: bool = True,
    n_batch: int = N_BATCH,
    n_ubatch: int = N_UBATCH,
    simulate: bool = False,
    swa_full: bool = False,
) -> _Loaded:
    """Returns the model at path loaded with mmap and a context of n_ctx tokens; raises LoadError with llama.cpp's log.

    gpu: device index to hold every layer, or None for the CPU. repack=False keeps llama.cpp from copying weights
    into its CPU-repacked layout (a second buffer), as the memory comparison needs. simulate=True is llama.cpp's
    memory-fit pass (no_alloc): nothing is read or allocated, every buffer is sized by the same allocator code,
    and the weights are llama_model_size. (A real mmap load pre-faults the whole file, MAP_POPULATE, which for a
    sparse file of a large model costs minutes of zero-filling.) swa_full=False gives sliding-window layers a
    window-sized cache, as llama-server and llama-cli do by default (the C API's default is the full context).
    """
    with _LOG.capture() as log:
        t0 = time.perf_counter()
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = 0 if gpu is None else 0x7FFFFFFF  # all layers
        mp.main_gpu = gpu or 0
        mp.split_mode = llama_cpp.LLAMA_SPLIT_MODE_NONE
        mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE if simulate else llama_cpp.LLAMA_LOAD_MODE_MMAP
        mp.no_alloc = simulate
        mp.use_extra_bufts = repack
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
        if not model:
            raise LoadError(_log_tail(log, "llama.cpp could not load the model"), _is_oom_log(log))
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = min(n_batch, n_ctx)
        cp.n_ubatch = min(n_ubatch, cp.n_batch)
        cp.n_seq_max = 1
        cp.n_threads = cp.n_threads_batch = threads or os.cpu_count() or 1
        cp.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        cp.no_perf = True
        cp.swa_full = swa_full
        ctx = llama_cpp.llama_init_from_model(model, cp)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise LoadError(_log_tail(log, "llama.cpp could not create the context"), _is_oom_log(log))
        vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        load_s = time.perf_counter() - t0
    buffers = parse_buffers(log)
    if simulate:  # a simulated allocation holds no weights: take the size of the model's tensors
        buffers = replace(buffers, model=int(llama_cpp.llama_model_size(model)))
    return _Loaded(model, ctx, llama_cpp.llama_n_ctx(ctx), vocab, buffers, list(log), load_s)


def free(loaded: _Loaded | None) -> None:
    """Releases a loaded model and its context (None: nothing to release)."""
    if loaded is None:
        return
    with _LOG.capture():
        llama_cpp.llama_free(loaded.ctx)
        llama_cpp.llama_model_free(loaded.model)


def _log_tail(lines: list[str], head: str) -> str:
    """Returns head and the last meaningful lines llama.cpp logged (its reason is usually there)."""
    useful = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith(("llama_model_loader: - kv", "."))]
    return head + (": " + " | ".join(useful[-6:]) if useful else "")


# --- the timed run ------------------------------------------------------------------------------------------------


def _decode(ctx, tokens: np.ndarray) -> None:
    """Decodes tokens after what the KV cache holds, in llama-bench's batches, and waits for the device."""
    for start in range(0, len(tokens), N_BATCH):
        piece = np.ascontiguousarray(tokens[start : start + N_BATCH], dtype=np.int32)
        arr = piece.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token))
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(piece)))
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} (1: no KV-cache slot for the batch; <0: error)")
    llama_cpp.llama_synchronize(ctx)


def _truncate(ctx, keep: int) -> None:
    """Drops every cached position from keep on, so that the next decode continues at position keep."""
    mem = llama_cpp.llama_get_memory(ctx)
    if keep == 0:
        llama_cpp.llama_memory_clear(mem, False)
    else:
        llama_cpp.llama_memory_seq_rm(mem, 0, keep, -1)


def _argmax_last(ctx, vocab: int) -> int:
    logits = llama_cpp.llama_get_logits_ith(ctx, -1)
    return int(np.ctypeslib.as_array(logits, shape=(vocab,)).argmax())


@dataclass
class _Timings:
    pp_s: list[float] = field(default_factory=list)  # per repeat: the prompt
    ttft_s: list[float] = field(default_factory=list)  # per repeat: the prompt and choosing the first token
    tg_s: list[float] = field(default_factory=list)  # per repeat: all generated tokens
    step_s: list[float] = field(default_factory=list)  # every generation step of every repeat
    warmup_s: float = 0.0
    depth_s: float = 0.0


def _time(spec: BenchSpec, loaded: _Loaded, report: Progress) -> _Timings:
    """Returns llama-bench-style timings of spec on a loaded model."""
    rng = np.random.default_rng(spec.seed)
    vocab = loaded.vocab
    t = _Timings()
    ctx = loaded.ctx
    _truncate(ctx, 0)
    if spec.context_depth:
        report(15.0, f"filling the context to depth {spec.context_depth} (untimed)")
        td = time.perf_counter()
        _decode(ctx, rng.integers(0, vocab, spec.context_depth))
        t.depth_s = time.perf_counter() - td
    tw = time.perf_counter()
    _decode(ctx, rng.integers(0, vocab, min(spec.prompt_tokens, N_UBATCH)))  # warm-up: one micro-batch…
    _truncate(ctx, spec.context_depth)
    _decode(ctx, rng.integers(0, vocab, 1))  # …and one generated token
    t.warmup_s = time.perf_counter() - tw
    prompt = rng.integers(0, vocab, spec.prompt_tokens)
    gen = rng.integers(0, vocab, spec.new_tokens)
    for r in range(spec.repeats):
        report(20.0 + 75.0 * r / spec.repeats, f"repeat {r + 1}/{spec.repeats}: pp{spec.prompt_tokens}")
        _truncate(ctx, spec.context_depth)
        ta = time.perf_counter()
        _decode(ctx, prompt)
        tb = time.perf_counter()
        _argmax_last(ctx, vocab)
        t.pp_s.append(tb - ta)
        t.ttft_s.append(time.perf_counter() - ta)
        report(20.0 + 75.0 * (r + 0.5) / spec.repeats, f"repeat {r + 1}/{spec.repeats}: tg{spec.new_tokens}")
        _truncate(ctx, spec.context_depth)
        tg0 = time.perf_counter()
        for tok in gen:
            ts = time.perf_counter()
            _decode(ctx, np.array([tok]))
            t.step_s.append(time.perf_counter() - ts)
        t.tg_s.append(time.perf_counter() - tg0)
    return t


# --- peak memory --------------------------------------------------------------------------------------------------


def _reset_peak_rss() -> bool:
    """Returns True when Linux reset this process's RSS high-water mark (writing 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    """Returns the RSS high-water mark: VmHWM from /proc/self/status, else getrusage (KiB on Linux)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- the engine ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    """What a spec runs: the file, its layout (bytes per tensor), and the architecture when it is known."""

    path: Path
    layout: GGUFLayout
    arch: ModelArch | None
    full_layout: GGUFLayout | None  # the full-depth layout when the spec runs fewer layers
    source: str  # "generated random-weight file" | "operator's file"


def _model_config(spec: BenchSpec) -> dict:
    """Returns the config.json dict a spec runs (the preset's when it names none), cut to spec.layers."""
    config = dict(spec.model_config) if spec.model_config is not None else dict(PRESETS[spec.preset].config)
    if spec.layers:
        text = config.get("text_config")
        if isinstance(text, dict):
            config["text_config"] = {**text, "num_hidden_layers": spec.layers}
        else:
            config["num_hidden_layers"] = spec.layers
    return config


def layout_of_file(path: str | os.PathLike) -> tuple[GGUFLayout, int]:
    """Returns the layout of an existing GGUF (tensors, types, bytes) and its experts-per-token (0 when dense)."""
    reader = gguf.GGUFReader(path)
    arch_field = reader.fields.get("general.architecture")
    arch = bytes(arch_field.parts[arch_field.data[0]]).decode() if arch_field else ""
    used = reader.fields.get(f"{arch}.expert_used_count")
    top_k = int(used.parts[used.data[0]][0]) if used else 0
    tensors, types, sizes = [], [], []
    for t in reader.tensors:
        shape = tuple(int(d) for d in t.shape)  # ggml order
        name = t.name
        layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
        experts = shape[2] if "_exps" in name and len(shape) == 3 else 0
        tensors.append(GGUFTensor(name, shape, layer=layer, float32=t.tensor_type.name == "F32", experts=experts))
        types.append(t.tensor_type.name)
        sizes.append(int(t.n_bytes))
    lay = GGUFLayout(arch, "file", tuple(tensors), tuple(types), tuple(sizes), experts_per_token=top_k)
    return lay, top_k


class LlamaCppEngine:
    """Runs a BenchSpec on llama.cpp: a generated random-weight GGUF of the model, or an operator's file."""

    name = EngineName.LLAMA_CPP.value

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE  # the worker may set its own folder

    def cache_usage(self) -> tuple[int, int]:
        """Returns (generated GGUF files, bytes on disk) in this engine's cache folder."""
        return cache_usage(self.cache_dir)

    def clear_cache(self) -> tuple[int, int]:
        """Returns (files removed, bytes freed) after emptying this engine's cache folder."""
        return clear_cache(self.cache_dir)

    def info(self) -> EngineInfo:
        """Returns llama-cpp-python's version and backends; available=False with the reason when it is missing."""
        if llama_cpp is None:
            return EngineInfo(name=self.name, available=False, reason=missing_message())
        try:
            sysinfo = system_info()
            flags = {
                "system_info": sysinfo,
                "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
                "mmap": bool(llama_cpp.llama_supports_mmap()),
                "max_devices": int(llama_cpp.llama_max_devices()),
            }
            return EngineInfo(
                name=self.name, available=True, version=engine_version(), backends=backends(sysinfo), flags=flags
            )
        except Exception as exc:  # a broken build must not stop the worker from listing its engines
            return EngineInfo(name=self.name, available=False, reason=f"llama.cpp failed to report itself: {exc}")

    def run(self, spec: BenchSpec, progress: Progress | None = None) -> BenchResult:
        """Returns the result of spec; OOM, a missing engine or an unsupported model is a result with a message."""
        report = progress or (lambda _pct, _msg: None)
        if llama_cpp is None:
            return failed(spec, self.name, missing_message())
        if spec.engine != self.name:
            return failed(spec, self.name, f"spec names engine {spec.engine!r}, not {self.name!r}")
        try:
            spec.validate()
        except ValueError as exc:
            return failed(spec, self.name, f"invalid spec: {exc}")
        gpu = (
            int(spec.device.split(":")[1])
            if spec.device.startswith("cuda:")
            else (0 if spec.device == "cuda" else None)
        )
        env = self._env(spec, gpu)
        if gpu is not None and not llama_cpp.llama_supports_gpu_offload():
            return failed(
                spec,
                self.name,
                "this llama.cpp build has no GPU backend; rebuild it with "
                'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-binary llama-cpp-python '
                "llama-cpp-python==0.3.36",
                **env,
            )
        loaded = None
        try:
            report(0.0, "preparing the GGUF")
            model = self._model(spec, report)
            if refusal := self._over_limit(spec, model):
                return failed(spec, self.name, refusal, status="oom", **env)
            n_ctx = _round_up(spec.context_depth + max(spec.prompt_tokens, spec.new_tokens) + 1, 256)
            report(10.0, f"loading {model.path.name} with n_ctx {n_ctx}")
            reset = _reset_peak_rss()
            loaded = load(model.path, n_ctx, gpu=gpu, threads=spec.threads, flash_attn=spec.flash_attn)
            timings = _time(spec, loaded, report)
            figures = self._figures(spec, model, loaded, timings, gpu, reset)
            report(100.0, "done")
            return BenchResult(spec=asdict(spec), status="ok", engine=self.name, **{**env, **figures})
        except LoadError as exc:
            return failed(spec, self.name, str(exc), status="oom" if exc.oom else "error", **env)
        except (UnsupportedModel, OSError, ValueError, KeyError) as exc:
            return failed(spec, self.name, f"{type(exc).__name__}: {exc}", **env)
        except Exception as exc:  # the worker must get a result, whatever llama.cpp did
            status = "oom" if "out of memory" in str(exc).lower() else "error"
            return failed(spec, self.name, "".join(traceback.format_exception_only(exc)).strip(), status=status, **env)
        finally:
            free(loaded)

    def _env(self, spec: BenchSpec, gpu: int | None) -> dict:
        """Returns the result fields that describe the engine and the device (also on a failed run)."""
        flags = {
            "flash_attn": spec.flash_attn,
            "threads": spec.threads or os.cpu_count(),
            "n_batch": N_BATCH,
            "n_ubatch": N_UBATCH,
            "n_gpu_layers": "all" if gpu is not None else 0,
            "context_depth": spec.context_depth,
            "mmap": True,
            "cpu_repack": gpu is None,
            "system_info": system_info(),
        }
        return {
            "engine_version": engine_version(),
            "engine_flags": flags,
            "device_name": cpu_name() if gpu is None else f"GPU {gpu} (llama.cpp)",
        }

    def _model(self, spec: BenchSpec, report: Progress) -> _Model:
        """Returns the file spec runs: the operator's GGUF, or the cached random-weight file (written if missing)."""
        if spec.gguf_path:
            path = Path(spec.gguf_path)
            if not path.is_file():
                raise OSError(f"gguf_path {path} is not a file on this worker")
            lay, _ = layout_of_file(path)
            arch = arch_from_config(spec.model_config) if spec.model_config else None
            return _Model(path, lay, arch, None, "operator's file")
        config = _model_config(spec)
        arch = arch_from_config(config, name=spec.preset)
        written = cached_gguf(
            self.cache_dir,
            config,
            spec.gguf_format,
            label=str(config.get("_name_or_path") or spec.preset).split("/")[-1],
            seed=spec.seed,
            progress=lambda msg: report(5.0, msg),
        )
        full = None
        if spec.layers:
            full_config = (
                dict(spec.model_config) if spec.model_config is not None else dict(PRESETS[spec.preset].config)
            )
            full = layout(arch_from_config(full_config), spec.gguf_format)
        return _Model(written.path, written.layout, arch, full, "generated random-weight file")

    def _over_limit(self, spec: BenchSpec, model: _Model) -> str:
        """Returns why spec is refused under memory_limit_gb ("" when it fits or no limit is set)."""
        if spec.memory_limit_gb is None:
            return ""
        kv = kv_cache_bytes(model.arch, spec.context_depth + spec.prompt_tokens + spec.new_tokens) if model.arch else 0
        need = model.layout.weight_bytes + kv
        if need / 1e9 <= spec.memory_limit_gb:
            return ""
        return (
            f"out of memory: weights {model.layout.weight_bytes / 1e9:.2f} GB + KV cache {kv / 1e9:.2f} GB "
            f"exceed memory_limit_gb={spec.memory_limit_gb}"
        )

    def _figures(self, spec: BenchSpec, model: _Model, loaded: _Loaded, t: _Timings, gpu, reset: bool) -> dict:
        """Returns the result fields derived from the timings, the layout and llama.cpp's buffers."""
        step_s = statistics.median(t.step_s)
        ttft_s = statistics.median(t.ttft_s)
        tg_rates = [spec.new_tokens / s for s in t.tg_s]
        active = model.layout.step_bytes()
        kv_read = None
        if model.arch is not None:  # the cache a step attends over, on average over the timed tokens
            kv_read = kv_cache_bytes(model.arch, spec.context_depth + (spec.new_tokens + 1) // 2)
        if gpu is None:
            peak = _peak_rss_bytes()
            source = "process RSS high-water mark (VmHWM) " + (
                "since just before loading" if reset else "over the whole process (could not reset it)"
            )
        else:
            peak = sum(v for k, v in loaded.buffers.by_device.items() if not k.startswith("CPU"))
            source = "llama.cpp's device buffers as it reported them: weights + KV cache + compute"
        layers = model.arch.layers if model.arch else None
        full_layers = layers
        ratio_decode = ratio_prefill = 1.0
        how = "all layers ran: no extrapolation"
        if model.full_layout is not None and model.arch is not None:
            full_layers = len({tt.layer for tt in model.full_layout.tensors if tt.layer >= 0})
            ratio_decode = model.full_layout.step_bytes() / active
            ratio_prefill = model.full_layout.weight_bytes / model.layout.weight_bytes
            how = (
                f"{layers} of {full_layers} layers ran; decode scaled by bytes per step (x{ratio_decode:.2f}, same "
                f"achieved bandwidth), prefill by weight bytes (x{ratio_prefill:.2f})"
            )
        # Like llama-bench: a repeat's rate is its tokens over its time; the figure is the median repeat.
        decode_tok_s = statistics.median(tg_rates)
        prefill_tok_s = statistics.median(spec.prompt_tokens / s for s in t.pp_s)
        spread = (max(tg_rates) - min(tg_rates)) / statistics.median(tg_rates) * 100 if len(tg_rates) > 1 else 0.0
        flags = {
            "n_ctx": loaded.n_ctx,
            "gguf": str(model.path),
            "gguf_source": model.source,
            "gguf_types": {k: round(v / 1e9, 3) for k, v in model.layout.by_type().items()},
            "llama_cpp_buffers_mib": {k: round(v / _MIB, 2) for k, v in loaded.buffers.by_device.items()},
            "tg_spread_pct": round(spread, 2),
            "depth_fill_s": t.depth_s,
            "decode_tok_s_repeats": tg_rates,
            "prefill_tok_s_repeats": [spec.prompt_tokens / s for s in t.pp_s],
        }
        return {
            "message": f"pp{spec.prompt_tokens} / tg{spec.new_tokens} at depth {spec.context_depth}, "
            f"median of {spec.repeats}; tg spread {spread:.1f} % (min–max over median)",
            "model_layers": layers,
            "full_layers": full_layers,
            "prefill_tok_s": prefill_tok_s,
            "ttft_s": ttft_s,
            "decode_tok_s": decode_tok_s,
            "decode_tok_s_min": min(tg_rates),
            "decode_tok_s_max": max(tg_rates),
            "per_token_latency_ms": step_s * 1e3,
            "per_token_latency_p90_ms": statistics.quantiles(t.step_s, n=10)[-1] * 1e3
            if len(t.step_s) > 1
            else step_s * 1e3,
            "peak_memory_gb": peak / 1e9,
            "peak_memory_source": source,
            "weight_bytes": model.layout.weight_bytes,
            "active_bytes_per_token": round(active),
            "kv_bytes_per_token": kv_read,
            "experts_touched_per_layer": float(model.layout.experts_per_token)
            if model.layout.experts_per_token
            else None,
            "achieved_gb_s": active * decode_tok_s / 1e9,
            "full_depth_weight_bytes": model.full_layout.weight_bytes
            if model.full_layout
            else model.layout.weight_bytes,
            "full_depth_decode_tok_s": decode_tok_s / ratio_decode,
            "full_depth_prefill_tok_s": prefill_tok_s / ratio_prefill,
            "full_depth_ttft_s": ttft_s * ratio_prefill,
            "extrapolation": how,
            "materialise_s": loaded.load_s,
            "warmup_s": t.warmup_s,
            "engine_flags": {**self._env(spec, gpu)["engine_flags"], **flags},
        }


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def main(argv: list[str] | None = None) -> int:
    """Runs one llama.cpp benchmark from the command line; returns the exit status (0 ok, 2 oom, 1 error)."""
    p = argparse.ArgumentParser(description="Time llama.cpp like llama-bench on a generated GGUF or a local file.")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model shapes when --config is not given")
    p.add_argument("--config", default="", help="a config.json of the model to generate (default: the preset's)")
    p.add_argument("--gguf", default="", help="run this local GGUF instead of a generated one")
    p.add_argument("--format", default="Q4_K_M", choices=GGUF_FORMATS)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--depth", type=int, default=0, help="tokens in the KV cache before timing (llama-bench -d)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-flash-attn", action="store_true")
    p.add_argument("--cache", default="", help=f"folder for generated files (default {DEFAULT_CACHE})")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    a = p.parse_args(argv)
    config = json.loads(Path(a.config).read_text(encoding="utf-8")) if a.config else None
    spec = BenchSpec(
        preset=a.preset,
        engine=EngineName.LLAMA_CPP.value,
        model_config=config,
        gguf_format="" if a.gguf else a.format,
        gguf_path=a.gguf,
        layers=a.layers,
        device=a.device,
        prompt_tokens=a.prompt_tokens,
        new_tokens=a.new_tokens,
        context_depth=a.depth,
        repeats=a.repeats,
        threads=a.threads,
        flash_attn=not a.no_flash_attn,
    )
    progress = None if a.json else (lambda pct, msg: print(f"[{pct:5.1f}%] {msg}", file=sys.stderr))
    result = LlamaCppEngine(a.cache or None).run(spec, progress)
    if a.json:
        print(json.dumps(result.to_dict(), indent=1))
    elif result.status != "ok":
        print(f"{result.status.upper()}: {result.message}")
    else:
        print(
            f"pp{a.prompt_tokens} {result.prefill_tok_s:.1f} tok/s, tg{a.new_tokens} {result.decode_tok_s:.2f} tok/s "
            f"[{result.decode_tok_s_min:.2f}-{result.decode_tok_s_max:.2f}] at depth {a.depth}, TTFT "
            f"{result.ttft_s * 1e3:.1f} ms, peak {result.peak_memory_gb:.2f} GB, {result.achieved_gb_s:.2f} GB/s on "
            f"{result.active_bytes_per_token / 1e6:.1f} MB per step ({result.engine_version}, "
            f"{result.engine_flags['threads']} threads, flash attention {'on' if spec.flash_attn else 'off'})"
        )
    return {"ok": 0, "oom": 2}.get(result.status, 1)


if __name__ == "__main__":
    sys.exit(main())
