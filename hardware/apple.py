"""Apple Silicon Macs by the names people type: "M2 Max", "M4 Pro 48GB", "Mac Studio M2 Ultra 192GB".

The catalog keeps one row per configuration of a chip (GPU cores and unified memory), named like
"Apple M2 Max (38-core GPU) 64 GB". ``parse_apple(text)`` reads a typed or printed name into an ``AppleName``
(chip, and the GPU cores and memory when given); ``match_apple`` returns the one row it means, or, when the name
fits several configurations ("M2 Max" comes with 32, 64 or 96 GB), those candidates and why it cannot choose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hardware.models import GPU, Listing, Vendor

# Product words that may come before the chip ("Mac Studio M2 Ultra", "MacBook Pro 16-inch M3 Max (2023)").
_PRODUCT = r"(?:(?:macbook (?:pro|air)|mac studio|mac mini|mac pro|imac|mac)(?: \d{2}(?: inch)?)? )?"
_CORES = r"(?: (?P<{name}>\d{{1,3}}) core(?: gpu)?)?"
# The whole name must be Apple words: "Tesla M6" or "Quadro M2000" never reads as a Mac.
_APPLE = re.compile(
    r"^(?:apple )?"
    + _PRODUCT
    + r"(?:apple )?m(?P<generation>[1-9])(?: (?P<tier>pro|max|ultra))?(?: with)?"
    + _CORES.format(name="cores")
    + r"(?: (?P<memory>\d{1,4}(?:\.\d+)?) ?(?:gb|gib)(?: (?:of )?(?:unified )?(?:memory|ram))?)?"
    + _CORES.format(name="cores_after")
    + r"$"
)


@dataclass(frozen=True)
class AppleName:
    """A Mac named by its chip: "Apple M2 Max", with the GPU cores and unified memory (GB) when the name gives them."""

    chip: str
    gpu_cores: int | None = None
    memory_gb: float | None = None


def _normalise(text: str) -> str:
    text = text.lower().replace("”", " inch").replace('"', " inch")
    text = re.sub(r"[(),_/]|-(?!core)", " ", text)  # "apple-m2-max-64-gb", "(38-core GPU)"
    text = re.sub(r"(\d)-?(core)", r"\1 \2", text)
    text = re.sub(r"(\d)(gb|gib|inch)\b", r"\1 \2", text)
    text = re.sub(r"\b20[1-3]\d\b(?! ?gi?b)", " ", text)  # a model year ("MacBook Pro M3 Max (2023)")
    return re.sub(r"\s+", " ", text).strip()


def parse_apple(text: str) -> AppleName | None:
    """Returns the Mac a name means ("M4 Pro 48GB" -> Apple M4 Pro, 48 GB), or None when it is not a Mac's name."""
    match = _APPLE.match(_normalise(text))
    if match is None:
        return None
    tier = f" {match.group('tier').title()}" if match.group("tier") else ""
    cores = match.group("cores") or match.group("cores_after")
    memory = match.group("memory")
    return AppleName(
        chip=f"Apple M{match.group('generation')}{tier}",
        gpu_cores=int(cores) if cores else None,
        memory_gb=float(memory) if memory else None,
    )


@dataclass(frozen=True)
class AppleMatch:
    """The catalog row a Mac's name means; else why not, and the configurations it could mean."""

    gpu: GPU | None = None
    candidates: tuple[GPU, ...] = ()
    reason: str = ""
    note: str = ""


def configurations(chip: str) -> list[GPU]:
    """Returns the catalog's configurations of an Apple chip, smallest memory first."""
    rows = GPU.objects.filter(vendor=Vendor.APPLE, name__istartswith=f"{chip} (").exclude(listing=Listing.DUPLICATE)
    return list(rows.order_by("memory_gb", "name"))


def _has_cores(gpu: GPU, cores: int) -> bool:
    return f"({cores}-core GPU)" in gpu.name


def _cores_of(gpu: GPU) -> int:
    found = re.search(r"\((\d+)-core GPU\)", gpu.name)
    return int(found.group(1)) if found else 0


def _sizes(rows: list[GPU]) -> str:
    return ", ".join(f"{size:g}" for size in sorted({r.memory_gb for r in rows}))


def match_apple(name: AppleName) -> AppleMatch:
    """Returns the one configuration ``name`` means, or the candidates when its chip comes in several."""
    chip, cores, memory_gb = name.chip, name.gpu_cores, name.memory_gb
    rows = configurations(chip)
    if not rows:
        return AppleMatch(reason=f"the catalog has no {chip} row")
    with_cores = [r for r in rows if cores is not None and _has_cores(r, cores)]
    if memory_gb is None:
        pool = with_cores or rows
        if len(pool) == 1:
            return AppleMatch(gpu=pool[0])
        if len({r.memory_gb for r in pool}) > 1:
            return AppleMatch(
                candidates=tuple(pool),
                reason=f"{chip} comes with several memory sizes ({_sizes(pool)} GB); say which, e.g. "
                f'"{chip.removeprefix("Apple ")} {pool[-1].memory_gb:g}GB"',
            )
        memory_gb = pool[0].memory_gb
    sized = [r for r in rows if abs(r.memory_gb - memory_gb) < 0.5]
    if not sized:
        return AppleMatch(
            candidates=tuple(rows), reason=f"the catalog has {chip} with {_sizes(rows)} GB, not {memory_gb:g} GB"
        )
    exact = sorted((r for r in sized if cores is None or _has_cores(r, cores)), key=_cores_of)
    if len(exact) > 1:
        # Same chip and memory, more than one GPU core count (M4 Pro 24 GB: 16 or 20 cores): same memory size and
        # bandwidth, so the fit and the decode speed agree; the smaller GPU is the cautious choice.
        others = " or ".join(r.name for r in exact[1:])
        return AppleMatch(gpu=exact[0], note=f"the GPU core count was not given; {exact[0].name} (not {others})")
    if exact:
        return AppleMatch(gpu=exact[0])
    return AppleMatch(
        gpu=sized[0],
        note=f"this Mac reports {cores} GPU cores; the catalog row for {memory_gb:g} GB is {sized[0].name}",
    )
