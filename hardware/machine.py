"""What a user's machine prints, read and matched to the GPU catalog.

Three steps, each usable alone:

- ``parse_machine(text)`` reads a paste (nvidia-smi in its three usual forms, rocm-smi, macOS system_profiler,
  lspci, Windows wmic, free, /proc/meminfo, or a sentence such as "2x RTX 3090, 64 GB RAM"; several pastes
  concatenated) into a ``ParsedMachine``. No database.
- ``match_machine(parsed)`` matches each GPU to one catalog row and returns a ``Machine``: identical GPUs grouped
  with a count, the ones that match nothing kept with the reason.
- ``format_query`` / ``parse_query`` / ``machine_from_query``: the shareable query of the ``/machine/`` page,
  ``gpu=<ref>:<count>`` repeated once per GPU model, then ``ram=<gb>``. ``<ref>`` is a catalog slug (what
  ``Machine.query_string()`` writes) or a device name as a tool printed it (what ``scripts/gpufit-detect.py``
  writes, adding one ``vram=<gb>`` per ``gpu`` with the memory it read); both resolve through the same matcher.
  docs/catalog.md ("Matching a user's machine") describes the rules.
- ``split_gpu_names``: a box that lists several GPUs ("RTX 4090 + 2x RTX 3090"), and ``MIXED_GPUS``, why unequal
  cards get no estimate. A Mac named by its chip ("M4 Pro 48GB") is read and matched in hardware/apple.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import parse_qs, quote

from hardware.apple import match_apple, parse_apple
from hardware.models import GPU, Segment, normalise_alias

GIB = 1024**3
# wmic's AdapterRAM is a uint32 count of bytes, so Windows never reports more than 4 GiB - 1 MiB (4293918720)
# for a card with 4 GB or more (https://github.com/oshi/oshi/issues/2521). A value this high means "4 GB or more".
ADAPTER_RAM_CAP = 4293918720
# A GPU's reported memory and its catalog row agree when they differ by at most this share (or 1 GB): drivers
# report a little less than the size sold (an A10 reports 23028 MiB = 22.5 GB of its 24 GB).
MEMORY_TOLERANCE = 0.1
MAX_COUNT = 64


class Tool(StrEnum):
    """Where a GPU or the RAM figure was read."""

    NVIDIA_SMI = "nvidia-smi"
    NVIDIA_SMI_LIST = "nvidia-smi -L"
    NVIDIA_SMI_QUERY = "nvidia-smi --query-gpu"
    ROCM_SMI = "rocm-smi"
    SYSTEM_PROFILER = "system_profiler"
    LSPCI = "lspci"
    WMIC = "wmic"
    FREE = "free"
    MEMINFO = "/proc/meminfo"
    SYSCTL = "sysctl"
    TEXT = "text"
    QUERY = "query"


@dataclass(frozen=True)
class ParsedGPU:
    """One GPU model as a tool printed it; ``count`` of them."""

    name: str
    count: int = 1
    memory_gb: float | None = None  # GiB as printed (nvidia-smi's MiB / 1024), None when the tool gives none
    tool: Tool = Tool.TEXT
    line: str = ""  # the line the name came from
    truncated: bool = False  # the tool cut the name short ("NVIDIA GeForce RTX 3050 ...")


@dataclass(frozen=True)
class AppleChip:
    """An Apple Silicon Mac: the chip, its unified memory and GPU core count when printed."""

    chip: str  # "Apple M2 Max"
    memory_gb: float | None = None
    gpu_cores: int | None = None
    line: str = ""

    @property
    def name(self) -> str:
        """Returns the chip with its GPU cores when known, in the catalog's words: "Apple M2 Max (38-core GPU)"."""
        return f"{self.chip} ({self.gpu_cores}-core GPU)" if self.gpu_cores else self.chip


@dataclass
class ParsedMachine:
    """What a paste says about a machine, before any catalog lookup."""

    gpus: list[ParsedGPU] = field(default_factory=list)
    ram_gb: float | None = None  # system RAM in GiB, as the OS reports it (a little under the size installed)
    ram_tool: Tool | None = None
    apple: AppleChip | None = None
    unknown_lines: list[str] = field(default_factory=list)  # lines that looked like a device line, not understood
    notes: list[str] = field(default_factory=list)  # what the reader assumed or distrusted


# --- reading -------------------------------------------------------------------------------------------------

