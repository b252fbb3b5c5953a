"""The front door, continued: serving capacity on the machine and planner pages, mixed GPUs refused with a reason,
Macs by their chip's name, and the shortcuts that make the pages fast giving the estimator's own answers."""

from __future__ import annotations

import pandas as pd
import pytest

from hardware.apple import AppleName, parse_apple
from hardware.machine import MIXED_GPUS, split_gpu_names
from hardware.models import GPU
from physics.capacity import serving_capacity
from physics.estimator import Build, Workload, hardware_class, rank_gpus, rank_models
from planner import lookup
from planner.calibration import calibration_factors
from planner.forms import ModelGPUForm
from planner.inputs import gpu_spec, model_arch, quant_of
from planner.lookup import Ambiguous, SeveralGPUs, find_gpu, find_model
from planner.services import (
    _ranking_frame,
    cached_catalog_frame,
    calibration_for,
    gpu_models,
    gpu_ranking,
    machine_models,
    model_capacity,
    model_tables,
)
from web.fragments import gpu_card, model_row

MIXTRAL = "mixtral-8x7b-instruct-v0-1"
TWO_3090S = {"gpu": "rtx-3090", "count": 2, "ram": 64}


@pytest.fixture
def catalog(full_catalog, db):
    """The whole shipped catalog (tests/conftest.py)."""


# --- reading a Mac's name (no database) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("M2 Max", AppleName("Apple M2 Max")),
        ("apple m1", AppleName("Apple M1")),
        ("M4 Pro 48GB", AppleName("Apple M4 Pro", memory_gb=48)),
        ("Mac Studio M2 Ultra 192GB", AppleName("Apple M2 Ultra", memory_gb=192)),
        ("MacBook Pro 16-inch M3 Max (2023) 64 GB unified memory", AppleName("Apple M3 Max", memory_gb=64)),
        ("Apple M2 Max (38-core GPU) 64 GB", AppleName("Apple M2 Max", gpu_cores=38, memory_gb=64)),
        ("apple-m2-max-38-core-gpu-96-gb", AppleName("Apple M2 Max", gpu_cores=38, memory_gb=96)),
        ("M3 Max with 64GB RAM", AppleName("Apple M3 Max", memory_gb=64)),
    ],
)
def test_a_macs_name_reads_as_its_chip_cores_and_memory(text, name):
    assert parse_apple(text) == name


@pytest.mark.parametrize(
    "text", ["Tesla M6", "Quadro M2000", "RTX 4090", "M40", "NVIDIA Tesla M40 24 GB", "M2 Max Pro"]
)
def test_a_gpu_name_is_never_read_as_a_mac(text):
    assert parse_apple(text) is None


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("RTX 4090 + RTX 3090", [("RTX 4090", 1), ("RTX 3090", 1)]),
        ("2x RTX 3090, RTX 4090", [("RTX 3090", 2), ("RTX 4090", 1)]),
        ("rtx-3090:2 and a100 x4", [("rtx-3090", 2), ("a100", 4)]),
        ("RTX 3090", [("RTX 3090", 1)]),
    ],
)
def test_a_box_listing_several_gpus_splits_into_names_and_counts(text, parts):
    assert split_gpu_names(text) == parts


# --- Macs by chip name: the lookup, the machine page, the paste box and the API --------------------------------


def test_a_chip_with_its_memory_finds_its_one_configuration(catalog):
    assert find_gpu("M4 Pro 48GB").name == "Apple M4 Pro (20-core GPU) 48 GB"
    assert find_gpu("Mac Studio M2 Ultra 192GB").name == "Apple M2 Ultra (76-core GPU) 192 GB"
    # M3 Max comes with 36 GB only with the 30-core GPU.
    assert find_gpu("M3 Max 36 GB").name == "Apple M3 Max (30-core GPU) 36 GB"
    # The catalog's own name and slug still answer.
    assert find_gpu("apple-m2-max-38-core-gpu-64-gb").name == "Apple M2 Max (38-core GPU) 64 GB"


def test_a_chip_without_its_memory_answers_with_its_configurations(catalog):
    with pytest.raises(Ambiguous) as found:
        find_gpu("M2 Max")
    # M2 Max: 30-core with 32 GB, 38-core with 64 or 96 GB.
    assert [g.memory_gb for g in found.value.rows] == [32, 64, 96]
    assert "several memory sizes" in str(found.value) and "Apple M2 Max (38-core GPU) 96 GB" in str(found.value)


