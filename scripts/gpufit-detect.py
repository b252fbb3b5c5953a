#!/usr/bin/env python3
"""Prints the gpufit URL of the machine it runs on: its GPUs and its RAM.

    python3 gpufit-detect.py [--server http://127.0.0.1:8000]

One file, standard library only; it uses pynvml (``pip install nvidia-ml-py``) when that is installed, and needs
neither Django nor the gpufit repository. GPUs come from the first source that finds any: NVML, then
``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits``, ``rocm-smi``, ``system_profiler`` (macOS),
``lspci`` (Linux), ``wmic`` (Windows). RAM comes from /proc/meminfo, ``sysctl -n hw.memsize`` or ``wmic``.

The URL's query is the one gpufit's /machine/ page reads (hardware/machine.py, ``format_query``): one
``gpu=<device name>:<count>`` per GPU model, one ``vram=<GB>`` per GPU model in the same order when the memory is
known, then ``ram=<GB>``; the page matches the names to its catalog.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

GIB = 1024**3
DEFAULT_SERVER = "http://127.0.0.1:8000"
# Adapters that drive a screen but run no model: server management chips, virtual machines' adapters, and the
# integrated graphics of Intel and AMD desktop CPUs.
DISPLAY_ONLY = re.compile(
    r"\b(?:U?HD Graphics|Iris|Xe Graphics|Radeon\(TM\) Graphics|Radeon Graphics|Basic (?:Display|Render)|ASPEED|"
    r"Matrox|VMware|SVGA|Cirrus|QXL|Virtio|Hyper-V|Parsec|Citrix|Bochs|llvmpipe|Cezanne|Renoir|Lucienne|Picasso|"
    r"Raven|Rembrandt|Phoenix\d?|Raphael|Granite Ridge|Barcelo|Mendocino|Van Gogh)\b|^Device [0-9a-f]{4}:",
    re.IGNORECASE,
)
LSPCI_VENDORS = {
    "NVIDIA Corporation": "NVIDIA",
    "Advanced Micro Devices, Inc. [AMD/ATI]": "AMD",
    "Intel Corporation": "Intel",
}


@dataclass(frozen=True)
class Device:
    name: str
    memory_gb: float | None = None


def run(command: list[str]) -> str | None:
    """Returns a command's output, or None when it is missing, fails or hangs."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


# --- GPUs ----------------------------------------------------------------------------------------------------


def from_nvml() -> list[Device]:
    """Returns the NVIDIA GPUs NVML sees; none when pynvml or the driver is missing."""
    try:
        import pynvml  # optional: the script must run without it
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound and friends: no NVIDIA driver here
        return []
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            devices.append(Device(name, pynvml.nvmlDeviceGetMemoryInfo(handle).total / GIB))
        return devices
    except Exception:
        return []
    finally:
        pynvml.nvmlShutdown()


def parse_nvidia_smi_csv(text: str) -> list[Device]:
    """Returns the GPUs in ``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`` output."""
    devices = []
    for line in text.splitlines():
        match = re.match(r"^\s*(.+?)\s*,\s*(\d+(?:\.\d+)?)(?:\s*MiB)?\s*$", line)
        if match:
            devices.append(Device(match.group(1), float(match.group(2)) / 1024))
    return devices


def parse_rocm_smi(text: str) -> list[Device]:
    """Returns the GPUs in ``rocm-smi --showproductname --showmeminfo vram`` output (``GPU[n] : key: value``)."""
    cards: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        match = re.match(r"^GPU\[(\d+)\]\s*:\s*([^:]+?)\s*:\s*(.*?)\s*$", line.strip())
        if match:
            cards.setdefault(int(match.group(1)), {})[match.group(2).lower()] = match.group(3)
    devices = []
    for index in sorted(cards):
        fields = cards[index]
        name = "AMD GPU"
        for value in (fields.get("card model", ""), fields.get("card series", ""), fields.get("device name", "")):
            if value and not re.fullmatch(r"0x[0-9a-fA-F]+", value):
                bracket = re.search(r"\[([^\]]+)\]\s*$", value)
                name = bracket.group(1) if bracket else value
                name = name if name.upper().startswith("AMD") else f"AMD {name}"
                break
        memory = fields.get("vram total memory (b)", "")
        if name == "AMD GPU" and not memory.isdigit():
            continue
        devices.append(Device(name, int(memory) / GIB if memory.isdigit() else None))
    return devices


