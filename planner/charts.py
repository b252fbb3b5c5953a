"""Plotly figure specs for the pages, built from the estimator's DataFrames.

Pure: no Django, no plotly import at request time. Each function returns a plain ``{"data", "layout"}`` dict
that plotly.js draws as is (``Plotly.newPlot(el, fig.data, fig.layout)``); building plain dicts instead of
``plotly.graph_objects`` figures keeps validation cost off the request path. tests/test_charts.py checks
that plotly's own validator accepts every spec.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

ACCENT = "#2356c7"
MEASURED = "#1f7a3a"
VENDOR_COLOURS = {"nvidia": "#76b900", "amd": "#d3302f", "intel": "#0068b5", "apple": "#555555", "other": "#888888"}
MEMORY_COLOURS = {"weights": "#2356c7", "kv": "#e39b1b", "overhead": "#9aa4b5"}


def _layout(title: str, x: str, y: str, **extra) -> dict:
    layout = {
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "height": 360,
        "hovermode": "closest",
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
    }
    layout.update(extra)
    return layout


def _num(value: object) -> float | None:
    """Returns a JSON-safe float (None for missing/NaN/inf)."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def speed_vs_price(frame) -> dict:
    """Returns a scatter of estimated decode tok/s against price, one trace per vendor, hover showing the basis.

    ``frame`` is a ``rank_gpus`` result, or its columns (name -> array) as ``rank_gpu_columns`` gives them; rows
    without a price are left out (they have no x position).
    """
    cols = ["name", "decode_tok_s", "decode_tok_s_low", "decode_tok_s_high", "quant", "memory_gb"]
    cols += ["bandwidth_gb_s", "decode_bound", "price_usd", "vendor"]
    traces = []
    if "price_usd" in frame and len(frame["price_usd"]):
        values = {c: np.asarray(frame[c]) for c in cols}
        price = np.asarray(pd.to_numeric(values["price_usd"], errors="coerce"), dtype=float)
        priced = ~np.isnan(price)
        vendors = values["vendor"].astype(str)
        for vendor in sorted(set(vendors[priced].tolist())):
            rows = np.flatnonzero(priced & (vendors == vendor))
            hover = [
                f"{name}<br>{_fmt(tok)} tok/s ({_fmt(low)}–{_fmt(high)})<br>{quant} · {_fmt(mem)} GB · "
                f"{_fmt(bw)} GB/s<br>{bound}-bound · ${_fmt(cost)}"
                for name, tok, low, high, quant, mem, bw, bound, cost in zip(
                    *(values[c][rows] for c in cols[:-1]), strict=True
                )
            ]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": vendor.upper(),
                    "x": [_num(v) for v in values["price_usd"][rows]],
                    "y": [_num(v) for v in values["decode_tok_s"][rows]],
                    "text": hover,
                    "hoverinfo": "text",
                    "marker": {"size": 9, "color": VENDOR_COLOURS.get(vendor, VENDOR_COLOURS["other"])},
                }
            )
    return {
        "data": traces,
        "layout": _layout(
            "Estimated decode speed vs price",
            "price (USD)",
            "decode tok/s (estimate)",
            xaxis={"title": {"text": "price (USD)"}, "type": "log"},
        ),
    }


def memory_breakdown(rows: Iterable[object], usable_gb: float | None = None) -> dict:
    """Returns a stacked horizontal bar per format: weights, KV cache and runtime overhead in GB.

    ``rows`` carry ``weights_gb``, ``kv_cache_gb``, ``overhead_gb`` and ``row.quant.name`` (``MemoryRow``), or
    are mappings with those keys and ``quant``.
    """
    names, weights, kv, over = [], [], [], []
    for r in rows:
        get = r.get if isinstance(r, dict) else (lambda k, r=r: getattr(r, k))
        names.append(get("quant") if isinstance(r, dict) else r.row.quant.name)  # type: ignore[attr-defined]
        weights.append(_num(get("weights_gb")))
        kv.append(_num(get("kv_cache_gb")))
        over.append(_num(get("overhead_gb")))
    bar = {"type": "bar", "orientation": "h", "y": names}
    traces = [
        {**bar, "name": "weights", "x": weights, "marker": {"color": MEMORY_COLOURS["weights"]}},
        {**bar, "name": "KV cache", "x": kv, "marker": {"color": MEMORY_COLOURS["kv"]}},
        {**bar, "name": "runtime overhead", "x": over, "marker": {"color": MEMORY_COLOURS["overhead"]}},
    ]
    layout = _layout("Memory needed by format", "GB", "", barmode="stack", height=max(220, 26 * len(names) + 90))
    layout["yaxis"] = {"autorange": "reversed", "automargin": True}
    if usable_gb:
        layout["shapes"] = [
            {
                "type": "line",
                "x0": usable_gb,
                "x1": usable_gb,
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "line": {"color": "#b3261e", "dash": "dot"},
            }
        ]
    return {"data": traces, "layout": layout}


