"""Catalog rows -> the estimator's plain inputs. The only place that knows both sides."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from hardware.models import GPU
from models.models import LanguageModel, QuantVRAM
from physics.estimator import GPUSpec, ModelArch, Quant

# GPU fields the ranking needs; one query with .values() instead of model instances.
GPU_VALUE_FIELDS = [
    "id",
    "slug",
    "name",
    "vendor",
    "segment",
    "memory_gb",
    "memory_bandwidth_gb_s",
    "fp16_tensor_tflops",
    "fp32_tflops",
    "int8_tops",
    "fp8_tflops",
    "tdp_w",
    "launch_price_usd",
    "street_price_usd",
    "cloud_price_usd_hr",
    "unified_memory",
    "gpu_memory_share",
    "nvlink_gb_s",
    "pcie_gen",
    "memory_type",
    "source",
    "release_date",
]


def model_arch(model: LanguageModel) -> ModelArch:
    """Returns the estimator's view of a catalog model."""
    return model.arch()


def quant_of(row: QuantVRAM) -> Quant:
    """Returns the estimator's view of one VRAM-table row (the real file size wins when published)."""
    published = row.file_bytes if row.source and not row.source.startswith("computed") else None
    return Quant(name=row.quant.name, bits_per_weight=row.effective_bpw, kind=row.quant.kind, weight_bytes=published)


def quants_of(model: LanguageModel) -> list[Quant]:
    """Returns every format of a model's VRAM table, in table order (uses prefetched rows when present)."""
    return [quant_of(row) for row in model.vram_rows.all()]


def gpu_spec(gpu: GPU | dict) -> GPUSpec:
    """Returns the estimator's view of a catalog GPU (an instance or a .values() dict)."""
    get = gpu.get if isinstance(gpu, dict) else (lambda k: getattr(gpu, k))
    return GPUSpec(
        name=get("name"),
        vendor=get("vendor"),
        segment=get("segment"),
        memory_gb=get("memory_gb"),
        bandwidth_gb_s=get("memory_bandwidth_gb_s"),
        fp16_tflops=get("fp16_tensor_tflops"),
        fp32_tflops=get("fp32_tflops"),
        int8_tops=get("int8_tops"),
        fp8_tflops=get("fp8_tflops"),
        tdp_w=get("tdp_w"),
        price_usd=gpu.get("price") if isinstance(gpu, dict) else gpu.price_usd,
        unified_memory=get("unified_memory"),
        gpu_memory_share=get("gpu_memory_share"),
        nvlink_gb_s=get("nvlink_gb_s"),
        pcie_gen=get("pcie_gen"),
        memory_type=get("memory_type") or "",
    )


def gpu_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Returns a DataFrame in the estimator's GPUSpec columns (plus id, slug, source) from GPU .values() rows.

    The rows carry the ``price`` annotation (GPU.objects.with_price()), the one price rule.
    """
    df = pd.DataFrame.from_records(list(rows), columns=[*GPU_VALUE_FIELDS, "price"])
    df = df.rename(columns={"memory_bandwidth_gb_s": "bandwidth_gb_s", "fp16_tensor_tflops": "fp16_tflops"})
    df["price_usd"] = df.pop("price")
    df["memory_type"] = df["memory_type"].fillna("")
    return df


def catalog_frame(queryset=None) -> pd.DataFrame:
    """Returns the ranked GPU catalog (or a queryset of it) as the estimator's DataFrame, in one query.

    By default only rows that pass the catalog's checks (``GPU.objects.ranked()``): noise, unverified, vGPU-profile
    and duplicate rows stay on the GPU list, labelled, but out of every ranking.
    """
    queryset = GPU.objects.ranked() if queryset is None else queryset
    return gpu_frame(queryset.with_price().values(*GPU_VALUE_FIELDS, "price"))