def test_a_chip_with_a_size_it_never_had_says_which_sizes_exist(catalog):
    with pytest.raises(lookup.NotFound, match="32, 64, 96 GB, not 48 GB"):
        find_gpu("M2 Max 48GB")


def test_the_machine_box_takes_a_macs_name(client, catalog):
    page = client.get("/machine/", {"gpu": "M4 Pro 48GB"})
    assert page.status_code == 200
    assert page.context["data"]["gpu"].slug == "apple-m4-pro-20-core-gpu-48-gb" and page.context["rows"]


def test_the_machine_box_lists_the_configurations_of_an_ambiguous_chip(client, catalog):
    page = client.get("/machine/", {"gpu": "M2 Max", "ram": 64})
    assert page.status_code == 400
    body = page.content.decode()
    assert 'id="machine-candidates"' in body
    for slug in ("apple-m2-max-30-core-gpu-32-gb", "apple-m2-max-38-core-gpu-64-gb", "apple-m2-max-38-core-gpu-96-gb"):
        assert f"gpu={slug}" in body
    assert "machine-table" not in body


def test_typing_a_macs_name_suggests_its_configurations(client, catalog):
    chip = client.get("/suggest/gpus", {"gpu": "M2 Max"}).content.decode()
    assert chip.count("<option") == 3 and '<option value="Apple M2 Max (38-core GPU) 96 GB">' in chip
    sized = client.get("/suggest/gpus", {"gpu": "m2 max 64"}).content.decode()
    assert sized.count("<option") == 1 and '<option value="Apple M2 Max (38-core GPU) 64 GB">' in sized


def test_the_paste_box_lists_the_configurations_of_an_ambiguous_chip(client, catalog):
    page = client.post("/machine/paste/", {"text": "My laptop: M2 Max"})
    assert page.status_code == 422
    body = page.content.decode()
    assert "several configurations" in body and "gpu=apple-m2-max-38-core-gpu-96-gb" in body


def test_the_paste_box_takes_a_mac_studio_with_its_memory(client, catalog):
    page = client.post("/machine/paste/", {"text": "Mac Studio M2 Ultra 192GB"})
    assert page.status_code == 302
    assert "gpu=apple-m2-ultra-76-core-gpu-192-gb:1" in page["Location"]


def test_the_api_takes_a_macs_name_and_lists_configurations_when_it_cannot_choose(client, catalog):
    query = {"model": "mixtral:8x7b", "quant": "Q4_K_M"}
    found = client.get("/api/v1/estimate", {**query, "gpu": "M4 Pro 48GB"})
    assert found.status_code == 200 and found.json()["gpu"] == "Apple M4 Pro (20-core GPU) 48 GB"
    several = client.get("/api/v1/estimate", {**query, "gpu": "M2 Max"})
    assert several.status_code == 404
    assert several.json()["suggestions"] == [
        "Apple M2 Max (30-core GPU) 32 GB",
        "Apple M2 Max (38-core GPU) 64 GB",
        "Apple M2 Max (38-core GPU) 96 GB",
    ]


# --- mixed GPUs: refused with the reason, on the page, the paste page and in the API ---------------------------


def test_mixed_gpus_in_the_machine_box_are_refused_with_the_reason_and_each_card_alone(client, catalog):
    page = client.get("/machine/", {"gpu": "RTX 4090 + RTX 3090", "ram": 64})
    assert page.status_code == 400
    body = page.content.decode()
    assert "Mixed GPUs are not estimated" in body and 'id="machine-mixed"' in body
    assert "gpu=nvidia-geforce-rtx-4090&amp;count=1" in body and "gpu=nvidia-geforce-rtx-3090&amp;count=1" in body
    assert "machine-table" not in body


def test_two_gpu_parameters_of_different_models_are_refused_the_same_way(client, catalog):
    page = client.get("/machine/?gpu=rtx-4090:1&gpu=rtx-3060:2")
    assert page.status_code == 400 and "Mixed GPUs are not estimated" in page.content.decode()


def test_one_gpu_model_listed_twice_is_a_count(client, catalog):
    page = client.get("/machine/", {"gpu": "RTX 3090 + RTX 3090"})
    assert page.status_code == 200 and page.context["data"]["count"] == 2
    twice = client.get("/machine/", {"gpu": "2x RTX 3090"})
    assert twice.status_code == 200 and twice.context["data"]["count"] == 2