_SMI_LIST = re.compile(r"^\s*GPU (\d+): (.+?) \(UUID: GPU-[0-9a-fA-F-]+\)?\s*$")
_SMI_MIG = re.compile(r"^\s*MIG .*\(UUID: MIG-")
# "|   0  NVIDIA GeForce RTX 3090        Off |   00000000:0A:00.0 Off |" (Persistence-M On/Off, or WDDM/TCC).
_SMI_ROW = re.compile(
    r"^\|\s*(\d+)\s+(.+?)\s+(?:On|Off|WDDM|TCC|N/A)\s*\|\s*[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]"
)
_SMI_MEMORY = re.compile(r"^\|.*\|\s*\d+MiB\s*/\s*(\d+)MiB\s*\|")
_ROCM_KEY = re.compile(r"^GPU\[(\d+)\]\s*:\s*([^:]+?)\s*:\s*(.*?)\s*$")
_ROCM_CSV_ROW = re.compile(r"^card(\d+)\s*,")
_LSPCI = re.compile(
    r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]\s+([^:\[]+?)(?:\s*\[[0-9a-f]{4}\])?:\s*(.*?)\s*$"
)
_LSPCI_DISPLAY = {"vga compatible controller", "3d controller", "display controller"}
_LSPCI_VENDORS = {
    "NVIDIA Corporation": "NVIDIA",
    "Advanced Micro Devices, Inc. [AMD/ATI]": "AMD",
    "Advanced Micro Devices, Inc. [AMD]": "AMD",
    "Intel Corporation": "Intel",
}
_FREE_HEADER = re.compile(r"^\s*total\s+used\s+free\b")
_FREE_MEM = re.compile(r"^\s*Mem:\s+(\d+(?:[.,]\d+)?)\s*([KMGTP]i?B?|B)?\s")
_MEMINFO_TOTAL = re.compile(r"^\s*MemTotal:\s*(\d+)\s*kB\s*$")
_MEMINFO_LINE = re.compile(r"^\s*[A-Za-z][\w()]*:\s+\d+(?:\s*kB)?\s*$")
_SYSCTL_MEMSIZE = re.compile(r"^\s*hw\.memsize\s*[:=]\s*(\d+)\s*$")
_COMMAND = re.compile(
    r"^\s*(?:\S*[$#%>]\s*)?(?:\./)?(nvidia-smi|rocm-smi|system_profiler|lspci|wmic|free|cat\s+/proc/meminfo|sysctl|"
    r"Get-CimInstance|Get-WmiObject|path\s+win32_VideoController)\b(.*)$",
    re.IGNORECASE,
)
_SP_KEY = re.compile(r"^\s+([A-Za-z][\w ()/,.-]*):\s*(.*?)\s*$")
_APPLE_CHIP = re.compile(r"^Apple M\d+(?: (?:Pro|Max|Ultra))?$")
_STRUCTURE = re.compile(r"^[\s+\-=|_]*$|^=+ .* =+$")
# Words that make an unparsed line look like it meant to describe a device (so it lands in unknown_lines).
_DEVICE_HINT = re.compile(
    r"\b(gpus?|vga|3d controller|nvidia|geforce|rtx|gtx|quadro|tesla|radeon|instinct|vram|cuda|rocm|mib|ram|"
    r"apple m\d)\b",
    re.IGNORECASE,
)
# Free text: a GPU model starts with one of these words (or is a bare GeForce number such as 3090).
_GPU_WORD = re.compile(
    r"\b(?:nvidia|geforce|rtx|gtx|quadro|tesla|titan|radeon|rx|instinct|mi\d{2,3}[a-z]?|arc|a\d{1,4}|h\d{3}|"
    r"gh200|b[23]00|gb200|l4|l40s?|l20|t4|v100s?|p40|p100)\b",
    re.IGNORECASE,
)
_BARE_GEFORCE = re.compile(r"\b([1-5]0[5-9]0)(\s*(?:ti|super))?\b", re.IGNORECASE)
# Tokens that can continue a GPU model name in free text ("RTX 4090 Laptop GPU", "A100 SXM4 80GB").
_MODEL_TOKEN = re.compile(
    r"^(?:[a-z]*\d[\w.-]*|ti|super|xt|xtx|gre|laptop|mobile|max-q|gpu|d|ada|generation|pcie|sxm\d?|nvl|hbm\d?e?|"
    r"pro|blackwell|workstation|edition|server|max|ultra|vega|vii|rtx|gtx|geforce|radeon|rx|instinct|arc|quadro|"
    r"tesla|titan|nvidia|amd|intel|gb)$",
    re.IGNORECASE,
)
_TEXT_RAM = (
    re.compile(
        r"(\d+(?:\.\d+)?)\s*(TB|TiB|GB|GiB|G)\b\s*(?:of\s+)?(?:(?:DDR\d\w*|LPDDR\d\w*|ECC|system|unified)\s+)*"
        r"(?:RAM|memory)\b",
        re.IGNORECASE,
    ),
    re.compile(r"\b(?:RAM|memory)\s*[:=]?\s*(\d+(?:\.\d+)?)\s*(TB|TiB|GB|GiB|G)\b", re.IGNORECASE),
)
_TEXT_APPLE = re.compile(r"\b(?:Apple\s+)?(M[1-9])(?:\s+(Pro|Max|Ultra))\b|\bApple\s+(M[1-9])\b", re.IGNORECASE)
_TEXT_COUNT_WORDS = {"dual": 2, "two": 2, "double": 2, "triple": 3, "three": 3, "quad": 4, "four": 4, "eight": 8}
_TEXT_SPLIT = re.compile(r"\s*(?:,|;|\+|&|\||\band\b|\bwith\b|\bplus\b)\s*", re.IGNORECASE)


def _size_gb(value: float, unit: str) -> float:
    """Returns a size in GiB from a value and a unit as tools print them (K, KiB, kB, M, MiB, G, GB, T…)."""
    scale = {"b": 1 / GIB, "k": 1 / 1024**2, "m": 1 / 1024, "g": 1.0, "t": 1024.0, "p": 1024.0**2}
    return value * scale[unit.strip()[0].lower()]


