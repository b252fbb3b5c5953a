"""The rankings and tables that pages and the API share: the GPU ranking for a model, and the memory table.

The helpers here only shape catalog rows into the estimator's inputs and pick rows out of its answers; every
figure they return is an estimator or catalog figure. The views in ``web/`` and the JSON API call these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hardware.models import GPU
from models.models import LanguageModel, QuantVRAM
from physics.capacity import serving_capacity
from physics.estimator import (
    GB,
    Build,
    GPUPrep,
    ModelArch,
    Workload,
    hardware_classes,
    kv_cache_bytes,
    overhead_gb,
    prepare_gpus,
    rank_gpus,
    rank_models,
    table_vram_gb,
    weights_bytes,
)
from planner import charts
from planner.calibration import calibration_factors
from planner.forms import (
    BEST,
    DEFAULT_RAM_BANDWIDTH_GB_S,
    DEFAULT_RAM_GB,
)
from planner.inputs import catalog_frame, gpu_spec, model_arch, quant_of, quants_of
from planner.lookup import remembered

# Cards shown on the model page and rows in the recommender/planner tables; the rest are counted, not rendered,
# so the page stays fast whatever the catalog size.
CARD_LIMIT = 36
SIDE_LIMIT = 12  # pairs and offload builds
TABLE_LIMIT = 100
# The reference page's four formats, shown first on every model page.
REFERENCE_FORMATS = ("Q4_K_M", "Q6_K", "Q8_0", "fp16")
# What the CSV download carries, in order.
CSV_COLUMNS = [
    "name",
    "vendor",
    "segment",
    "memory_gb",
    "bandwidth_gb_s",
    "quant",
    "bits_per_weight",
    "total_gb",
    "headroom_gb",
    "decode_tok_s",
    "decode_tok_s_low",
    "decode_tok_s_high",
    "prefill_tok_s",
    "decode_bound",
    "price_usd",
    "usd_per_tok_s",
    "usd_per_million_tokens",
]


# ----------------------------------------------------------------------------------------------------------
# Shared by the model page, the recommender and the planner


@dataclass
class Ranking:
    """The GPU list for one model and workload, split the way the pages show it."""

    fits: list[dict]  # single cards that hold the whole model, in the chosen order, at most CARD_LIMIT
    fit_count: int  # how many single cards fit (before the limit)
    two_cards: list[dict]  # curated cards that fit only as a pair (layer split)
    offload: list[dict]  # curated cards that fit only with CPU offload
    measured: list  # benchmark results on catalog GPUs for this model (their gpu_id marks the cards)
    frame: pd.DataFrame  # every fitting single-card row (for charts and CSV)
    chart: dict = field(default_factory=dict)


def workload_of(data: dict) -> Workload:
    """Returns the estimator's Workload for a cleaned form (the API's recommend passes its engine too)."""
    return Workload(
        context=data["context"],
        batch=data["users"],
        kv_cache=data["kv_cache"],
        backend=data.get("backend", "llama.cpp"),
    )


# The catalog frame, rebuilt only when the GPU table changes: building it from 2,500 rows costs more than the
# rest of a model page, and the table changes only when an editor saves or load_catalog runs.
def cached_catalog_frame() -> pd.DataFrame:
    """Returns the whole catalog as the estimator's frame, re-read only when the catalog fingerprint changes."""
    return remembered("frame", "catalog", _classified_catalog_frame)


def _classified_catalog_frame() -> pd.DataFrame:
    """Returns the catalog frame with each GPU's calibration hardware class worked out once."""
    frame = catalog_frame()
    frame["hardware_class"] = hardware_classes(frame)
    return frame


def gpu_frame_for(data: dict, queryset=None) -> pd.DataFrame:
    """Returns the catalog frame narrowed by vendor/segment, priced by the chosen basis (a copy: callers may edit)."""
    frame = cached_catalog_frame() if queryset is None else catalog_frame(queryset)
    mask = pd.Series(True, index=frame.index)
    if data.get("vendor"):
        mask &= frame["vendor"] == data["vendor"]
    if data.get("segment"):
        mask &= frame["segment"] == data["segment"]
    frame = frame[mask].copy()
    if data.get("price_basis") == "launch":
        # New at launch price where known; a card that only has a street price keeps it.
        frame["price_usd"] = frame["launch_price_usd"].where(
            frame["launch_price_usd"].notna(), frame["street_price_usd"]
        )
    return frame


def _quants_for(model: LanguageModel, data: dict) -> list:
    if data["quant"] == BEST:
        return [quant_of(row) for row in model.vram_rows.all()]
    return [quant_of(data["quant_row"])]