def test_the_api_refuses_mixed_gpus_with_the_reason_not_a_server_error(client, catalog):
    # Known GPUs that do not make one build: values that do not fit together, a 400 naming each card.
    query = {"model": "mixtral:8x7b", "quant": "Q4_K_M"}
    for path in ("/api/v1/estimate", "/api/v1/capacity"):
        answer = client.get(path, {**query, "gpu": "RTX 4090 + RTX 3090"})
        assert answer.status_code == 400
        assert MIXED_GPUS in answer.json()["detail"]
        assert "NVIDIA GeForce RTX 4090" in answer.json()["detail"] and "gpu" in answer.json()["errors"]
    twice = client.get("/api/v1/estimate", {**query, "gpu": "2x RTX 3090"})
    assert twice.status_code == 400 and "gpus=2" in twice.json()["detail"]


def test_the_lookup_names_each_gpu_of_a_list(catalog):
    with pytest.raises(SeveralGPUs) as found:
        find_gpu("RTX 4090 + 2x RTX 3090")
    assert [(g.slug, n) for g, n in found.value.rows] == [
        ("nvidia-geforce-rtx-4090", 1),
        ("nvidia-geforce-rtx-3090", 2),
    ]
    # A product whose name holds a plus stays one product.
    assert find_gpu("AMD Ryzen AI Max+ 395").vendor == "amd"


def test_a_paste_with_two_gpu_models_says_why_there_is_no_estimate(client, catalog):
    text = "GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-1)\nGPU 1: NVIDIA GeForce RTX 3090 (UUID: GPU-2)\n"
    page = client.post("/machine/paste/", {"text": text})
    assert page.status_code == 422 and "Mixed GPUs are not estimated" in page.content.decode()


# --- serving capacity on the machine page and the planner -----------------------------------------------------


def test_the_machine_page_links_each_model_on_the_gpus_to_its_serving_capacity(client, catalog):
    page = client.get("/machine/", TWO_3090S)
    body = page.content.decode()
    on_gpu = [m for m in page.context["rows"] if not m.offload]
    assert on_gpu and body.count('class="serve-link"') == len(on_gpu)
    assert f"serve={on_gpu[0].model.slug}#serving" in body


def test_the_machine_page_shows_a_models_serving_capacity_for_the_machines_own_build(client, catalog):
    page = client.get("/machine/", {**TWO_3090S, "serve": MIXTRAL, "min_tok_s": 15})
    assert page.status_code == 200
    capacity, row = page.context["capacity"], page.context["serving"]
    assert 'id="serving"' in page.content.decode() and capacity.users >= 1 and capacity.min_tok_s == 15
    # The machine's build as its other figures assume it: two cards, layer split, 64 GB of RAM at 89.6 GB/s,
    # 8,192 tokens per user, in the format the table shows for the model.
    model = find_model(MIXTRAL)
    quant = next(quant_of(r) for r in model.vram_rows.all() if r.quant.name == row.quant)
    build = Build(gpu_spec(find_gpu("rtx-3090")), 2, "layer", offload_ram_gb=64, ram_bandwidth_gb_s=89.6)
    expected = serving_capacity(
        model_arch(model), quant, build, Workload(context=8192, prompt_tokens=512), 15, calibration_factors()
    )
    assert (capacity.users, capacity.memory_users, capacity.speed_users) == (
        expected.users,
        expected.memory_users,
        expected.speed_users,
    )


def test_the_machine_page_rejects_a_bad_minimum_speed(client, catalog):
    assert client.get("/machine/", {**TWO_3090S, "serve": MIXTRAL, "min_tok_s": -1}).status_code == 400


def test_the_planner_loads_the_first_builds_serving_capacity(client, catalog):
    page = client.get("/plan/", {"model": MIXTRAL, "min_tok_s": 12})
    body = page.content.decode()
    first = page.context["builds"][0]
    assert 'id="plan-capacity"' in body and "part=capacity" in body
    url = f"/plan/basis/?model={MIXTRAL}&min_tok_s=12&gpu={first['slug']}&count={first['count']}"
    part = client.get(url + f"&split_one={first['split']}&part=capacity")
    assert part.status_code == 200 and "capacity-result" in part.content.decode()
    gpu = GPU.objects.get(slug=first["slug"])
    expected = model_capacity(find_model(MIXTRAL), "Q4_K_M", gpu, first["count"], 4096, 12, split=first["split"])
    assert part.context["capacity"].users == expected.users