class _Reader:
    """Reads a paste line by line; formats that span lines (tables, CSV, rocm-smi, system_profiler) keep state."""

    def __init__(self) -> None:
        self.found: list[ParsedGPU] = []
        self.rams: list[tuple[float, Tool]] = []
        self.apple: AppleChip | None = None
        self.unknown: list[str] = []
        self.notes: list[str] = []
        self.context: Tool | None = None
        self.smi_row: int | None = None  # index in self.found of the table row waiting for its memory line
        self.csv: list[str] | None = None  # nvidia-smi --query-gpu header columns, when one was printed
        self.rocm_csv: list[str] | None = None
        self.rocm: dict[int, dict[str, str]] = {}
        self.rocm_lines: dict[int, str] = {}
        self.wmic: list[tuple[str, int]] | None = None  # wmic columns with their start positions
        self.wmic_ram = False  # the next number is TotalPhysicalMemory
        self.free_unit: str | None = None  # from "free -g" / "free -m" echoed above the output
        self.sp_section: str | None = None
        self.sp_gpu: int | None = None  # index in self.found of the system_profiler GPU being described
        self.sp_apple = False  # the system_profiler entry being described is the Apple chip's GPU

    # -- driver --
    def feed(self, raw: str) -> None:
        line = raw.rstrip("\r\n")
        text = line.strip()
        if not text:
            self.csv = self.rocm_csv = self.wmic = None
            return
        for read in (
            self._command,
            self._nvidia_smi,
            self._rocm_smi,
            self._system_profiler,
            self._lspci,
            self._wmic,
            self._csv,
            self._memory,
            self._structure,
            self._text,
        ):
            if read(line):
                return
        if _DEVICE_HINT.search(text):
            self.unknown.append(text)

    def finish(self) -> ParsedMachine:
        self._finish_rocm()
        machine = ParsedMachine(gpus=_merge(self.found), unknown_lines=self.unknown, notes=self.notes)
        if self.rams:
            # A tool's own figure wins over a typed one; among tools, the first printed.
            machine.ram_gb, machine.ram_tool = min(self.rams, key=lambda r: r[1] == Tool.TEXT)
        if self.apple is not None:
            memory = self.apple.memory_gb
            if memory is None and machine.ram_gb is not None:
                memory = machine.ram_gb  # on a Mac the RAM is the unified memory
            self.apple = replace(self.apple, memory_gb=memory)
            if machine.ram_gb is None and memory is not None:
                machine.ram_gb, machine.ram_tool = memory, Tool.SYSTEM_PROFILER
        machine.apple = self.apple
        return machine

    def _add(self, gpu: ParsedGPU) -> int:
        self.found.append(gpu)
        return len(self.found) - 1

    # -- formats --
    def _command(self, line: str) -> bool:
        text = line.strip()
        match = _COMMAND.match(text)
        if not match:
            return False
        command, args = match.group(1).lower(), match.group(2)
        if command == "free":
            self.free_unit = _free_unit(args)
        return True

    def _nvidia_smi(self, line: str) -> bool:
        text = line.strip()
        if match := _SMI_LIST.match(text):
            self.context = Tool.NVIDIA_SMI_LIST
            self._add(ParsedGPU(name=match.group(2).strip(), tool=Tool.NVIDIA_SMI_LIST, line=text))
            return True
        if _SMI_MIG.match(text):
            return True
        if match := _SMI_ROW.match(text):
            self.context = Tool.NVIDIA_SMI
            name = match.group(2).strip()
            truncated = name.endswith("...")
            name = name.removesuffix("...").strip()
            self.smi_row = self._add(ParsedGPU(name=name, tool=Tool.NVIDIA_SMI, line=text, truncated=truncated))
            return True
        if (match := _SMI_MEMORY.match(text)) and self.smi_row is not None:
            gpu = self.found[self.smi_row]
            self.found[self.smi_row] = replace(gpu, memory_gb=int(match.group(1)) / 1024)
            self.smi_row = None
            return True
        if text.startswith("|") and text.endswith("|"):
            return True  # the table's header, its process list and its blank cells
        return False

    def _rocm_smi(self, line: str) -> bool:
        text = line.strip()
        if match := _ROCM_KEY.match(text):
            self.context = Tool.ROCM_SMI
            index = int(match.group(1))
            self.rocm.setdefault(index, {})[match.group(2).lower()] = match.group(3).strip()
            self.rocm_lines.setdefault(index, text)
            return True
        if text.lower().startswith("device,"):
            self.context = Tool.ROCM_SMI
            self.rocm_csv = [c.strip().lower() for c in text.split(",")]
            return True
        if self.rocm_csv and (match := _ROCM_CSV_ROW.match(text)):
            cells = [c.strip() for c in text.split(",")]
            index = int(match.group(1))
            self.rocm.setdefault(index, {}).update(zip(self.rocm_csv[1:], cells[1:], strict=False))
            self.rocm_lines.setdefault(index, text)
            return True
        if "ROCm System Management Interface" in text or "End of ROCm SMI Log" in text:
            return True
        return False

    def _finish_rocm(self) -> None:
        for index in sorted(self.rocm):
            fields = self.rocm[index]
            memory = fields.get("vram total memory (b)")
            memory_gb = int(memory) / GIB if memory and memory.isdigit() else None
            name = _rocm_name(fields)
            if name is None:
                ids = [v for k, v in fields.items() if k in ("card series", "card model") and v]
                if not ids and memory_gb is None:
                    continue  # a rocm-smi section that names no card (clocks, temperatures)
                name = f"AMD GPU {ids[0]}" if ids else "AMD GPU"
            self.found.append(
                ParsedGPU(name=name, memory_gb=memory_gb, tool=Tool.ROCM_SMI, line=self.rocm_lines[index])
            )

    def _system_profiler(self, line: str) -> bool:
        text = line.strip()
        if text in ("Hardware:", "Hardware Overview:", "Graphics/Displays:"):
            self.context = Tool.SYSTEM_PROFILER
            self.sp_section = "displays" if text.startswith("Graphics") else "hardware"
            self.sp_gpu, self.sp_apple = None, False
            return True
        if self.context != Tool.SYSTEM_PROFILER:
            return False
        match = _SP_KEY.match(line)
        if match is None:
            return line.startswith(" ") and text.endswith(":")  # an entry's heading ("    Apple M2 Max:")
        key, value = match.group(1), match.group(2)
        if key == "Chip" and _APPLE_CHIP.match(value):
            self.apple = replace(self.apple, chip=value) if self.apple else AppleChip(chip=value, line=text)
        elif key == "Memory" and (size := re.match(r"^(\d+(?:\.\d+)?)\s*(TB|GB|MB)$", value)):
            gb = _size_gb(float(size.group(1)), size.group(2))
            self.rams.append((gb, Tool.SYSTEM_PROFILER))
            if self.apple is not None:
                self.apple = replace(self.apple, memory_gb=gb)
        elif key == "Chipset Model":
            if _APPLE_CHIP.match(value):
                self.sp_apple, self.sp_gpu = True, None
                self.apple = self.apple or AppleChip(chip=value, line=text)
            else:
                self.sp_apple = False
                self.sp_gpu = self._add(ParsedGPU(name=value, tool=Tool.SYSTEM_PROFILER, line=text))
        elif key == "Total Number of Cores" and self.sp_section == "displays" and value.isdigit():
            if self.sp_apple and self.apple is not None:
                self.apple = replace(self.apple, gpu_cores=int(value))
        elif key.startswith("VRAM") and self.sp_gpu is not None:
            if size := re.match(r"^(\d+(?:\.\d+)?)\s*(GB|MB)$", value):
                gpu = self.found[self.sp_gpu]
                self.found[self.sp_gpu] = replace(gpu, memory_gb=_size_gb(float(size.group(1)), size.group(2)))
        return True

    def _lspci(self, line: str) -> bool:
        text = line.strip()
        match = _LSPCI.match(text)
        if match is None:
            # -v / -k continuation lines ("\tSubsystem: …", "\tKernel driver in use: nvidia")
            return self.context == Tool.LSPCI and line[:1] in ("\t", " ") and ":" in text
        self.context = Tool.LSPCI
        if match.group(1).strip().lower() not in _LSPCI_DISPLAY:
            return True
        description = re.sub(r"\s*\[[0-9a-f]{4}:[0-9a-f]{4}\]", "", match.group(2))
        description = re.sub(r"\s*\((?:rev [0-9a-f]+|prog-if [^)]*)\)", "", description).strip()
        self._add(ParsedGPU(name=_lspci_name(description), tool=Tool.LSPCI, line=text))
        return True

    def _wmic(self, line: str) -> bool:
        text = line.strip()
        words = text.split()
        if "AdapterRAM" in words and "Name" in words and all(w.isalpha() for w in words):
            self.context = Tool.WMIC
            self.wmic = [(w, line.index(w)) for w in words]
            return True
        if text == "TotalPhysicalMemory":
            self.context, self.wmic_ram = Tool.WMIC, True
            return True
        if self.wmic_ram and text.isdigit():
            self.rams.append((int(text) / GIB, Tool.WMIC))
            self.wmic_ram = False
            return True
        if self.wmic is None:
            return False
        if set(text) <= {"-", " "}:
            return True
        cells = _wmic_cells(line, self.wmic)
        name, ram = cells.get("Name", ""), cells.get("AdapterRAM", "")
        if not name:
            return False
        memory_gb = None
        if ram.lstrip("-").isdigit():
            value = int(ram)
            if value >= ADAPTER_RAM_CAP or value < 0:
                self.notes.append(
                    f"wmic reports {name} with AdapterRAM {value}: that field is a 32-bit count of bytes and "
                    "stops at 4 GB, so the memory is taken from the catalog, not from wmic."
                )
            elif value > 0:
                memory_gb = value / GIB
        self._add(ParsedGPU(name=name, memory_gb=memory_gb, tool=Tool.WMIC, line=text))
        return True

    def _csv(self, line: str) -> bool:
        text = line.strip()
        cells = [c.strip() for c in text.split(",")]
        if len(cells) < 2:
            return False
        lowered = [c.lower() for c in cells]
        if "name" in lowered and any("." in c or "[" in c for c in lowered):
            self.context, self.csv = Tool.NVIDIA_SMI_QUERY, lowered
            return True
        if self.csv is not None and len(cells) == len(self.csv):
            name = cells[self.csv.index("name")]
            memory_gb = None
            column = next((i for i, c in enumerate(self.csv) if c.startswith("memory.total")), None)
            if column is not None:
                unit = re.search(r"\[(\w+)\]", self.csv[column])
                memory_gb = _csv_memory(cells[column], unit.group(1) if unit else "MiB")
            self._add(ParsedGPU(name=name, memory_gb=memory_gb, tool=Tool.NVIDIA_SMI_QUERY, line=text))
            return True
        # No header (--format=csv,noheader): "NVIDIA L4, 23034" or "0, NVIDIA H200, 143771 MiB".
        if cells[0].isdigit() and len(cells) >= 3:
            cells = cells[1:]
        if _GPU_WORD.search(cells[0]) and re.fullmatch(r"\d+(?:\.\d+)?(?: MiB)?", cells[1]):
            self._add(
                ParsedGPU(name=cells[0], memory_gb=_csv_memory(cells[1], "MiB"), tool=Tool.NVIDIA_SMI_QUERY, line=text)
            )
            return True
        return False

    def _memory(self, line: str) -> bool:
        text = line.strip()
        if _FREE_HEADER.match(text):
            self.context = Tool.FREE
            return True
        if match := _FREE_MEM.match(line):
            value, unit = float(match.group(1).replace(",", ".")), match.group(2)
            if unit is None:
                unit = self.free_unit or _guess_free_unit(value)
                if self.free_unit is None:
                    self.notes.append(
                        f"free printed {match.group(1)} without a unit; read as {unit}iB (the command line was not "
                        "pasted, and values under 3,000 are read as GiB, under 1,000,000 as MiB, above as KiB)."
                    )
            self.rams.append((_size_gb(value, unit), Tool.FREE))
            return True
        if self.context == Tool.FREE and re.match(r"^\s*(Swap|Total|-/\+ buffers/cache):", text):
            return True
        if match := _MEMINFO_TOTAL.match(text):
            self.context = Tool.MEMINFO
            self.rams.append((int(match.group(1)) / 1024**2, Tool.MEMINFO))
            return True
        if match := _SYSCTL_MEMSIZE.match(text):
            self.rams.append((int(match.group(1)) / GIB, Tool.SYSCTL))
            return True
        return bool(_MEMINFO_LINE.match(text))

    def _structure(self, line: str) -> bool:
        text = line.strip()
        return bool(_STRUCTURE.match(text))

    def _text(self, line: str) -> bool:
        text = line.strip()
        understood = False
        for segment in _TEXT_SPLIT.split(text):
            if not segment:
                continue
            if ram := _text_ram(segment):
                self.rams.append((ram, Tool.TEXT))
                understood = True
            elif apple := _TEXT_APPLE.search(segment):
                chip = "Apple " + (apple.group(3) or f"{apple.group(1)} {apple.group(2)}").title()
                memory = re.search(r"(\d+)\s*GB", segment, re.IGNORECASE)
                cores = re.search(r"(\d+)[- ]?core\s+GPU", segment, re.IGNORECASE)
                self.apple = AppleChip(
                    chip=chip,
                    memory_gb=float(memory.group(1)) if memory else None,
                    gpu_cores=int(cores.group(1)) if cores else None,
                    line=text,
                )
                understood = True
            elif gpu := _text_gpu(segment, text):
                self._add(gpu)
                understood = True
        return understood


