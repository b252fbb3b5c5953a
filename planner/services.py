"""The rankings and tables that pages and the API share: the GPU ranking for a model, and the memory table.

The helpers here only shape catalog rows into the estimator's inputs and pick rows out of its answers; every
figure they return is an estimator or catalog figure. The views in ``web/`` and the JSON API call these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from hardware.models import GPU
from models.models import LanguageModel, QuantVRAM
from physics.arch import kv_cache_bytes
from physics.capacity import Capacity, serving_capacity
from physics.estimator import (
    GB,
    Build,
    CalibrationFactor,
    GPUPrep,
    ModelArch,
    Quant,
    Workload,
    find_calibration,
    hardware_class,
    hardware_classes,
    overhead_gb,
    precision_class,
    prepare_gpus,
    rank_gpu_columns,
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
from planner.lookup import recent, remembered

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
    "prefill_tok_s_low",
    "prefill_tok_s_high",
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
    table: Callable[[], pd.DataFrame] = field(repr=False)  # builds ``frame`` when it is read
    chart: dict = field(default_factory=dict)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """Returns every fitting single-card row in order (the recommender's table, the CSV, the API)."""
        return self.table()


def workload_of(data: dict) -> Workload:
    """Returns the estimator's Workload for a cleaned form (the API's recommend passes its engine too)."""
    return Workload(
        context=data["context"],
        batch=data["users"],
        kv_cache=data["kv_cache"],
        backend=data.get("backend", "llama.cpp"),
    )


def calibration_for(backend: str, batch: int, hardware: Iterable[str], precisions: Iterable[str]) -> tuple:
    """Returns the stored calibration rows that can answer for ``backend`` at ``batch`` on these hardware and
    precision classes: the rows find_calibration picks for one of the pairs, in table order; kept per catalog version.

    The estimator looks a factor up once per (hardware class, format) of every model it ranks, and each lookup scans
    the whole table. find_calibration keeps the first of the most specific matches, so a table cut to the rows it
    picks, in their order, gives every lookup the same answer (tests/test_machine_more.py compares the rankings).
    """
    hw = sorted({str(h) for h in hardware})
    prec = sorted({str(p) for p in precisions})

    def narrow() -> tuple[CalibrationFactor, ...]:
        table = calibration_factors()
        picked = {id(find_calibration(backend, h, p, table, batch)) for h in hw for p in prec}
        return tuple(f for f in table if id(f) in picked)

    return remembered("calibration-for", f"{backend}|{batch}|{','.join(hw)}|{','.join(prec)}", narrow)


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
    "engine",
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
    "prefill_tok_s_low",
    "prefill_tok_s_high",
    "ttft_s_low",
    "ttft_s_high",
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

# What the speed-against-price chart reads of a ranking (planner.charts.speed_vs_price).
CHART_COLUMNS = [
    "name",
    "vendor",
    "price_usd",
    "decode_tok_s",
    "decode_tok_s_low",
    "decode_tok_s_high",
    "quant",
    "memory_gb",
    "bandwidth_gb_s",
    "decode_bound",
]

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
    "prefill_tok_s_low": 0,
    "prefill_tok_s_high": 0,
    "ttft_s_low": 2,
    "ttft_s_high": 2,
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


# The GPU columns a ranking's rows carry to the pages, the CSV and the API; the others only feed the estimator.
SHOWN_GPU_COLUMNS = [
    "id",
    "slug",
    "name",
    "vendor",
    "segment",
    "source",
    "memory_gb",
    "bandwidth_gb_s",
    "price_usd",
    "group",
]


def _ranking_frame(data: dict) -> tuple[pd.DataFrame, GPUPrep]:
    """Returns the GPU rows a model page ranks (single cards; with one format also pairs and offload builds), and
    the estimator's per-GPU arrays for them.

    The estimator copies every column of its input frame into its answer; the arrays it computes from are in the
    GPUPrep, so the prep carries only the columns the pages read and the answer is built from those.
    """
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
    prep = prepare_gpus(frame)
    return frame, replace(prep, gpus=frame[[c for c in SHOWN_GPU_COLUMNS if c in frame.columns]])


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


def _numbers(columns: dict[str, np.ndarray], column: str) -> np.ndarray:
    values = columns[column]
    if values.dtype.kind in "fiub":
        return values.astype(float)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=float)