def _best_per_gpu(ranked: pd.DataFrame) -> pd.DataFrame:
    """Returns one row per GPU: the highest-precision format that fits (or the smallest if none does)."""
    ordered = ranked.sort_values(["fits", "bits_per_weight"], ascending=[False, False], kind="stable")
    fitting = ordered[ordered["fits"]].drop_duplicates("id")
    rest = ranked[~ranked["id"].isin(fitting["id"])].sort_values("bits_per_weight", kind="stable")
    return pd.concat([fitting, rest.drop_duplicates("id")], ignore_index=True)


def _sort(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    if how == "speed":
        return frame.sort_values("decode_tok_s", ascending=False, kind="stable")
    if how == "price":
        return frame.sort_values(["price_usd", "decode_tok_s"], ascending=[True, False], na_position="last")
    if how == "value":
        return frame.sort_values("usd_per_tok_s", ascending=True, na_position="last", kind="stable")
    # The reference page's order: smallest card that holds the model first, faster first among equals.
    return frame.sort_values(["memory_gb", "decode_tok_s"], ascending=[True, False], kind="stable")


# Columns the cards and tables read; converting only these keeps row->dict conversion cheap.
RECORD_COLUMNS = [
    "id",
    "slug",
    "name",
    "vendor",
    "segment",
    "source",
    "memory_gb",
    "bandwidth_gb_s",
    "quant",
    "bits_per_weight",
    "count",
    "split",
    "fits",
    "fits_with_offload",
    "total_gb",
    "usable_gb",
    "headroom_gb",
    "offloaded_gb",
    "decode_tok_s",
    "decode_tok_s_aggregate",
    "decode_tok_s_low",
    "decode_tok_s_high",
    "prefill_tok_s",
    "ttft_s",
    "decode_bound",
    "prefill_bound",
    "price_usd",
    "usd_per_tok_s",
    "usd_per_million_tokens",
    "measured",
    "total_price_usd",
    "total_tdp_w",
]
RANKING_COLUMNS = list(
    dict.fromkeys([*RECORD_COLUMNS, *CSV_COLUMNS, "group", "weights_gb", "kv_cache_gb", "overhead_gb", "max_context"])
)

# How many decimals each figure is shown with ("-" = none when whole); see _show.
SHOWN = {
    "memory_gb": 1,
    "bandwidth_gb_s": 0,
    "total_gb": 1,
    "usable_gb": 1,
    "headroom_gb": 1,
    "offloaded_gb": 1,
    "decode_tok_s": 1,
    "decode_tok_s_aggregate": 1,
    "decode_tok_s_low": 1,
    "decode_tok_s_high": 1,
    "prefill_tok_s": 0,
    "ttft_s": 2,
    "price_usd": 0,
    "usd_per_tok_s": 0,
    "usd_per_million_tokens": 2,
    "total_price_usd": 0,
    "total_tdp_w": 0,
}


def _show(value: object, digits: int) -> str:
    """Returns a figure as text with thousands separators ("—" for missing); trailing ".0" dropped."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    text = f"{float(value):,.{digits}f}"
    return text[:-2] if digits == 1 and text.endswith(".0") else text


def _records(frame: pd.DataFrame, limit: int) -> list[dict]:
    """Returns the first ``limit`` rows as dicts (NaN as None), with ``show``: each figure as display text."""
    columns = [c for c in RECORD_COLUMNS if c in frame.columns]
    head = frame.iloc[:limit]
    # One conversion per column block, then plain Python values: cheaper than a Series per column.
    table = head[columns].to_numpy(dtype=object)
    shown = [(k, d) for k, d in SHOWN.items() if k in columns]
    rows = []
    for values in table:
        row = {}
        for k, v in zip(columns, values, strict=True):
            if isinstance(v, float) and v != v:
                v = None
            elif hasattr(v, "item"):
                v = v.item()
            row[k] = v
        row["show"] = {k: _show(row[k], d) for k, d in shown}
        rows.append(row)
    return rows


def _ranking_frame(data: dict) -> tuple[pd.DataFrame, GPUPrep]:
    """Returns the GPU rows a model page ranks (single cards; with one format also pairs and offload builds)."""
    frame = gpu_frame_for(data).assign(group="single", count=1, offload_ram_gb=0.0, ram_bandwidth_gb_s=0.0)
    if data["quant"] != BEST:
        # Pairs and CPU offload only for curated cards: they carry prices, and they are what people buy.
        # All three groups go through the estimator in one call.
        curated = frame[frame["source"] == "curated"]
        ram_gb = data.get("ram_gb") or DEFAULT_RAM_GB
        ram_bw = data.get("ram_bandwidth_gb_s") or DEFAULT_RAM_BANDWIDTH_GB_S
        frame = pd.concat(
            [
                frame,
                curated.assign(group="pair", count=2, split="layer"),
                curated.assign(group="offload", offload_ram_gb=ram_gb, ram_bandwidth_gb_s=ram_bw),
            ],
            ignore_index=True,
        )
    return frame, prepare_gpus(frame)


def ranking_frame(data: dict) -> tuple[pd.DataFrame, GPUPrep]:
    """Returns _ranking_frame(data), kept per catalog version for the unfiltered default (most page views).

    Filtered or custom-RAM variants are built per request, so the per-process cache stays a few entries.
    """
    custom_ram = data.get("ram_gb") not in (None, DEFAULT_RAM_GB) or data.get("ram_bandwidth_gb_s") not in (
        None,
        DEFAULT_RAM_BANDWIDTH_GB_S,
    )
    if data.get("vendor") or data.get("segment") or custom_ram:
        return _ranking_frame(data)
    key = f"{data.get('price_basis') or 'street'}|{'best' if data['quant'] == BEST else 'one'}"
    return remembered("ranking-frame", key, lambda: _ranking_frame(data))


def gpu_ranking(
    model: LanguageModel, data: dict, measured: list, sort: str = "memory", limit: int = CARD_LIMIT
) -> Ranking:
    """Returns the GPUs that can run ``model`` for a cleaned workload form: single cards, pairs, offload, measured.

    ``measured`` holds the benchmark results to mark (anything with a ``gpu_id``); the caller picks them.
    """
    arch = model_arch(model)
    workload = workload_of(data)
    calibration = calibration_factors()
    quants = _quants_for(model, data)
    frame, prep = ranking_frame(data)
    ranked = rank_gpus(arch, quants, frame, workload, calibration, prep=prep)
    measured_ids = {r.gpu_id for r in measured}
    # Masks over the whole ranking in numpy; only the rows a page shows are copied out of the frame.
    ids = ranked["id"].to_numpy()
    group = ranked["group"].to_numpy()
    fits = ranked["fits"].to_numpy(dtype=bool)
    is_measured = np.isin(ids, list(measured_ids))
    keep = np.ones(len(ranked), dtype=bool)
    if data.get("budget") is not None:
        price = pd.to_numeric(ranked["price_usd"], errors="coerce").to_numpy(dtype=float)
        keep &= ~np.isnan(price) & (price * ranked["count"].to_numpy(dtype=float) <= data["budget"])
    if data.get("measured_only"):
        keep &= is_measured
    columns = [c for c in RANKING_COLUMNS if c in ranked.columns and c != "measured"]

    def rows(mask: np.ndarray) -> pd.DataFrame:
        index = np.flatnonzero(mask)
        return ranked[columns].take(index).assign(measured=is_measured[index])

    single_mask = keep & (group == "single")
    if data["quant"] == BEST:
        single = _best_per_gpu(rows(single_mask))
        fitting = _sort(single[single["fits"]], sort)
        alone = np.isin(ids, single.loc[single["fits"], "id"].to_numpy())
    else:
        fitting = _sort(rows(single_mask & fits), sort)
        alone = np.isin(ids, ids[single_mask & fits])
    # A pair or an offload build is shown only for a card that cannot hold the model alone.
    pairs = rows(keep & (group == "pair") & fits & ~alone)
    with_offload = ranked["fits_with_offload"].to_numpy(dtype=bool)
    offload = rows(keep & (group == "offload") & with_offload & ~fits & ~alone)
    two_cards = _records(_sort(pairs, sort), SIDE_LIMIT)
    offloaded = _records(_sort(offload, "speed"), SIDE_LIMIT)

    return Ranking(
        fits=_records(fitting, limit),
        fit_count=len(fitting),
        two_cards=two_cards,
        offload=offloaded,
        measured=measured,
        frame=fitting,
        chart=charts.speed_vs_price(fitting),
    )


@dataclass
class MemoryRow:
    """One format of a model's VRAM table at the visitor's context."""

    row: QuantVRAM
    reference: bool
    vram_gb: float  # the table figure: stored when present, else the reference rule over the weight size
    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float
    total_gb: float  # weights + KV cache + runtime overhead: what the GPU list checks against


def memory_table(model: LanguageModel, arch: ModelArch, workload: Workload) -> list[MemoryRow]:
    """Returns the VRAM table rows, the reference formats first, each with the KV cache at the workload's context."""
    kv_gb = kv_cache_bytes(arch, workload.context, workload.batch, workload.kv_cache) / GB
    over_gb = overhead_gb(arch, workload)
    out = []
    for row in model.vram_rows.all():
        quant = quant_of(row)
        w_bytes = weights_bytes(arch, quant)
        stored = row.vram_gb
        # The reference rule (params x bpw / 8 + 0.5 GB) applied to this row's weight size.
        vram = stored if stored is not None else table_vram_gb(arch.total_params, w_bytes * 8 / arch.total_params)
        w_gb = w_bytes / GB
        out.append(
            MemoryRow(
                row=row,
                reference=row.quant.name in REFERENCE_FORMATS,
                vram_gb=vram,
                weights_gb=w_gb,
                kv_cache_gb=kv_gb,
                overhead_gb=over_gb,
                total_gb=w_gb + kv_gb + over_gb,
            )
        )
    order = {name: i for i, name in enumerate(REFERENCE_FORMATS)}
    return sorted(out, key=lambda m: (not m.reference, order.get(m.row.quant.name, 0)))


# ----------------------------------------------------------------------------------------------------------
# What a machine can run


def model_tables() -> tuple[list[LanguageModel], list[ModelArch], list[list]]:
    """Returns every model with its architecture and formats, read once per catalog version."""

    def read():
        models = list(LanguageModel.objects.with_table())
        return models, [model_arch(m) for m in models], [quants_of(m) for m in models]

    return remembered("model-tables", "all", read)


@dataclass
class MachineModel:
    """The best way one catalog model runs on a machine: its format, memory, speed, and whether it offloads."""

    model: LanguageModel
    quant: str
    bits_per_weight: float
    total_gb: float
    offloaded_gb: float
    decode_tok_s: float
    decode_tok_s_low: float
    decode_tok_s_high: float
    ttft_s: float
    decode_bound: str
    quality_pct: float | None

    @property
    def offload(self) -> bool:
        return self.offloaded_gb > 0


def machine_models(gpu: GPU, count: int, ram_gb: float, ram_bandwidth_gb_s: float, workload: Workload) -> list:
    """Returns a MachineModel for every catalog model that runs on ``count`` x ``gpu`` (layer split) with ``ram_gb``
    of system RAM for offload: the highest-precision format that fits on the GPUs, else the best one that fits
    with offload. Models that do not run at all are left out.
    """
    models, archs, quants = model_tables()
    ranked = rank_models(
        archs,
        quants,
        gpu_spec(gpu),
        workload,
        calibration_factors(),
        count=count,
        offload_ram_gb=ram_gb,
        ram_bandwidth_gb_s=ram_bandwidth_gb_s if ram_gb else 0.0,
    )
    by_name = {m.name: m for m in models}
    quality = {
        (row.model_id, row.quant.name): row.quality_pct
        for m in models
        for row in m.vram_rows.all()
        if row.quality_pct is not None
    }
    ranked = ranked.assign(bpw=[q.bits_per_weight for q in _quant_objects(ranked, quants, archs)])
    out = []
    for name, rows in ranked.groupby("model", sort=False):
        on_gpu = rows[rows["fits"].astype(bool)]
        chosen = on_gpu if len(on_gpu) else rows[rows["fits_with_offload"].astype(bool)]
        if chosen.empty:
            continue
        # On the GPUs: the most precise format that fits; with offload: the one that offloads least.
        best = chosen.sort_values("bpw", ascending=False) if len(on_gpu) else chosen.sort_values("offloaded_gb")
        r = best.iloc[0]
        model = by_name[name]
        out.append(
            MachineModel(
                model=model,
                quant=r["quant"],
                bits_per_weight=float(r["bpw"]),
                total_gb=float(r["total_gb"]),
                offloaded_gb=float(r["offloaded_gb"]),
                decode_tok_s=float(r["decode_tok_s"]),
                decode_tok_s_low=float(r["decode_tok_s_low"]),
                decode_tok_s_high=float(r["decode_tok_s_high"]),
                ttft_s=float(r["ttft_s"]),
                decode_bound=str(r["decode_bound"]),
                quality_pct=quality.get((model.pk, r["quant"])),
            )
        )
    return out


def _quant_objects(ranked: pd.DataFrame, quants: list[list], archs: list[ModelArch]) -> list:
    """Returns the Quant of every ranked row, by model name and format name."""
    lookup = {(a.name, q.name): q for a, qs in zip(archs, quants, strict=True) for q in qs}
    return [lookup[(m, q)] for m, q in zip(ranked["model"], ranked["quant"], strict=True)]


def model_capacity(model: LanguageModel, quant_name: str, gpu: GPU, count: int, context: int, min_tok_s: float):
    """Returns the serving capacity (physics.capacity.Capacity) of count x gpu for a catalog model and format."""
    row = next((r for r in model.vram_rows.all() if r.quant.name == quant_name), None) or model.vram_rows.first()
    build = Build(gpu=gpu_spec(gpu), count=count, split="layer" if count == 1 else "tensor")
    workload = Workload(context=min(context, model.context_length), prompt_tokens=512)
    return serving_capacity(model_arch(model), quant_of(row), build, workload, min_tok_s, calibration_factors())