def _free_unit(args: str) -> str | None:
    """Returns the unit free prints its sizes in for these arguments (KiB by default), None for -h (units shown)."""
    unit: str | None = "K"
    for dashes, flag in re.findall(r"(?:^|\s)(--?)([a-z]+)", args):
        for letter in [flag[0]] if dashes == "--" else list(flag):
            if letter in "bkmgt":
                unit = letter.upper()
            elif letter == "h":
                unit = None
    return unit


def _rocm_name(fields: dict[str, str]) -> str | None:
    """Returns the most specific product name among rocm-smi's fields, or None when it printed only PCI ids."""
    candidates = [fields.get("card model", ""), fields.get("card series", ""), fields.get("device name", "")]
    for value in candidates:
        if not value or re.fullmatch(r"0x[0-9a-fA-F]+", value):
            continue
        bracket = re.search(r"\[([^\]]+)\]\s*$", value)
        name = bracket.group(1) if bracket else value
        return name if name.upper().startswith("AMD") else f"AMD {name}"
    return None


def _lspci_name(description: str) -> str:
    """Returns a device name from lspci's "<vendor> <chip> [<product>]" ("NVIDIA GeForce RTX 3090")."""
    vendor, rest = "", description
    for long, short in _LSPCI_VENDORS.items():
        if description.startswith(long):
            vendor, rest = short, description[len(long) :].strip()
            break
    bracket = re.search(r"\[([^\]]+)\]\s*$", rest)
    product = bracket.group(1) if bracket else rest
    if not vendor:
        return product if bracket else description
    return product if product.upper().startswith(vendor.upper()) else f"{vendor} {product}"