def _order(numbers: dict[str, np.ndarray], index: np.ndarray, how: str) -> np.ndarray:
    """Returns the row positions ``index`` in the order the pages sort GPUs by ``how`` (ties keep their order in
    ``index``; a missing figure last)."""
    if how == "speed":
        keys = [-numbers["decode_tok_s"]]
    elif how == "price":
        keys = [numbers["price_usd"], -numbers["decode_tok_s"]]
    elif how == "value":
        keys = [numbers["usd_per_tok_s"]]
    else:
        # The reference page's order: smallest card that holds the model first, faster first among equals.
        keys = [numbers["memory_gb"], -numbers["decode_tok_s"]]
    # np.lexsort sorts by its last key first and puts NaN last, as pandas does with na_position="last".
    return index[np.lexsort([index, *(k[index] for k in reversed(keys))])]


def _plain(values: np.ndarray) -> list:
    """Returns an array's values as plain Python values, NaN as None."""
    out = values.tolist()
    if values.dtype.kind in "fO":
        out = [None if isinstance(v, float) and v != v else v for v in out]
    return out


def _shown_column(values: list, digits: int) -> list[str]:
    """Returns _show over a column of plain values (None for missing), one format call per cell."""
    spec = f",.{digits}f"
    out = ["—" if v is None else format(float(v), spec) for v in values]
    if digits == 1:
        out = [t[:-2] if t.endswith(".0") else t for t in out]
    return out


def _rows_at(columns: dict[str, np.ndarray], index: np.ndarray, measured: np.ndarray) -> list[dict]:
    """Returns the rows at ``index`` as _records does: dicts of plain values with ``show``, the display texts."""
    names = [*columns, "measured"]
    cells = [_plain(values[index]) for values in columns.values()] + [measured[index].tolist()]
    shown = [k for k in SHOWN if k in columns]
    texts = [_shown_column(cells[names.index(k)], SHOWN[k]) for k in shown]
    per_row_texts = list(zip(*texts, strict=True)) if texts else [()] * len(index)
    rows = []
    for values, show in zip(zip(*cells, strict=True), per_row_texts, strict=True):
        row = dict(zip(names, values, strict=True))
        row["show"] = dict(zip(shown, show, strict=True))
        rows.append(row)
    return rows


