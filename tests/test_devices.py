"""Device detection on a machine without NVML, bandwidth arithmetic, and catalog name matching."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.devices import detect_devices, match_catalog, normalise_name, theoretical_bandwidth_gb_s

ROOT = Path(__file__).resolve().parent.parent

ALIASES = {
    "GeForce RTX 4090": "rtx-4090",
    "RTX 4090 Laptop GPU": "rtx-4090-laptop",
    "H100 80GB HBM3": "h100-sxm",
    "H100 PCIe": "h100-pcie",
    "H200": "h200",
    "RTX 3060": "rtx-3060",
}


def test_without_nvml_the_cpu_is_still_a_device_with_measured_bandwidth():
    devices = detect_devices()
    cpu = devices[-1]
    assert cpu.kind == "cpu" and cpu.torch_device == "cpu"
    assert cpu.bandwidth_gb_s > 0 and "measured" in cpu.bandwidth_source
    assert cpu.memory_gb > 0 and cpu.cores >= 1


def test_detection_does_not_import_torch_by_default():
    # In a fresh interpreter: in the test process another test may have loaded torch already.
    probe = "import sys; from bench.devices import detect_devices; detect_devices(include_cpu=False); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_theoretical_bandwidth_of_an_h100_sxm():
    # 5120-bit HBM3 at 2619 MHz, double data rate: the 3.35 TB/s of the datasheet.
    assert round(theoretical_bandwidth_gb_s(5120, 2619)) == 3352


def test_names_normalise_across_vendor_prefixes():
    assert normalise_name("NVIDIA GeForce RTX  4090") == normalise_name("rtx 4090") == "rtx 4090"


def test_it_matches_driver_names_to_catalog_slugs():
    assert match_catalog("NVIDIA GeForce RTX 4090", ALIASES) == "rtx-4090"
    assert match_catalog("NVIDIA H200", ALIASES) == "h200"
    assert match_catalog("NVIDIA H100 80GB HBM3", ALIASES) == "h100-sxm"
    assert match_catalog("NVIDIA H100 PCIe", ALIASES) == "h100-pcie"


def test_a_laptop_gpu_never_maps_to_a_desktop_row():
    assert match_catalog("NVIDIA GeForce RTX 4090 Laptop GPU", ALIASES) == "rtx-4090-laptop"
    assert match_catalog("NVIDIA GeForce RTX 3060 Laptop GPU", ALIASES) is None


def test_unknown_devices_do_not_match():
    assert match_catalog("NVIDIA GeForce RTX 40", ALIASES) is None
    assert match_catalog("AMD Radeon RX 7900 XTX", ALIASES) is None