def _wmic_cells(line: str, columns: list[tuple[str, int]]) -> dict[str, str]:
    """Returns wmic's cells by column; a two-column table whose name overflows its column is split on the number."""
    names = [c for c, _ in columns]
    if len(columns) == 2:
        number_first = names[0] == "AdapterRAM"
        match = re.match(r"^\s*(-?\d+)\s+(.+?)\s*$" if number_first else r"^\s*(.+?)\s+(-?\d+)\s*$", line)
        if match is None:
            return {"Name": line.strip()}
        ram, name = match.groups() if number_first else match.groups()[::-1]
        return {"AdapterRAM": ram, "Name": name}
    cells = {}
    for i, (name, start) in enumerate(columns):
        end = columns[i + 1][1] if i + 1 < len(columns) else len(line)
        cells[name] = line[start:end].strip()
    return cells


def _csv_memory(cell: str, unit: str) -> float | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(\w+)?", cell.strip())
    if match is None:
        return None
    return _size_gb(float(match.group(1)), match.group(2) or unit)


def _guess_free_unit(value: float) -> str:
    # free prints KiB by default, MiB with -m, GiB with -g. Without the command line only the size tells.
    if value >= 1_000_000:
        return "K"
    return "M" if value >= 3000 else "G"


def _text_ram(segment: str) -> float | None:
    for pattern in _TEXT_RAM:
        if match := pattern.search(segment):
            return _size_gb(float(match.group(1)), match.group(2))
    return None


def _text_gpu(segment: str, line: str) -> ParsedGPU | None:
    """Returns the GPU a piece of a sentence names ("2x RTX 3090", "RTX 4090 laptop", "two 3090s"), or None."""
    segment = re.sub(r"(?<=\d)s\b", "", segment.strip())  # "3090s"
    match = _GPU_WORD.search(segment)
    bare = None if match else _BARE_GEFORCE.search(segment)
    if match is None and bare is None:
        return None
    start = match.start() if match else bare.start()
    prefix, tokens = segment[:start], []
    for token in segment[start:].replace("(", " ").replace(")", " ").split():
        if not _MODEL_TOKEN.match(token) or re.fullmatch(r"[x×*]\d+", token, re.IGNORECASE):
            break
        tokens.append(token)
    rest = segment[start:].split()[len(tokens) :]
    name = " ".join(tokens)
    if bare is not None:
        name = f"RTX {name}" if int(bare.group(1)) >= 2000 else f"GTX {name}"
    memory = None
    if size := re.search(r"\s*\b(\d+(?:\.\d+)?)\s*GB$", name, re.IGNORECASE):
        memory, name = float(size.group(1)), name[: size.start()].strip()
    count = 1
    if found := re.search(r"(\d+)\s*[x×*]?\s*$", prefix):
        count = int(found.group(1))
    elif found := re.search(r"\b(" + "|".join(_TEXT_COUNT_WORDS) + r")\b\W*$", prefix, re.IGNORECASE):
        count = _TEXT_COUNT_WORDS[found.group(1).lower()]
    elif rest and (found := re.fullmatch(r"[x×*](\d+)", rest[0])):
        count = int(found.group(1))
    if not name:
        return None
    if not 1 <= count <= MAX_COUNT:
        count = 1  # a year or a price before the name ("bought in 2022 RTX 3090"), not a count
    return ParsedGPU(name=name, count=count, memory_gb=memory, tool=Tool.TEXT, line=line)


def _model_key(name: str) -> str:
    """Returns the key under which two tools' names for one GPU model agree ("NVIDIA GeForce RTX 3090")."""
    words = re.sub(r"[^a-z0-9]+", " ", normalise_alias(name)).split()
    return " ".join(w for w in words if w not in {"nvidia", "geforce", "corporation", "amd", "ati", "intel", "r", "tm"})


# Which tool's name to keep when several print the same GPU: full names first, lspci's product names last.
_NAME_ORDER = [
    Tool.NVIDIA_SMI_LIST,
    Tool.NVIDIA_SMI_QUERY,
    Tool.NVIDIA_SMI,
    Tool.ROCM_SMI,
    Tool.SYSTEM_PROFILER,
    Tool.WMIC,
    Tool.LSPCI,
    Tool.TEXT,
    Tool.QUERY,
]


def _merge(found: list[ParsedGPU]) -> list[ParsedGPU]:
    """Returns one entry per GPU model with its count.

    Several pastes of one machine list the same GPUs (nvidia-smi -L and nvidia-smi, or lspci beside them), so a
    model's count is the largest any one tool gives, not the sum. A name a table cut short joins the one full name
    it begins.
    """
    keys = [_model_key(g.name) for g in found]
    full = {k for k, g in zip(keys, found, strict=True) if not g.truncated}
    for i, gpu in enumerate(found):
        if gpu.truncated:
            longer = [k for k in full if k.startswith(keys[i])]
            if len(longer) == 1:
                keys[i] = longer[0]
    counts: dict[str, dict[Tool, int]] = {}
    members: dict[str, list[ParsedGPU]] = {}
    for key, gpu in zip(keys, found, strict=True):
        per_tool = counts.setdefault(key, {})
        per_tool[gpu.tool] = per_tool.get(gpu.tool, 0) + gpu.count
        members.setdefault(key, []).append(gpu)
    merged = []
    for key, gpus in members.items():
        best = min(gpus, key=lambda g: (g.truncated, _NAME_ORDER.index(g.tool)))
        memory = next((g.memory_gb for g in sorted(gpus, key=lambda g: _NAME_ORDER.index(g.tool)) if g.memory_gb), None)
        merged.append(replace(best, count=max(counts[key].values()), memory_gb=memory))
    return merged


