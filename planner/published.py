"""Published measurements beside our estimates: the rows of the public measurement set for a model or a GPU.

Each row of ``physics/data/measurements/`` names its GPU and its model (with the Hugging Face repo); the ones that
resolve to catalog rows are shown on the model, GPU and machine pages with their source and date, next to what
the estimator says for the same engine, format, build and depth. Ollama rows are estimated as llama.cpp, the
engine underneath.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from hardware.models import GPU, GPUAlias, Listing
from models.models import LanguageModel, LanguageModelAlias, normalise_alias
from physics.builds import build_problem
from physics.estimator import Build, Quant, Workload, estimate
from physics.fit import ENGINE_FAMILY, ESTIMATED_OTHER_ENGINES, MEASUREMENTS, load_measurements
from planner.calibration import calibration_factors
from planner.inputs import gpu_spec, model_arch, quant_of
from planner.lookup import remembered

METRICS = {"decode_tok_s": "decode tok/s", "prefill_tok_s": "prompt tok/s", "ttft_s": "first token, s"}
# Engines the estimator has calibration rows for (others are shown without an estimate).
ESTIMATED_ENGINES = frozenset({"llama.cpp", *ESTIMATED_OTHER_ENGINES})
MAX_ROWS = 60


@dataclass(frozen=True)
class Published:
    """One published figure and our estimate for the same setup (None when we cannot estimate that setup)."""

    gpu_name: str
    gpu_slug: str
    measured_model: str  # the model the source ran (a base or chat tune of the same shapes may stand in)
    model_name: str
    model_slug: str
    count: int
    split: str
    engine: str
    engine_version: str
    format: str
    context: int
    prompt_tokens: int
    batch: int
    metric: str
    value: float
    source_url: str
    source_date: str
    estimate: float | None

    @property
    def metric_label(self) -> str:
        return METRICS.get(self.metric, self.metric)

    @property
    def ratio(self) -> float | None:
        """Returns estimate / measured (a time metric inverted, so above 1 always means we say faster)."""
        if self.estimate is None or not self.value:
            return None
        if self.metric == "ttft_s":
            return self.value / self.estimate
        return self.estimate / self.value


@lru_cache(maxsize=4)
def _rows(stamp: tuple) -> list[dict]:  # noqa: ARG001 - the file stamp is the cache key
    df = load_measurements()
    df = df[df["metric"].isin(list(METRICS)) & (df["set_aside"] == "")]
    return df.to_dict("records")


def measurement_rows() -> list[dict]:
    """Returns the set's rows of the shown metrics, re-read when a file of the set changes."""
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(MEASUREMENTS.glob("*.csv")))
    return _rows(stamp)


def _model_index() -> dict[str, LanguageModel]:
    """Returns catalog models by lower-cased repo id, name, slug and alias: the names the set's rows use."""
    models = {m.pk: m for m in LanguageModel.objects.with_table()}
    index: dict[str, LanguageModel] = {}
    for alias in LanguageModelAlias.objects.values_list("normalised", "model_id"):
        index[alias[0]] = models[alias[1]]
    for m in models.values():
        for key in (m.hf_repo, m.name, m.slug):
            if key:
                index[normalise_alias(key)] = m
    return index


def _gpu_index() -> dict[str, GPU]:
    """Returns catalog GPUs by lower-cased name, slug and alias (a duplicate row's names lead to the row kept)."""
    gpus = {g.pk: g for g in GPU.objects.all()}
    index: dict[str, GPU] = {}
    for g in gpus.values():
        if g.listing != Listing.DUPLICATE:
            index[normalise_alias(g.name)] = g
            index[g.slug] = g
    for key, gpu_id in GPUAlias.objects.values_list("normalised", "gpu_id"):
        index.setdefault(key, gpus[gpu_id])
    return index


def _resolved() -> list[tuple[dict, LanguageModel, GPU]]:
    """Returns (row, catalog model, catalog GPU) for every row whose model and GPU are both in the catalog.

    Exact names only (repo id, name, slug or alias, any case): a measurement is shown where it surely belongs.
    """

    def build() -> list[tuple[dict, LanguageModel, GPU]]:
        models, gpus = _model_index(), _gpu_index()
        out = []
        for row in measurement_rows():
            keys = (str(row.get("model_hf_repo") or ""), str(row.get("model") or ""))
            model = next((models[k] for k in map(normalise_alias, keys) if k in models), None)
            gpu = gpus.get(normalise_alias(str(row.get("gpu") or "")))
            if model is not None and gpu is not None:
                out.append((row, model, gpu))
        return out

    return remembered("published", "all", build)


