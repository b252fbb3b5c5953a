"""Detects the devices of this host: NVIDIA GPUs through NVML (or torch), and always the CPU.

torch is imported only inside functions, so a web process can call detect_devices() without paying for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "cuda" or "cpu"
    index: int  # CUDA ordinal; 0 for the CPU
    name: str  # as the driver (or /proc/cpuinfo) names it
    memory_gb: float  # device memory (GPU) or system RAM (CPU), 10^9 bytes
    bandwidth_gb_s: float | None  # theoretical from bus width and clock (GPU), or measured copy bandwidth (CPU)
    bandwidth_source: str  # how bandwidth_gb_s was obtained
    bus_width_bits: int | None = None
    max_memory_clock_mhz: int | None = None
    cores: int | None = None  # CPU cores (physical when known)
    driver_version: str | None = None
    cuda_version: str | None = None
    detected_by: str = ""  # "nvml", "torch" or "psutil"

    @property
    def torch_device(self) -> str:
        """Returns the torch device string ("cuda:0", "cpu")."""
        return f"cuda:{self.index}" if self.kind == "cuda" else "cpu"

    def to_dict(self) -> dict:
        """Returns the fields as a JSON-ready dict."""
        return asdict(self) | {"torch_device": self.torch_device}


def memory_data_rate(name: str) -> tuple[int, str]:
    """Returns (transfers per NVML memory clock, memory type guessed from the name).

    NVML reports the memory clock such that HBM and GDDR6 move 2 bits per pin per reported cycle (DDR). GDDR6X
    (PAM4) and GDDR7 (PAM3) also report a clock that gives the datasheet rate with 2 on the cards checked
    (RTX 3090: 384 bit x 9751 MHz x 2 / 8 = 936 GB/s), so 2 is used for all; the type is reported for context.
    """
    n = name.upper()
    for marker, kind in (("H100", "HBM3"), ("H200", "HBM3e"), ("A100", "HBM2e"), ("B200", "HBM3e"), ("MI3", "HBM3")):
        if marker in n:
            return 2, kind
    if re.search(r"RTX 50\d0", n):
        return 2, "GDDR7"
    if re.search(r"RTX 30[89]0|RTX 40[89]0|RTX 4070 TI", n):
        return 2, "GDDR6X"
    return 2, "GDDR6 or other DDR"


def theoretical_bandwidth_gb_s(bus_width_bits: int, memory_clock_mhz: int, data_rate: int = 2) -> float:
    """Returns bus bits / 8 x clock x data rate, in GB/s (10^9 bytes per second)."""
    return bus_width_bits / 8 * memory_clock_mhz * 1e6 * data_rate / 1e9


def _nvml_devices() -> list[DeviceInfo]:
    import pynvml

    pynvml.nvmlInit()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}"
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = _text(pynvml.nvmlDeviceGetName(h))
            mem = pynvml.nvmlDeviceGetMemoryInfo(h).total / 1e9
            bus = clock = bw = None
            source = "unknown"
            try:
                bus = int(pynvml.nvmlDeviceGetMemoryBusWidth(h))
                clock = int(pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM))
                rate, mem_type = memory_data_rate(name)
                bw = theoretical_bandwidth_gb_s(bus, clock, rate)
                source = f"nvml: {bus} bit x {clock} MHz x {rate} ({mem_type})"
            except pynvml.NVMLError as exc:
                source = f"nvml could not read bus width or memory clock: {exc}"
            out.append(
                DeviceInfo("cuda", i, name, round(mem, 2), bw, source, bus, clock, None, driver, cuda_version, "nvml")
            )
        return out
    finally:
        pynvml.nvmlShutdown()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _torch_devices() -> list[DeviceInfo]:
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append(
            DeviceInfo(
                "cuda",
                i,
                p.name,
                round(p.total_memory / 1e9, 2),
                None,
                "torch reports no memory clock",
                None,
                None,
                None,
                None,
                torch.version.cuda,
                "torch",
            )
        )
    return out


def cpu_name() -> str:
    """Returns the CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def measure_cpu_bandwidth_gb_s(size_mb: int = 256, repeats: int = 5) -> float:
    """Returns the best of `repeats` numpy copies of size_mb, counting bytes read plus written, in GB/s (cached)."""
    import numpy as np

    src = np.ones(size_mb * 1024 * 1024 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch the pages first: first-touch page faults are not bandwidth
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def cpu_device() -> DeviceInfo:
    """Returns the CPU as a device, with a measured copy bandwidth."""
    import psutil

    return DeviceInfo(
        kind="cpu",
        index=0,
        name=cpu_name(),
        memory_gb=round(psutil.virtual_memory().total / 1e9, 2),
        bandwidth_gb_s=round(measure_cpu_bandwidth_gb_s(), 1),
        bandwidth_source="measured: numpy copy of 256 MiB, best of 5, read + write bytes",
        cores=psutil.cpu_count(logical=False) or os.cpu_count(),
        detected_by="psutil",
    )


def detect_devices(include_cpu: bool = True, use_torch: bool | None = None) -> list[DeviceInfo]:
    """Returns this host's GPUs (NVML, else torch) followed by the CPU.

    use_torch=None asks torch only when the process has already imported it: importing torch costs seconds and
    hundreds of MB, which a web process should not pay to learn that NVML is missing.
    """
    gpus: list[DeviceInfo] = []
    try:
        gpus = _nvml_devices()
    except Exception:  # NVMLError_LibraryNotFound, driver mismatch, or pynvml absent: fall back
        if use_torch or (use_torch is None and "torch" in sys.modules):
            try:
                gpus = _torch_devices()
            except ImportError:
                gpus = []
    return gpus + ([cpu_device()] if include_cpu else [])


_STRIP = re.compile(r"\b(nvidia|geforce|amd|radeon|intel)\b")


def normalise_name(name: str) -> str:
    """Returns a device name lower-cased, without vendor/brand words, punctuation runs collapsed to one space."""
    n = _STRIP.sub(" ", name.lower())
    n = re.sub(r"[^a-z0-9]+", " ", n)
    return " ".join(n.split())


def match_catalog(device_name: str, aliases: Mapping[str, str]) -> str | None:
    """Returns the catalog slug whose alias matches device_name after normalisation, or None.

    A "Laptop GPU" never matches a desktop row: the laptop part has less bandwidth and power under the same
    number. Exact normalised matches win; otherwise the longest alias that the name starts with (so
    "H100 80GB HBM3" matches an "H100 80GB HBM3" row before a plain "H100" row).
    """
    name = normalise_name(device_name)
    laptop = "laptop" in name or "mobile" in name
    table = {normalise_name(a): slug for a, slug in aliases.items()}
    candidates = {a: s for a, s in table.items() if (("laptop" in a or "mobile" in a) == laptop)}
    if name in candidates:
        return candidates[name]
    prefixes = [a for a in candidates if a and (name.startswith(a + " ") or name == a)]
    if prefixes:
        return candidates[max(prefixes, key=len)]
    return None