def parse_machine(text: str) -> ParsedMachine:
    """Returns the GPUs, RAM and Apple chip that ``text`` (one paste, or several concatenated) describes."""
    reader = _Reader()
    for line in text.splitlines():
        reader.feed(line)
    return reader.finish()


# --- matching ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineGPU:
    """``count`` identical GPUs matched to one catalog row."""

    gpu: GPU
    count: int
    names: tuple[str, ...]  # the names the tools printed
    memory_gb: float | None = None  # as reported, when a tool printed it
    note: str = ""  # e.g. the reported memory differs from the catalog row's


@dataclass(frozen=True)
class UnmatchedGPU:
    """A GPU (or ``count`` of them) that matched no catalog row, with the reason."""

    name: str
    count: int
    reason: str
    line: str = ""
    candidates: tuple[GPU, ...] = ()  # the catalog rows it could be, when the name fits several


@dataclass
class Machine:
    """A machine in catalog terms: GPU models with their counts, what matched nothing, and the RAM."""

    gpus: list[MachineGPU] = field(default_factory=list)
    unmatched: list[UnmatchedGPU] = field(default_factory=list)
    ignored: list[UnmatchedGPU] = field(default_factory=list)  # integrated or display-only adapters
    ram_gb: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def mixed(self) -> bool:
        """Returns whether the machine holds GPUs of more than one model."""
        return len(self.gpus) > 1

    @property
    def gpu_count(self) -> int:
        return sum(g.count for g in self.gpus)

    def query_string(self) -> str:
        """Returns the /machine/ page's query for this machine: ``gpu=<slug>:<count>`` per model, ``ram=<gb>``."""
        return format_query([(g.gpu.slug, g.count) for g in self.gpus], self.ram_gb)


@dataclass(frozen=True)
class GPUMatch:
    """One parsed GPU's catalog row, or the reason it has none (``ignored``: an adapter that runs no model)."""

    gpu: GPU | None = None
    reason: str = ""
    note: str = ""
    ignored: bool = False
    candidates: tuple[GPU, ...] = ()  # the rows a name could mean ("M2 Max": its 32, 64 and 96 GB configurations)


_VENDOR_PREFIX = re.compile(
    r"^(?:NVIDIA Corporation|NVIDIA|Advanced Micro Devices,? Inc\.?(?: \[AMD(?:/ATI)?\])?|AMD/ATI|AMD|ATI|"
    r"Intel Corporation|Intel)\s+",
    re.IGNORECASE,
)
_LAPTOP = re.compile(
    r"\b(?:laptop|mobile|mobility|notebook|max-q)\b"
    r"|\bRX \d{4}S\b|\bVega M\b"  # AMD's thin-laptop parts (RX 6800S) and Kaby Lake-G's Vega M
    r"|\bgo\b|\bgo\d"  # GeForce Go 7900, FX Go5200
    r"|\bMX ?\d{3}\b"  # GeForce MX150 to MX570
    r"|\b(?:Radeon|FirePro)\b.*\bM\d{3,4}"  # AMD's M-prefixed mobile parts (R9 M295X, FirePro M4000)
    r"|\bArc (?:Pro )?A\d{2,3}M\b",
    re.IGNORECASE,
)
# A model number ending in a capital M (RX 6800M, Radeon Pro 5500M, Quadro T1000M, GeForce 940MX); case matters:
# the Tesla K40m is a server board.
_LAPTOP_SUFFIX = re.compile(r"\b[A-Za-z]{0,2}\d{3,4}MX?\b")
# Max-Q in a workstation card's name is a power limit, not a laptop (RTX PRO 6000 Blackwell Max-Q Workstation Edition).
_WORKSTATION_MAX_Q = re.compile(r"\bRTX PRO\b|\bworkstation\b", re.IGNORECASE)
_PCI_ID_ONLY = re.compile(r"\b(?:Device [0-9a-f]{4}|0x[0-9a-f]{3,4})\b", re.IGNORECASE)
_DISPLAY_ONLY = re.compile(
    r"\b(?:U?HD Graphics|Iris|Xe Graphics|Intel\(R\) Graphics|Radeon\(TM\) Graphics|Radeon Graphics|"
    r"Radeon Vega \d+ Graphics|Basic (?:Display|Render)|ASPEED|Matrox|VMware|SVGA|Cirrus|QXL|Virtio|Hyper-V|"
    r"Parsec|Citrix|Bochs|llvmpipe|Cezanne|Renoir|Lucienne|Picasso|Raven|Rembrandt|Phoenix\d?|Hawk Point|Raphael|"
    r"Granite Ridge|Barcelo|Mendocino|Van Gogh|Dragon Range)\b",
    re.IGNORECASE,
)


def is_laptop_name(name: str) -> bool:
    """Returns whether a device name is a laptop part ("Laptop GPU", "Mobile", "Max-Q", "RX 6800M")."""
    if _WORKSTATION_MAX_Q.search(name):
        name = re.sub(r"\bmax-q\b", "", name, flags=re.IGNORECASE)
    return bool(_LAPTOP.search(name) or _LAPTOP_SUFFIX.search(name))


def _close(reported_gb: float, catalog_gb: float) -> bool:
    return abs(reported_gb - catalog_gb) <= max(1.0, MEMORY_TOLERANCE * catalog_gb)