def test_every_builds_basis_carries_its_serving_capacity(client, catalog):
    basis = client.get(
        "/plan/basis/", {"model": MIXTRAL, "gpu": "nvidia-geforce-rtx-3090", "count": 2, "split_one": "layer"}
    )
    assert basis.status_code == 200 and "basis-capacity" in basis.content.decode()
    assert basis.context["capacity"].users >= 1


# --- the shortcuts behind the speed targets give the estimator's own answers -----------------------------------


@pytest.mark.parametrize("batch", [1, 8])
def test_the_cut_calibration_table_gives_every_model_the_same_figures(catalog, batch):
    tables = model_tables()
    workload = Workload(context=8192, batch=batch)
    for slug in ("nvidia-geforce-rtx-3090", "apple-m2-max-38-core-gpu-64-gb", "nvidia-h100-sxm5-80-gb"):
        spec = gpu_spec(GPU.objects.get(slug=slug))
        cut = calibration_for(workload.backend, batch, [hardware_class(spec)], tables.precisions)
        assert len(cut) < len(calibration_factors())  # the cut can fail: it leaves rows out
        full = rank_models(tables.archs, tables.quants, spec, workload, calibration_factors(), count=2)
        pd.testing.assert_frame_equal(rank_models(tables.archs, tables.quants, spec, workload, cut, count=2), full)


def _form(model, **query) -> dict:
    form = ModelGPUForm.from_query(query, model=model)
    assert form.is_valid(), form.errors
    return form.cleaned_data


@pytest.mark.parametrize("sort", ["memory", "speed", "price", "value"])
@pytest.mark.parametrize("quant", ["Q4_K_M", "best"])
def test_the_page_ranking_is_the_estimators_ranking_of_every_fitting_card(catalog, sort, quant):
    model = find_model(MIXTRAL)
    data = _form(model, quant=quant, sort=sort)
    frame = gpu_ranking(model, data, [], sort=sort).frame
    # The estimator's answer over the whole catalog frame, full calibration, nothing kept between calls.
    catalog_rows = cached_catalog_frame().assign(group="single", count=1)
    quants = [quant_of(r) for r in model.vram_rows.all()] if quant == "best" else [quant_of(data["quant_row"])]
    full = rank_gpus(model_arch(model), quants, catalog_rows, Workload(context=4096), calibration_factors())
    full = full[full["fits"]]
    if quant == "best":
        full = full.sort_values("bits_per_weight", ascending=False, kind="stable").drop_duplicates("id")
    assert sorted(frame["id"]) == sorted(full["id"])
    merged = frame.merge(full, on=["id", "quant"], suffixes=("", "_full"))
    assert len(merged) == len(frame)
    for column in ("decode_tok_s", "total_gb", "headroom_gb", "ttft_s"):
        pd.testing.assert_series_equal(merged[column], merged[f"{column}_full"], check_names=False)
    key = {"memory": "memory_gb", "speed": "decode_tok_s", "price": "price_usd", "value": "usd_per_tok_s"}[sort]
    values = pd.to_numeric(frame[key], errors="coerce").dropna().tolist()
    assert values == sorted(values, reverse=sort == "speed")


def test_the_ranking_frame_carries_only_the_shown_columns_and_the_estimators_arrays(catalog):
    frame, prep = _ranking_frame({"quant": "Q4_K_M", "price_basis": "street"})
    assert len(prep.gpus) == len(frame) and "fp16_tflops" in frame.columns and "fp16_tflops" not in prep.gpus


def test_the_machine_list_is_the_best_format_of_each_model_that_runs(catalog):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-3090")
    workload = Workload(context=8192)
    rows = machine_models(gpu, 2, 64, 89.6, workload)
    tables = model_tables()
    ranked = rank_models(
        tables.archs, tables.quants, gpu_spec(gpu), workload, calibration_factors(), 2, "layer", 64, 89.6
    )
    expected = {}
    for name, group in ranked.groupby("model", sort=False):
        on_gpu = group[group["fits"]]
        if len(on_gpu):
            expected[name] = on_gpu["bits_per_weight"].max()
        elif group["fits_with_offload"].any():
            expected[name] = group.loc[group["fits_with_offload"], "offloaded_gb"].min()
    assert {m.model.name for m in rows} == set(expected)
    for m in rows:
        assert (m.offloaded_gb if m.offload else m.bits_per_weight) == expected[m.model.name]
        assert m.url == m.model.get_absolute_url()