def parse_system_profiler(text: str) -> tuple[list[Device], float | None]:
    """Returns the GPUs and the memory in ``system_profiler SPHardwareDataType SPDisplaysDataType`` output.

    An Apple Silicon Mac yields one device named as gpufit's catalog names the chip, "Apple M2 Max (38-core GPU)",
    with its unified memory.
    """
    devices: list[Device] = []
    chip, cores, memory_gb, section, apple_entry = None, None, None, "", False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped in ("Hardware Overview:", "Graphics/Displays:"):
            section = stripped
            continue
        key, _, value = stripped.partition(": ")
        if key == "Chip" and value.startswith("Apple M"):
            chip = value
        elif key == "Memory" and (size := re.match(r"^(\d+(?:\.\d+)?) (GB|TB)$", value)):
            memory_gb = float(size.group(1)) * (1024 if size.group(2) == "TB" else 1)
        elif key == "Chipset Model":
            apple_entry = value.startswith("Apple M")
            if apple_entry:
                chip = chip or value
            else:
                devices.append(Device(value))
        elif key == "Total Number of Cores" and section == "Graphics/Displays:" and apple_entry and value.isdigit():
            cores = int(value)
        elif key.startswith("VRAM") and devices and not apple_entry:
            if size := re.match(r"^(\d+) (GB|MB)$", value):
                gb = int(size.group(1)) / (1024 if size.group(2) == "MB" else 1)
                devices[-1] = Device(devices[-1].name, gb)
    if chip:
        devices.insert(0, Device(f"{chip} ({cores}-core GPU)" if cores else chip, memory_gb))
    return devices, memory_gb


def lspci_name(description: str) -> str:
    """Returns a device name from lspci's "<vendor> <chip> [<product>]" ("NVIDIA GeForce RTX 3090")."""
    description = re.sub(r"\s*\[[0-9a-f]{4}:[0-9a-f]{4}\]|\s*\((?:rev [0-9a-f]+|prog-if [^)]*)\)", "", description)
    for long, short in LSPCI_VENDORS.items():
        if description.startswith(long):
            rest = description[len(long) :].strip()
            bracket = re.search(r"\[([^\]]+)\]\s*$", rest)
            product = bracket.group(1) if bracket else rest
            return product if product.upper().startswith(short.upper()) else f"{short} {product}"
    return description.strip()


def parse_lspci(text: str) -> list[Device]:
    """Returns the display controllers in ``lspci`` output, less display-only and integrated adapters."""
    devices = []
    for line in text.splitlines():
        match = re.match(
            r"^(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\s+(VGA compatible controller|3D controller|"
            r"Display controller)(?:\s*\[[0-9a-f]{4}\])?:\s*(.+?)\s*$",
            line.strip(),
            re.IGNORECASE,
        )
        if match:
            name = lspci_name(match.group(2))
            if not DISPLAY_ONLY.search(name) and not DISPLAY_ONLY.search(match.group(2)):
                devices.append(Device(name))
    return devices


def parse_wmic_names(text: str) -> list[Device]:
    """Returns the adapters in ``wmic path win32_VideoController get name`` output (AdapterRAM stops at 4 GB)."""
    names = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    return [Device(name) for name in names if not DISPLAY_ONLY.search(name)]