def _candidates(name: str) -> list[str]:
    """Returns the spellings to look up for a device name: as printed, without and with its vendor's words."""
    name = re.sub(r"\s+", " ", name.replace("(R)", "").replace("(TM)", "").replace("®", "").replace("™", "")).strip()
    name = re.sub(r"\s+with Max-Q Design$", " Max-Q", name, flags=re.IGNORECASE)
    bare = _VENDOR_PREFIX.sub("", name)
    out = [name, bare]
    upper = bare.upper()
    if upper.startswith(("RTX ", "GTX ", "GT ")) and not re.match(r"RTX (?:A\d|PRO|\d000 ADA)", upper):
        out += [f"GeForce {bare}", f"NVIDIA GeForce {bare}"]
    elif re.match(r"(?:GEFORCE|QUADRO|TESLA|TITAN|RTX|JETSON|DGX|[ABHLTV]\d|G[BH]\d)", upper):
        out.append(f"NVIDIA {bare}")
    if upper.startswith("RX "):
        out += [f"Radeon {bare}", f"AMD Radeon {bare}"]
    elif upper.startswith(("RADEON", "INSTINCT", "MI")):
        out.append(f"AMD {bare}")
    if upper.startswith("ARC "):
        out.append(f"Intel {bare}")
    # "Tesla M40 24GB" is catalogued as "NVIDIA Tesla M40 24 GB".
    out += [re.sub(r"(\d)\s*GB\b", r"\1 GB", c) for c in out]
    return list(dict.fromkeys(c for c in out if c))


def _alternatives(name: str) -> list[str]:
    """Returns the products a name lists ("Radeon RX 7900 XT/7900 XTX" names two cards on one chip)."""
    if "/" not in name or re.search(r"\bSXM|PCIe/", name):
        return [name]
    parts = [p.strip() for p in name.split("/") if p.strip()]
    first = parts[0].split()
    number = next((i for i, w in enumerate(first) if w[:1].isdigit()), len(first))
    out = [parts[0]]
    for part in parts[1:]:
        out.append(part if not part[:1].isdigit() else " ".join(first[:number] + [part]))
    return out


def _lookup(name: str, memory_gb: float | None) -> GPU | None:
    """Returns the catalog row for one product name; with the reported memory, the variant of that size."""
    candidates = _candidates(name)
    first = next((gpu for c in candidates if (gpu := GPU.objects.resolve(c)) is not None), None)
    if memory_gb is None or (first is not None and _close(memory_gb, first.memory_gb)):
        return first
    # "RTX 3060" is the 12 GB card and "A100 SXM4" no row at all: the size names the variant.
    size = round(memory_gb)
    sized = [f"{c} {size}{space}GB" for c in candidates for space in (" ", "")]
    if first is not None:
        sized.append(f"{first.name} {size} GB")
    for candidate in sized:
        variant = GPU.objects.resolve(candidate)
        if variant is not None and _close(memory_gb, variant.memory_gb):
            return variant
    return first


def match_gpu(parsed: ParsedGPU) -> GPUMatch:
    """Returns the catalog row for one parsed GPU, or why there is none."""
    if parsed.truncated:
        return GPUMatch(reason=f"{parsed.tool} cut the name short; paste `nvidia-smi -L` for the full name")
    if exact := GPU.objects.filter(slug=parsed.name.strip()).first():
        return GPUMatch(gpu=exact)  # a slug names its row outright (the /machine/ query's refs)
    if (apple := parse_apple(parsed.name)) is not None:
        if apple.memory_gb is None and parsed.memory_gb is not None:
            apple = replace(apple, memory_gb=parsed.memory_gb)
        found = match_apple(apple)
        reason = found.reason
        if found.candidates and parsed.tool in (Tool.SYSTEM_PROFILER, Tool.TEXT):
            reason += " (paste the Memory line of system_profiler SPHardwareDataType)"
        return GPUMatch(gpu=found.gpu, reason=reason, note=found.note, candidates=found.candidates)
    found: dict[int, GPU] = {}
    wrong_kind: list[tuple[bool, GPU]] = []
    for alternative in _alternatives(parsed.name):
        gpu = _lookup(alternative, parsed.memory_gb)
        if gpu is None:
            continue
        # A laptop part only ever matches a laptop row, and a desktop name never does.
        laptop = is_laptop_name(alternative)
        if (gpu.segment == Segment.LAPTOP) == laptop:
            found[gpu.pk] = gpu
        else:
            wrong_kind.append((laptop, gpu))
    rows = list(found.values())
    if len(rows) > 1 and parsed.memory_gb is not None:
        rows = [g for g in rows if _close(parsed.memory_gb, g.memory_gb)]
    if len(rows) == 1:
        gpu = rows[0]
        note = ""
        if parsed.memory_gb is not None and not _close(parsed.memory_gb, gpu.memory_gb):
            note = f"reports {parsed.memory_gb:.1f} GB; the catalog row has {gpu.memory_gb:g} GB"
        return GPUMatch(gpu=gpu, note=note)
    return _no_match(parsed, list(found.values()), wrong_kind)


def _no_match(parsed: ParsedGPU, several: list[GPU], wrong_kind: list[tuple[bool, GPU]]) -> GPUMatch:
    """Returns why a parsed GPU matched no single catalog row."""
    if len(several) > 1:
        names = " or ".join(g.name for g in several)
        hint = (
            "" if parsed.memory_gb is not None else "; its memory size would tell (paste rocm-smi --showmeminfo vram)"
        )
        return GPUMatch(reason=f"the name fits {names}{hint}")
    if wrong_kind:
        laptop, gpu = wrong_kind[0]
        if laptop:
            return GPUMatch(reason=f"a laptop part, and the catalog has no laptop row for it (only {gpu.name})")
        return GPUMatch(reason=f"a desktop name that only a laptop row carries ({gpu.name})")
    if _DISPLAY_ONLY.search(parsed.name):
        return GPUMatch(reason="integrated graphics or a display-only adapter", ignored=True)
    if parsed.name == "AMD GPU":
        return GPUMatch(reason="rocm-smi printed no product name; paste rocm-smi --showproductname too")
    if _PCI_ID_ONLY.search(parsed.name):
        return GPUMatch(
            reason=f"{parsed.tool} printed only a PCI device id; paste nvidia-smi -L or rocm-smi "
            "--showproductname for the product name"
        )
    return GPUMatch(reason="no catalog GPU has this name or alias")


