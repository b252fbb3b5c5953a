"""planner.charts: plain figure specs that plotly accepts, built from estimator frames (no database)."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from physics.estimator import (
    REFERENCE_QUANTS,
    GPUSpec,
    Workload,
    gpus_frame,
    rank_builds,
    rank_gpus,
    rank_models,
)
from physics.presets import MIXTRAL_8X7B_ARCH as MIXTRAL_8X7B
from planner import charts

# RTX 3090: 24 GB, too small alone for Mixtral Q4_K_M; RTX 6000 Ada: 48 GB, holds it; H100 SXM: 80 GB, no price.
GPUS = [
    GPUSpec("RTX 3090", "nvidia", "consumer", 24, 936, fp16_tflops=71, tdp_w=350, price_usd=900),
    GPUSpec("RTX 6000 Ada", "nvidia", "workstation", 48, 960, fp16_tflops=182, tdp_w=300, price_usd=6800),
    GPUSpec("H100 SXM", "nvidia", "datacenter", 80, 3350, fp16_tflops=989, tdp_w=700),
    GPUSpec("Radeon PRO W7900", "amd", "workstation", 48, 864, fp16_tflops=122, tdp_w=295, price_usd=3999),
]


def _valid(spec: dict) -> go.Figure:
    json.dumps(spec, allow_nan=False)  # what json_script will embed must be strict JSON
    return go.Figure(spec)  # raises on any property plotly does not know


def test_speed_vs_price_has_one_trace_per_vendor_and_leaves_out_unpriced_gpus():
    ranked = rank_gpus(MIXTRAL_8X7B, REFERENCE_QUANTS[:1], gpus_frame(GPUS), Workload())
    fitting = ranked[ranked["fits"]]
    fig = _valid(charts.speed_vs_price(fitting))
    names = {t.name: t for t in fig.data}
    assert set(names) == {"NVIDIA", "AMD"}
    assert len(names["NVIDIA"].x) == 1  # RTX 6000 Ada; the H100 has no price and the 3090 does not fit
    assert "bandwidth-bound" in names["NVIDIA"].text[0] and "RTX 6000 Ada" in names["NVIDIA"].text[0]


def test_speed_vs_price_of_an_empty_frame_is_an_empty_figure():
    ranked = rank_gpus(MIXTRAL_8X7B, REFERENCE_QUANTS[:1], gpus_frame(GPUS), Workload())
    assert _valid(charts.speed_vs_price(ranked.iloc[0:0])).data == ()


def test_memory_breakdown_stacks_weights_kv_and_overhead():
    rows = [
        {"quant": "Q4_K_M", "weights_gb": 26.3, "kv_cache_gb": 0.54, "overhead_gb": 0.6},
        {"quant": "fp16", "weights_gb": 93.4, "kv_cache_gb": 0.54, "overhead_gb": 0.6},
    ]
    fig = _valid(charts.memory_breakdown(rows, usable_gb=47.4))
    assert [t.name for t in fig.data] == ["weights", "KV cache", "runtime overhead"]
    assert list(fig.data[0].y) == ["Q4_K_M", "fp16"] and list(fig.data[0].x) == [26.3, 93.4]
    assert fig.layout.barmode == "stack" and fig.layout.shapes[0].x0 == 47.4


def test_speed_by_model_keeps_the_fastest_fitting_format_per_model():
    ranked = rank_models([MIXTRAL_8X7B], [REFERENCE_QUANTS], GPUS[1], Workload())
    fig = _valid(charts.speed_by_model(ranked))
    assert list(fig.data[0].y) == ["Mixtral-8x7B"]
    assert fig.data[0].text[0] == "Q4_K_M"  # the smallest format reads the fewest bytes, so it is fastest


def test_builds_scatter_and_compare_bars_are_valid():
    builds = rank_builds(MIXTRAL_8X7B, REFERENCE_QUANTS[0], gpus_frame(GPUS), Workload(), max_gpus=2)
    fig = _valid(charts.builds_scatter(builds))
    assert {t.name for t in fig.data} >= {"1× GPU", "2× GPU"}  # 2x RTX 3090 is a build, 1x 3090 is not
    ranked = rank_gpus(MIXTRAL_8X7B, REFERENCE_QUANTS[:1], gpus_frame(GPUS), Workload())
    bars = _valid(charts.compare_bars(ranked))
    assert len(bars.data[0].x) == len(GPUS)


def test_missing_figures_become_null_not_nan():
    assert charts._num(float("nan")) is None and charts._num(None) is None and charts._num("3") == 3.0