def speed_by_model(frame: pd.DataFrame) -> dict:
    """Returns a bar chart of estimated decode tok/s per model (its fastest fitting format) on one GPU.

    ``frame`` is a ``rank_models`` result.
    """
    fitting = frame[frame["fits"]] if len(frame) else frame
    best = fitting.sort_values("decode_tok_s", ascending=False).drop_duplicates("model") if len(fitting) else fitting
    names = [str(m) for m in best.get("model", [])]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": names,
                "x": [_num(v) for v in best.get("decode_tok_s", [])],
                "text": [str(q) for q in best.get("quant", [])],
                "hovertemplate": "%{y}<br>%{x:.1f} tok/s at %{text}<extra></extra>",
                "marker": {"color": ACCENT},
            }
        ],
        "layout": {
            **_layout("Estimated decode speed by model (fastest fitting format)", "tok/s", ""),
            "yaxis": {"autorange": "reversed", "automargin": True},
            "height": max(240, 22 * len(names) + 90),
        },
    }


def builds_scatter(builds: pd.DataFrame) -> dict:
    """Returns a scatter of build total price against estimated decode tok/s, one trace per GPU count."""
    traces = []
    for count, group in builds.groupby("count", sort=True) if len(builds) else []:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{int(count)}× GPU",
                "x": [_num(v) for v in group["total_price_usd"]],
                "y": [_num(v) for v in group["decode_tok_s"]],
                "text": [
                    f"{int(r['count'])}× {r['name']} ({r['split']})<br>{_fmt(r['decode_tok_s'])} tok/s · "
                    f"${_fmt(r['total_price_usd'])} · {r['decode_bound']}-bound"
                    for r in group.to_dict("records")
                ],
                "hoverinfo": "text",
                "marker": {"size": 9},
            }
        )
    return {"data": traces, "layout": _layout("Builds: price vs estimated decode speed", "total price (USD)", "tok/s")}


def compare_bars(frame: pd.DataFrame) -> dict:
    """Returns grouped bars of estimated decode and prefill tok/s for the compared GPUs."""
    names = [str(n) for n in frame.get("name", [])]
    return {
        "data": [
            {
                "type": "bar",
                "name": "decode tok/s",
                "x": names,
                "y": [_num(v) for v in frame.get("decode_tok_s", [])],
                "marker": {"color": ACCENT},
            },
            {
                "type": "bar",
                "name": "prefill tok/s ÷ 100",
                "x": names,
                "y": [_num(v / 100) if _num(v) is not None else None for v in frame.get("prefill_tok_s", [])],
                "marker": {"color": MEMORY_COLOURS["kv"]},
            },
        ],
        "layout": _layout("Estimated speed", "", "tok/s", barmode="group"),
    }


def _fmt(value: object) -> str:
    f = _num(value)
    if f is None:
        return "—"
    return f"{f:,.0f}" if abs(f) >= 100 else f"{f:.1f}"


def capacity_curve(capacity) -> dict:
    """Returns per-user and total decode speed against concurrent users, with the minimum per-user speed."""
    points = [p for p in capacity.curve if p.fits]
    users = [p.users for p in points]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "per user (tok/s)",
                "x": users,
                "y": [_num(p.per_user_tok_s) for p in points],
                "line": {"color": ACCENT},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "all users (tok/s)",
                "x": users,
                "y": [_num(p.total_tok_s) for p in points],
                "yaxis": "y2",
                "line": {"color": MEASURED},
            },
        ],
        "layout": _layout(
            f"Speed against users (minimum {capacity.min_tok_s:g} tok/s each)",
            "concurrent users",
            "tok/s per user",
            xaxis={"title": {"text": "concurrent users"}, "type": "log"},
            yaxis2={"title": {"text": "tok/s, all users"}, "overlaying": "y", "side": "right"},
            shapes=[
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": capacity.min_tok_s,
                    "y1": capacity.min_tok_s,
                    "line": {"dash": "dot", "color": "#999"},
                }
            ],
            legend={"orientation": "h"},
        ),
    }