def _int(value, default: int = 0) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(number) else int(number)


def _quant(model: LanguageModel, row: dict) -> Quant:
    wanted = str(row.get("format") or "").lower()
    for vram in model.vram_rows.all():
        if vram.quant.name.lower() == wanted:
            return quant_of(vram)
    engine = ENGINE_FAMILY.get(row["engine"], row["engine"])
    kind = "gguf" if engine == "llama.cpp" else "torch"
    return Quant(name=str(row.get("format") or "?"), bits_per_weight=float(row["bits_per_weight"]), kind=kind)


def _estimate(row: dict, model: LanguageModel, gpu: GPU) -> float | None:
    engine = ENGINE_FAMILY.get(row["engine"], row["engine"])
    split = str(row.get("split") or "none")
    if engine not in ESTIMATED_ENGINES or split == "row":
        return None
    count = max(_int(row.get("gpu_count"), 1), 1)
    split = "tensor" if split == "tensor" else "layer"
    arch = model_arch(model)
    quant = _quant(model, row)
    if build_problem(arch, quant.kind, quant.name, count, split):
        return None
    prompt = _int(row.get("prompt_tokens"))
    workload = Workload(
        context=max(_int(row.get("context")), prompt, 1),
        prompt_tokens=max(prompt, 1),
        batch=max(_int(row.get("batch"), 1), 1),
        backend=engine,
    )
    result = estimate(arch, quant, Build(gpu_spec(gpu), count=count, split=split), workload, calibration_factors())
    # A batched decode row is the batch's aggregate rate (the set's convention).
    decode = result.decode_tok_s_aggregate if workload.batch > 1 else result.decode_tok_s
    figure = {"decode_tok_s": decode, "prefill_tok_s": result.prefill_tok_s, "ttft_s": result.ttft_s}
    value = figure[row["metric"]]
    return float(value) if math.isfinite(value) and value > 0 else None


def _published(row: dict, model: LanguageModel, gpu: GPU) -> Published:
    return Published(
        gpu_name=gpu.name,
        gpu_slug=gpu.slug,
        measured_model=str(row.get("model") or model.name),
        model_name=model.name,
        model_slug=model.slug,
        count=max(_int(row.get("gpu_count"), 1), 1),
        split=str(row.get("split") or "none"),
        engine=str(row["engine"]),
        engine_version=str(row.get("engine_version") or ""),
        format=str(row.get("format") or ""),
        context=_int(row.get("context")),
        prompt_tokens=_int(row.get("prompt_tokens")),
        batch=max(_int(row.get("batch"), 1), 1),
        metric=str(row["metric"]),
        value=float(row["value"]),
        source_url=str(row["source_url"]),
        source_date=str(row.get("source_date") or ""),
        estimate=_estimate(row, model, gpu),
    )


def _order(p: Published) -> tuple:
    return (list(METRICS).index(p.metric), p.count, p.gpu_name, p.format, p.context, p.prompt_tokens)


def _shape(model: LanguageModel) -> tuple:
    return (model.total_params, model.active_params, model.layers, model.hidden_size)


def for_model(model: LanguageModel, limit: int = MAX_ROWS) -> list[Published]:
    """Returns the published figures of this model, or of a model of the same shapes (a base and its chat tune
    run alike), on catalog GPUs, each beside our estimate for this model."""

    def build() -> list[Published]:
        shape = _shape(model)
        rows = [(r, g) for r, m, g in _resolved() if m.pk == model.pk or _shape(m) == shape]
        return sorted((_published(r, model, g) for r, g in rows[:limit]), key=_order)

    return remembered("published-model", str(model.pk), build)


def for_gpu(gpu: GPU, limit: int = MAX_ROWS) -> list[Published]:
    """Returns the published figures measured on this GPU (alone or several of it), each beside our estimate."""

    def build() -> list[Published]:
        rows = [(r, m) for r, m, g in _resolved() if g.pk == gpu.pk]
        return sorted((_published(r, m, gpu) for r, m in rows[:limit]), key=_order)

    return remembered("published-gpu", str(gpu.pk), build)