def detect_gpus() -> tuple[list[Device], str, list[str]]:
    """Returns the GPUs of the first source that finds any, that source's name, and every source tried."""
    sources = [
        ("NVML", from_nvml),
        (
            "nvidia-smi",
            lambda: parse_nvidia_smi_csv(
                run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]) or ""
            ),
        ),
        (
            "rocm-smi",
            lambda: parse_rocm_smi(run(["rocm-smi", "--showproductname", "--showmeminfo", "vram"]) or ""),
        ),
    ]
    if sys.platform == "darwin":
        sources.append(
            (
                "system_profiler",
                lambda: parse_system_profiler(
                    run(["system_profiler", "SPHardwareDataType", "SPDisplaysDataType"]) or ""
                )[0],
            )
        )
    if sys.platform.startswith("linux"):
        sources.append(("lspci", lambda: parse_lspci(run(["lspci"]) or "")))
    if sys.platform == "win32":
        sources.append(
            ("wmic", lambda: parse_wmic_names(run(["wmic", "path", "win32_VideoController", "get", "name"]) or ""))
        )
    tried = []
    for name, find in sources:
        tried.append(name)
        devices = find()
        if devices:
            return devices, name, tried
    return [], "", tried


# --- RAM -----------------------------------------------------------------------------------------------------


def parse_meminfo(text: str) -> float | None:
    """Returns MemTotal from /proc/meminfo, in GiB."""
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024**2 if match else None


def parse_byte_count(text: str) -> float | None:
    """Returns the first whole number in a command's output (sysctl -n hw.memsize, wmic TotalPhysicalMemory) in GiB."""
    match = re.search(r"^\s*(\d+)\s*$", text, re.MULTILINE)
    return int(match.group(1)) / GIB if match else None


def detect_ram() -> tuple[float | None, str]:
    """Returns the RAM in GiB as the OS reports it and where it was read."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        ram = parse_meminfo(meminfo.read_text())
        if ram:
            return ram, "/proc/meminfo"
    if sys.platform == "darwin" and (ram := parse_byte_count(run(["sysctl", "-n", "hw.memsize"]) or "")):
        return ram, "sysctl hw.memsize"
    if sys.platform == "win32":
        if ram := parse_byte_count(run(["wmic", "ComputerSystem", "get", "TotalPhysicalMemory"]) or ""):
            return ram, "wmic"
    return None, ""


# --- the URL -------------------------------------------------------------------------------------------------


def group(devices: list[Device]) -> list[tuple[str, int, float | None]]:
    """Returns (name, count, memory GB) per GPU model, in the order first seen."""
    counts: dict[tuple[str, int | None], int] = {}
    for device in devices:
        key = (device.name, round(device.memory_gb) if device.memory_gb else None)
        counts[key] = counts.get(key, 0) + 1
    return [(name, count, memory) for (name, memory), count in counts.items()]


def query_string(groups: list[tuple[str, int, float | None]], ram_gb: float | None) -> str:
    """Returns ``gpu=<name>:<count>&…[&vram=<GB>…]&ram=<GB>``, as hardware/machine.py's format_query writes it."""
    params = ["gpu=" + quote(f"{name}:{count}", safe=":") for name, count, _ in groups]
    if groups and all(memory for _, _, memory in groups):
        params += [f"vram={round(memory)}" for _, _, memory in groups]
    if ram_gb:
        params.append(f"ram={round(ram_gb)}")
    return "&".join(params)


def machine_url(server: str, groups: list[tuple[str, int, float | None]], ram_gb: float | None) -> str:
    return f"{server.rstrip('/')}/machine/?{query_string(groups, ram_gb)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the gpufit URL of this machine's GPUs and RAM.")
    parser.add_argument("--server", default=DEFAULT_SERVER, help=f"the gpufit server (default {DEFAULT_SERVER})")
    args = parser.parse_args(argv)
    devices, source, tried = detect_gpus()
    ram_gb, ram_source = detect_ram()
    groups = group(devices)
    if groups:
        for name, count, memory in groups:
            size = f", {memory:.0f} GB" if memory else ""
            print(f"GPU: {count} x {name}{size} ({source})")
    else:
        print(f"No GPU found (tried {', '.join(tried)}).")
    print(f"RAM: {ram_gb:.0f} GB ({ram_source})" if ram_gb else "RAM: not found.")
    print(machine_url(args.server, groups, ram_gb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