def _best_positions(ids: np.ndarray, bits: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Returns, per GPU among ``candidates``, the position of its highest-precision row (the first of equals), in
    _best_per_gpu's order: highest precision first, then the ranking's order."""
    ordered = candidates[np.lexsort((candidates, -bits[candidates]))]
    _, first = np.unique(ids[ordered], return_index=True)
    chosen = ordered[first]
    return chosen[np.lexsort((chosen, -bits[chosen]))]


def gpu_ranking(
    model: LanguageModel, data: dict, measured: list, sort: str = "memory", limit: int = CARD_LIMIT
) -> Ranking:
    """Returns the GPUs that can run ``model`` for a cleaned workload form: single cards, pairs, offload, measured.

    ``measured`` holds the benchmark results to mark (anything with a ``gpu_id``); the caller picks them.
    Filtering and ordering work on numpy arrays of the whole ranking; only the rows a page shows become dicts,
    and only the fitting single cards a frame (for the chart, the CSV and the API).
    """
    arch = model_arch(model)
    workload = workload_of(data)
    quants = _quants_for(model, data)
    _, prep = ranking_frame(data)
    calibration = calibration_for(
        workload.backend, workload.batch, prep.hw_levels, [precision_class(q) for q in quants]
    )
    ranked = rank_gpu_columns(arch, quants, workload, prep, calibration)
    ids = ranked["id"]
    group = ranked["group"]
    fits = ranked["fits"].astype(bool)
    with_offload = ranked["fits_with_offload"].astype(bool)
    numbers = {c: _numbers(ranked, c) for c in ("price_usd", "decode_tok_s", "memory_gb", "usd_per_tok_s")}
    is_measured = np.isin(ids, [r.gpu_id for r in measured])
    keep = np.ones(len(ids), dtype=bool)
    if data.get("budget") is not None:
        price = numbers["price_usd"]
        keep &= ~np.isnan(price) & (price * ranked["count"].astype(float) <= data["budget"])
    if data.get("measured_only"):
        keep &= is_measured

    single = np.flatnonzero(keep & (group == "single") & fits)
    if data["quant"] == BEST:
        single = _best_positions(ids, ranked["bits_per_weight"].astype(float), single)
    # A pair or an offload build is shown only for a card that cannot hold the model alone.
    alone = np.isin(ids, ids[single])
    fitting = _order(numbers, single, sort)
    pairs = _order(numbers, np.flatnonzero(keep & (group == "pair") & fits & ~alone), sort)
    offload = _order(numbers, np.flatnonzero(keep & (group == "offload") & with_offload & ~fits & ~alone), "speed")

    shown = {c: ranked[c] for c in RECORD_COLUMNS if c in ranked and c != "measured"}
    columns = [c for c in RANKING_COLUMNS if c in ranked and c != "measured"]
    # The chart reads ten columns of the fitting rows; the whole table is built only for a caller that reads it.
    plotted = {c: ranked[c][fitting] for c in CHART_COLUMNS}
    return Ranking(
        fits=_rows_at(shown, fitting[:limit], is_measured),
        fit_count=len(fitting),
        two_cards=_rows_at(shown, pairs[:SIDE_LIMIT], is_measured),
        offload=_rows_at(shown, offload[:SIDE_LIMIT], is_measured),
        measured=measured,
        table=lambda: pd.DataFrame({c: ranked[c][fitting] for c in columns}, index=fitting).assign(
            measured=is_measured[fitting]
        ),
        chart=charts.speed_vs_price(plotted),
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

    @cached_property
    def show(self) -> dict[str, str]:
        """Returns the figures as the VRAM table shows them (floatformat's output, without its cost per cell)."""
        bpw = f"{self.row.effective_bpw:.4f}".rstrip("0").rstrip(".")
        return {
            "bits_per_weight": bpw,
            "vram_gb": f"{self.vram_gb:.1f}",
            "quality_pct": "—" if self.row.quality_pct is None else f"{self.row.quality_pct:.0f}%",
            "kv_cache_gb": f"{self.kv_cache_gb:.2f}",
            "total_gb": f"{self.total_gb:.1f}",
        }


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


@dataclass(frozen=True)
class ModelTables:
    """Every catalog model with what the machine and GPU pages read of it, worked out once per catalog version."""

    models: list[LanguageModel]
    archs: list[ModelArch]
    quants: list[list[Quant]]
    by_name: dict[str, LanguageModel]
    urls: dict[str, str]  # model name -> its page
    quality: dict[tuple[str, str], float]  # (model name, format) -> quality %, where the table has one
    precisions: tuple[str, ...]  # the precision classes of every format (the calibration lookups they need)


def model_tables() -> ModelTables:
    """Returns every model with its architecture, formats, page and quality figures, read once per catalog version."""

    def read() -> ModelTables:
        models = list(LanguageModel.objects.with_table())
        quants = [quants_of(m) for m in models]
        return ModelTables(
            models=models,
            archs=[model_arch(m) for m in models],
            quants=quants,
            by_name={m.name: m for m in models},
            urls={m.name: m.get_absolute_url() for m in models},
            quality={
                (m.name, row.quant.name): row.quality_pct
                for m in models
                for row in m.vram_rows.all()
                if row.quality_pct is not None
            },
            precisions=tuple(sorted({precision_class(q) for qs in quants for q in qs})),
        )

    return remembered("model-tables", "all", read)


def _rank_models_on(gpu: GPU, workload: Workload, **build) -> tuple[ModelTables, pd.DataFrame]:
    """Returns the model tables and rank_models over every catalog model on one GPU build.

    Kept for the latest builds and workloads (planner.lookup.recent): one machine's views (sorted, filtered, a
    model's serving capacity opened) rank once. Callers must not change the frame.
    """
    tables = model_tables()
    spec = gpu_spec(gpu)

    def rank() -> pd.DataFrame:
        calibration = calibration_for(workload.backend, workload.batch, [hardware_class(spec)], tables.precisions)
        return rank_models(tables.archs, tables.quants, spec, workload, calibration, **build)

    key = repr((gpu.pk, spec, workload, sorted(build.items())))
    return tables, recent("rank-models", key, rank)


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
    ttft_s_low: float
    ttft_s_high: float
    decode_bound: str
    quality_pct: float | None
    url: str = ""

    @property
    def offload(self) -> bool:
        return self.offloaded_gb > 0

    @cached_property
    def show(self) -> dict[str, str]:
        """Returns each figure as the machine page shows it (formatted here: floatformat costs ~70 us a cell)."""
        return {
            "bits_per_weight": f"{self.bits_per_weight:.2f}",
            "total_gb": f"{self.total_gb:,.1f}",
            "offloaded_gb": f"{self.offloaded_gb:,.1f}",
            "decode_tok_s": f"{self.decode_tok_s:,.1f}",
            "decode_tok_s_low": f"{self.decode_tok_s_low:,.1f}",
            "decode_tok_s_high": f"{self.decode_tok_s_high:,.1f}",
            "ttft_s": f"{self.ttft_s:,.2f}",
            "ttft_s_low": f"{self.ttft_s_low:,.2f}",
            "ttft_s_high": f"{self.ttft_s_high:,.2f}",
            "quality_pct": "—" if self.quality_pct is None else f"{self.quality_pct:.0f} %",
        }


def _first_per_model(codes: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Returns, per model code, the position of its first row when sorted by ``keys`` (most significant first),
    ties in ranking order; the positions come in model-code order."""
    if not len(codes):
        return np.arange(0)
    order = np.lexsort((np.arange(len(codes)), *reversed(keys), codes))
    return order[np.r_[True, codes[order][1:] != codes[order][:-1]]]


def machine_models(gpu: GPU, count: int, ram_gb: float, ram_bandwidth_gb_s: float, workload: Workload) -> list:
    """Returns a MachineModel for every catalog model that runs on ``count`` x ``gpu`` (layer split) with ``ram_gb``
    of system RAM for offload: the highest-precision format that fits on the GPUs, else the one that fits with the
    least offloaded. Models that do not run at all are left out; the rest come in the ranking's order.
    """
    tables, ranked = _rank_models_on(
        gpu,
        workload,
        count=count,
        offload_ram_gb=ram_gb,
        ram_bandwidth_gb_s=ram_bandwidth_gb_s if ram_gb else 0.0,
    )
    if ranked.empty:
        return []
    # One pass over every (model, format) row: per model, the rows that run (on the GPUs when any fits, else with
    # offload), the best of them first (most bits per weight on the GPUs; least offloaded), ties in ranking order.
    codes, names = pd.factorize(ranked["model"], sort=False)
    fits = ranked["fits"].to_numpy(dtype=bool)
    runs = ranked["fits_with_offload"].to_numpy(dtype=bool)
    offloaded = ranked["offloaded_gb"].to_numpy(dtype=float)
    bits = ranked["bits_per_weight"].to_numpy(dtype=float)
    any_fit = np.zeros(len(names), dtype=bool)
    np.logical_or.at(any_fit, codes, fits)
    on_gpu = any_fit[codes]
    usable = np.where(on_gpu, fits, runs)
    first = _first_per_model(codes, ~usable, np.where(on_gpu, -bits, offloaded))
    first = first[usable[first]]
    columns = {
        c: ranked[c].to_numpy()[first].tolist()
        for c in ("model", "quant", "bits_per_weight", "total_gb", "offloaded_gb", "decode_tok_s")
        + ("decode_tok_s_low", "decode_tok_s_high", "ttft_s", "ttft_s_low", "ttft_s_high", "decode_bound")
    }
    out = []
    for i in range(len(first)):
        name, quant = columns["model"][i], columns["quant"][i]
        out.append(
            MachineModel(
                model=tables.by_name[name],
                quant=quant,
                bits_per_weight=float(columns["bits_per_weight"][i]),
                total_gb=float(columns["total_gb"][i]),
                offloaded_gb=float(columns["offloaded_gb"][i]),
                decode_tok_s=float(columns["decode_tok_s"][i]),
                decode_tok_s_low=float(columns["decode_tok_s_low"][i]),
                decode_tok_s_high=float(columns["decode_tok_s_high"][i]),
                ttft_s=float(columns["ttft_s"][i]),
                ttft_s_low=float(columns["ttft_s_low"][i]),
                ttft_s_high=float(columns["ttft_s_high"][i]),
                decode_bound=str(columns["decode_bound"][i]),
                quality_pct=tables.quality.get((name, quant)),
                url=tables.urls[name],
            )
        )
    return out


# The GPU page's table columns and how many decimals each is shown with.
MODEL_ROW_FIGURES = {
    "total_gb": 1,
    "headroom_gb": 1,
    "decode_tok_s": 1,
    "decode_tok_s_low": 1,
    "decode_tok_s_high": 1,
    "prefill_tok_s": 0,
    "ttft_s": 2,
    "ttft_s_low": 2,
    "ttft_s_high": 2,
    "usd_per_million_tokens": 2,
}
MODEL_ROW_COLUMNS = ["model", "quant", *MODEL_ROW_FIGURES, "decode_bound", "fits"]


def _fixed_column(values: list, digits: int) -> list[str]:
    """Returns each figure with a fixed number of decimals ("—" when missing); floatformat, without its cost."""
    text = f"{{:,.{digits}f}}".format
    if not any(v is None or v != v for v in values):
        return list(map(text, values))
    return ["—" if v is None or v != v else text(v) for v in values]


@dataclass
class GPUModels:
    """Every catalog model and format on one GPU (the GPU page's table), and how many of them fit."""

    rows: list[dict]  # MODEL_ROW_COLUMNS, "url" (the model's page) and "show" (each figure as display text)
    fit_count: int
    row_count: int
    chart: dict


def gpu_models(gpu: GPU, workload: Workload, fits_only: bool = True, every_format: bool = False) -> GPUModels:
    """Returns the catalog models on one ``gpu`` at ``workload``: fitting rows first, fastest first, then the rest.

    By default one row per model: its highest-precision format that fits (a model with none that fits, when
    ``fits_only`` is off, shows its smallest format). ``every_format`` lists every (model, format) instead.
    """
    tables, ranked = _rank_models_on(gpu, workload)
    if ranked.empty:
        return GPUModels(rows=[], fit_count=0, row_count=0, chart=charts.speed_by_model(ranked))
    fits = ranked["fits"].to_numpy(dtype=bool)
    if every_format:
        index = np.flatnonzero(fits) if fits_only else np.arange(len(ranked))
        fit_count, row_count = int(fits.sum()), len(ranked)
    else:
        codes, _ = pd.factorize(ranked["model"], sort=False)
        bits = ranked["bits_per_weight"].to_numpy(dtype=float)
        total = ranked["total_gb"].to_numpy(dtype=float)
        # Per model: fitting rows first, the most bits per weight among them; else the smallest format.
        first = _first_per_model(codes, ~fits, np.where(fits, -bits, total))
        index = np.sort(first[fits[first]] if fits_only else first)  # back in the ranking's order
        fit_count, row_count = int(fits[first].sum()), len(first)
    cells = {c: ranked[c].to_numpy()[index].tolist() for c in MODEL_ROW_COLUMNS}
    # A column at a time, and dicts made by zip: a thousand rows of eight figures is most of this function otherwise.
    figures = list(MODEL_ROW_FIGURES)
    texts = [_fixed_column(cells[k], MODEL_ROW_FIGURES[k]) for k in figures]
    shows = [dict(zip(figures, row, strict=True)) for row in zip(*texts, strict=True)]
    urls = [tables.urls.get(name, "") for name in cells["model"]]
    names = [*MODEL_ROW_COLUMNS, "url", "show"]
    rows = [dict(zip(names, values, strict=True)) for values in zip(*cells.values(), urls, shows, strict=True)]
    # The chart reads four columns; handing it only those spares it copying the other fifty.
    plotted = ranked[["model", "quant", "decode_tok_s", "fits"]]
    return GPUModels(rows=rows, fit_count=fit_count, row_count=row_count, chart=charts.speed_by_model(plotted))


def model_capacity(
    model: LanguageModel,
    quant_name: str,
    gpu: GPU,
    count: int,
    context: int,
    min_tok_s: float,
    split: str | None = None,
    offload_ram_gb: float = 0.0,
    ram_bandwidth_gb_s: float = 0.0,
    kv_cache: str = "fp16",
) -> Capacity:
    """Returns the serving capacity (physics.capacity.Capacity) of count x gpu for a catalog model and format.

    ``split`` defaults to a layer split on one GPU and tensor parallel on several (a server's build); the machine
    page passes "layer" and its system RAM, as its other figures assume.
    """
    row = next((r for r in model.vram_rows.all() if r.quant.name == quant_name), None) or model.vram_rows.first()
    build = Build(
        gpu=gpu_spec(gpu),
        count=count,
        split=split or ("layer" if count == 1 else "tensor"),
        offload_ram_gb=offload_ram_gb,
        ram_bandwidth_gb_s=ram_bandwidth_gb_s if offload_ram_gb else 0.0,
    )
    workload = Workload(context=min(context, model.context_length), prompt_tokens=512, kv_cache=kv_cache)
    return serving_capacity(model_arch(model), quant_of(row), build, workload, min_tok_s, calibration_factors())