def match_machine(parsed: ParsedMachine) -> Machine:
    """Returns the machine ``parsed`` describes with each GPU matched to the catalog and identical GPUs grouped."""
    machine = Machine(ram_gb=parsed.ram_gb, notes=list(parsed.notes))
    gpus = list(parsed.gpus)
    if parsed.apple is not None:
        gpus.append(
            ParsedGPU(
                name=parsed.apple.name,
                memory_gb=parsed.apple.memory_gb,
                tool=Tool.SYSTEM_PROFILER,
                line=parsed.apple.line,
            )
        )
    groups: dict[int, MachineGPU] = {}
    for parsed_gpu in gpus:
        match = match_gpu(parsed_gpu)
        if match.gpu is None:
            target = machine.ignored if match.ignored else machine.unmatched
            target.append(
                UnmatchedGPU(parsed_gpu.name, parsed_gpu.count, match.reason, parsed_gpu.line, match.candidates)
            )
            continue
        group = groups.get(match.gpu.pk)
        if group is None:
            groups[match.gpu.pk] = MachineGPU(
                gpu=match.gpu,
                count=parsed_gpu.count,
                names=(parsed_gpu.name,),
                memory_gb=parsed_gpu.memory_gb,
                note=match.note,
            )
        else:
            groups[match.gpu.pk] = replace(
                group, count=group.count + parsed_gpu.count, names=(*group.names, parsed_gpu.name)
            )
    machine.gpus = list(groups.values())
    return machine


# --- several GPUs named in one box ------------------------------------------------------------------------------

# Why a machine with more than one GPU model gets no estimate; the machine page, the paste page and the API say it so.
MIXED_GPUS = (
    "Mixed GPUs are not estimated: the estimator models one GPU model with a count (a layer or tensor split over "
    "identical cards). Over unequal cards each card runs its share of the layers at its own pace, which it does not "
    "model yet, so any figure would be a guess. Estimate each card alone, or name one GPU model with a count."
)
_LIST_SEPARATOR = re.compile(r"\s*(?:\+|,|;|&|\band\b)\s*", re.IGNORECASE)
_COUNT_BEFORE = re.compile(r"^(\d{1,2})\s*[x×*]\s*(.+)$", re.IGNORECASE)
_COUNT_AFTER = re.compile(r"^(.+?)\s*(?:[x×*]\s*|:\s*)(\d{1,2})$", re.IGNORECASE)


def split_gpu_names(text: str) -> list[tuple[str, int]]:
    """Returns the (name, count) pairs one box lists: "RTX 4090 + 2x RTX 3090" -> [("RTX 4090", 1), ("RTX 3090", 2)].

    Split only a text that matches no GPU as a whole: "AMD Ryzen AI Max+ 395" is one product.
    """
    out = []
    for part in _LIST_SEPARATOR.split(text.strip()):
        if not part:
            continue
        if match := _COUNT_BEFORE.match(part):
            out.append((match.group(2).strip(), int(match.group(1))))
        elif match := _COUNT_AFTER.match(part):
            out.append((match.group(1).strip(), int(match.group(2))))
        else:
            out.append((part, 1))
    return out


# --- the shareable query -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GPURef:
    """One ``gpu=`` parameter of a /machine/ query."""

    ref: str  # a catalog slug, or a device name as a tool printed it
    count: int = 1
    memory_gb: float | None = None


@dataclass(frozen=True)
class MachineQuery:
    """A /machine/ query read: the GPUs, the RAM, and the parts that could not be read."""

    gpus: tuple[GPURef, ...] = ()
    ram_gb: float | None = None
    errors: tuple[str, ...] = ()


def format_query(gpus: Iterable[tuple], ram_gb: float | None) -> str:
    """Returns ``gpu=<ref>:<count>&…&ram=<gb>`` from (ref, count[, memory_gb]) tuples.

    When every GPU's memory is known, one ``vram=<gb>`` per ``gpu`` follows, in the same order, so that a device name
    ("NVIDIA GeForce RTX 3060") reaches the variant of that size. Sizes are whole GB; refs are percent-encoded, the
    colon before the count is not.
    """
    gpus = [(ref, int(count), rest[0] if rest else None) for ref, count, *rest in gpus]
    params = ["gpu=" + quote(f"{ref}:{count}", safe=":") for ref, count, _ in gpus]
    if gpus and all(memory for _, _, memory in gpus):
        params += [f"vram={round(memory)}" for _, _, memory in gpus]
    if ram_gb:
        params.append(f"ram={round(ram_gb)}")
    return "&".join(params)


def _number(value: str, what: str, errors: list[str], limit: float = 65536) -> float | None:
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not 0 < number <= limit:
        errors.append(f"{what}={value}: expected a size in GB")
        return None
    return number


def parse_query(query: str) -> MachineQuery:
    """Returns the GPUs and RAM a /machine/ query names; bad parts are skipped and listed in ``errors``.

    ``gpu=<ref>`` with a separate ``count=<n>`` (one GPU model) is read as ``gpu=<ref>:<n>``.
    """
    params = parse_qs(query.lstrip("?"), keep_blank_values=False)
    values, errors, gpus = params.get("gpu", []), [], []
    if len(values) == 1 and ":" not in values[0] and "count" in params:
        values = [f"{values[0]}:{params['count'][0]}"]
    vram = params.get("vram", [])
    if vram and len(vram) != len(values):
        errors.append(f"{len(vram)} vram values for {len(values)} gpu values: the sizes are ignored")
        vram = []
    for i, value in enumerate(values):
        ref, _, count = value.rpartition(":")
        if not count.isdigit():
            ref, count = value, "1"
        if not ref.strip() or not 1 <= int(count) <= MAX_COUNT:
            errors.append(f"gpu={value}: expected <slug or name>:<count from 1 to {MAX_COUNT}>")
            continue
        memory_gb = _number(vram[i], "vram", errors) if vram else None
        gpus.append(GPURef(ref=ref.strip(), count=int(count), memory_gb=memory_gb))
    ram_gb = _number(params["ram"][0], "ram", errors) if "ram" in params else None
    return MachineQuery(gpus=tuple(gpus), ram_gb=ram_gb, errors=tuple(errors))


def machine_from_query(query: MachineQuery) -> Machine:
    """Returns the machine a /machine/ query names, its refs resolved by the same matcher as a paste."""
    parsed = ParsedMachine(
        gpus=[ParsedGPU(name=g.ref, count=g.count, memory_gb=g.memory_gb, tool=Tool.QUERY) for g in query.gpus],
        ram_gb=query.ram_gb,
    )
    machine = match_machine(parsed)
    machine.notes.extend(query.errors)
    return machine