def test_the_gpu_table_is_every_fitting_model_and_format(catalog):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4090")
    table = gpu_models(gpu, Workload(context=4096), every_format=True)
    assert table.fit_count == len(table.rows) < table.row_count and all(r["fits"] for r in table.rows)
    every = gpu_models(gpu, Workload(context=4096), fits_only=False, every_format=True)
    assert len(every.rows) == table.row_count
    first = table.rows[0]
    assert first["show"]["decode_tok_s"] == f"{first['decode_tok_s']:,.1f}" and first["url"].startswith("/models/")


def test_the_gpu_table_shows_each_model_once_in_its_best_fitting_format(catalog):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4090")
    every = gpu_models(gpu, Workload(context=4096), every_format=True)
    best = gpu_models(gpu, Workload(context=4096))
    models = [r["model"] for r in best.rows]
    assert len(models) == len(set(models)) == best.fit_count < best.row_count
    assert set(models) == {r["model"] for r in every.rows}
    tables = model_tables()
    bpw = {
        (arch.name, q.name): q.bits_per_weight
        for arch, quants in zip(tables.archs, tables.quants, strict=True)
        for q in quants
    }
    for row in best.rows:
        fitting = [bpw[(r["model"], r["quant"])] for r in every.rows if r["model"] == row["model"]]
        assert bpw[(row["model"], row["quant"])] == max(fitting)
    # Still fitting first, fastest first, as the ranking orders them.
    speeds = [r["decode_tok_s"] for r in best.rows]
    assert speeds == sorted(speeds, reverse=True)
    # With the box cleared, models that fit in no format appear too, in their smallest format.
    all_models = gpu_models(gpu, Workload(context=4096), fits_only=False)
    assert len(all_models.rows) == all_models.row_count > best.fit_count
    assert any(not r["fits"] for r in all_models.rows)


def test_recent_values_are_kept_for_the_latest_keys_only(catalog, monkeypatch):
    monkeypatch.setattr(lookup, "RECENT_SIZE", 2)
    calls = []
    for key in ("a", "b", "a", "c", "b"):
        lookup.recent("test", key, lambda key=key: calls.append(key) or key)
    # "a" is read again while kept; "b" was pushed out by "c" and is worked out again.
    assert calls == ["a", "b", "c", "b"]


# --- fragments written in Python escape what editors typed ------------------------------------------------------


def test_cards_and_rows_escape_catalog_text():
    show = dict.fromkeys(
        ["memory_gb", "bandwidth_gb_s", "decode_tok_s", "decode_tok_s_low", "decode_tok_s_high", "headroom_gb"], "1"
    ) | {"usable_gb": "2", "price_usd": "3", "offloaded_gb": "0"}
    row = {
        "slug": "x",
        "name": "<script>alert(1)</script>",
        "count": 2,
        "memory_gb": 24.0,
        "vendor": "nvidia",
        "decode_bound": "bandwidth",
        "quant": "Q4_K_M",
        "price_usd": 999.0,
        "offloaded_gb": 0.0,
        "measured": True,
        "show": show,
    }
    card = gpu_card(row)
    assert "<script>" not in card and "&lt;script&gt;" in card and "2× " in card and "$3 each" in card
    assert 'class="gpu-card measured"' in card and "NVIDIA" in card
    shown = dict.fromkeys(["total_gb", "headroom_gb", "decode_tok_s", "decode_tok_s_low", "decode_tok_s_high"], "1")
    shown |= {"prefill_tok_s": "1", "ttft_s": "1", "ttft_s_low": "1", "ttft_s_high": "1", "usd_per_million_tokens": "—"}
    table_row = model_row(
        {
            "model": 'A "model" <b>',
            "url": "/models/a/",
            "quant": "Q4",
            "decode_bound": "x",
            "fits": False,
            "show": shown,
        }
    )
    assert "<b>" not in table_row and 'class="nofit"' in table_row and "$—" not in table_row
