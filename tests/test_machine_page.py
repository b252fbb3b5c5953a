"""The "my machine" page, names people type for GPUs and models, and the read-only CLI without a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hardware.models import GPU

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(full_catalog):
    """The whole shipped catalog (tests/conftest.py)."""


def test_two_3090s_and_64_gb_list_the_models_that_run_with_speeds(client, catalog):
    page = client.get("/machine/", {"gpu": "rtx-3090", "count": 2, "ram": 64})
    assert page.status_code == 200
    rows = page.context["rows"]
    names = {m.model.name for m in rows}
    # 48 GB of VRAM: Mixtral-8x7B fits at Q4_K_M-class precision; Llama-3.1-8B fits at full precision.
    assert "Mixtral-8x7B-Instruct-v0.1" in names and "Llama-3.1-8B-Instruct" in names
    mixtral = next(m for m in rows if m.model.name == "Mixtral-8x7B-Instruct-v0.1")
    assert not mixtral.offload and mixtral.decode_tok_s > 0 and mixtral.ttft_s > 0
    assert mixtral.total_gb <= 2 * 24
    # Sorted fastest first by default.
    speeds = [m.decode_tok_s for m in rows]
    assert speeds == sorted(speeds, reverse=True)


def test_the_machine_list_filters_by_use_and_size(client, catalog):
    machine = {"gpu": "rtx-3090", "count": 2, "ram": 64}
    every = client.get("/machine/", machine).context["rows"]
    coding = client.get("/machine/", {**machine, "use": "coding"}).context["rows"]
    assert coding and len(coding) < len(every)
    assert all("coding" in m.model.tag_list for m in coding)
    assert {m.model.pk for m in every if "coding" in m.model.tag_list} == {m.model.pk for m in coding}
    small = client.get("/machine/", {**machine, "size": "small"}).context["rows"]
    large = client.get("/machine/", {**machine, "size": "large"}).context["rows"]
    assert small and large and all(m.model.total_params < 10e9 for m in small)
    assert all(m.model.total_params >= 40e9 for m in large)
    both = client.get("/machine/", {**machine, "use": "chat", "size": "medium"}).context["rows"]
    assert all("chat" in m.model.tag_list and 10e9 <= m.model.total_params < 40e9 for m in both)
    bad = client.get("/machine/", {**machine, "use": "gaming"})
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()


def test_a_count_in_the_name_is_the_same_machine(client, catalog):
    one = client.get("/machine/", {"gpu": "rtx-3090:2", "ram": 64}).context["rows"]
    two = client.get("/machine/", {"gpu": "rtx-3090", "count": 2, "ram": 64}).context["rows"]
    assert [(m.model.pk, m.quant) for m in one] == [(m.model.pk, m.quant) for m in two]


def test_system_ram_lets_a_bigger_model_run_with_offload(client, catalog):
    without = {m.model.name for m in client.get("/machine/", {"gpu": "rtx-3090"}).context["rows"]}
    with_ram = client.get("/machine/", {"gpu": "rtx-3090", "ram": 128}).context["rows"]
    offloaded = {m.model.name for m in with_ram if m.offload}
    assert offloaded and not offloaded & without


def test_mixed_gpus_are_refused_with_a_reason(client, catalog):
    page = client.get("/machine/?gpu=rtx-4090&gpu=rtx-3060")
    assert page.status_code == 400
    assert "Mixed GPUs" in page.content.decode()


def test_an_unknown_gpu_says_so_and_lists_no_models(client, catalog):
    page = client.get("/machine/", {"gpu": "rtx-9999-ultra"})
    assert page.status_code == 400
    assert "Unknown GPU" in page.content.decode() and "machine-table" not in page.content.decode()


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("rtx-3090", "nvidia-geforce-rtx-3090"),
        ("RTX 3090", "nvidia-geforce-rtx-3090"),
        ("4090", "nvidia-geforce-rtx-4090"),
    ],
)
def test_gpu_names_people_type_resolve(catalog, name, slug):
    assert GPU.objects.resolve(name).slug == slug


def test_an_ambiguous_gpu_name_resolves_to_nothing(catalog):
    assert GPU.objects.resolve("a100") is None  # several A100 boards: the caller lists candidates


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("mixtral:8x7b", "mixtral-8x7b-instruct-v0-1"),
        ("mixtral-8x7b", "mixtral-8x7b-instruct-v0-1"),
        ("Mixtral-8x7B", "mixtral-8x7b-instruct-v0-1"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b-instruct-v0-1"),
        ("llama3.1:70b", "llama-3-1-70b-instruct"),
    ],
)
def test_a_model_alias_redirects_to_its_page(client, catalog, name, slug):
    page = client.get(f"/models/{name}/")
    assert page.status_code == 301 and page["Location"] == f"/models/{slug}/"


def test_the_api_and_the_cli_take_the_same_names(client, catalog):
    page = client.get("/api/v1/estimate", {"model": "mixtral:8x7b", "quant": "Q4_K_M", "gpu": "rtx-4090"})
    assert page.status_code == 200 and page.json()["basis"]["model"] == "Mixtral-8x7B-Instruct-v0.1"


def test_the_estimate_command_needs_no_secret_or_debug(tmp_path):
    # A plain shell after `make run`: no DEBUG, no SECRET_KEY; the command only reads the catalog.
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"}}
    env["GPUFIT_VAR_DIR"] = str(tmp_path)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**env, "DEBUG": "1"}, check=True, timeout=300
    )
    args = ["estimate", "--params-b", "46.7", "--active-params-b", "12.9", "--layers", "32", "--kv-heads", "8"]
    args += ["--head-dim", "128", "--bits-per-weight", "4.5", "--bandwidth-gb-s", "1008", "--memory-gb", "48"]
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tok/s" in result.stdout


def test_the_home_page_asks_both_questions(client, catalog):
    page = client.get("/").content.decode()
    assert 'id="want-form"' in page and 'id="have-form"' in page
    assert 'hx-get="/suggest/models"' in page and 'hx-get="/suggest/gpus"' in page
    assert 'href="/method/"' in page  # how the numbers are made and how accurate they are
    # The accuracy line quotes the shipped fit's report (read here apart from the view), not a figure typed in.
    report = {r["set"]: r for r in json.loads((ROOT / "physics" / "data" / "fitted.json").read_text())["report"]}
    decode, prefill = report["decode, batch 1, all"], report["prefill, all"]
    text = " ".join(page.split())
    assert f"On {decode['rows']:,} public measurements from {decode['sources']} sources" in text
    assert f"off by {decode['mape']} % on average (median {decode['median_ape']} %)" in text
    assert f"prompt processing by {prefill['mape']} %" in text


def test_the_method_page_shows_the_leave_one_source_out_report_of_the_fit_in_use(client, catalog):
    page = client.get("/method/").content.decode()
    assert 'id="accuracy-table"' in page and "decode, batch 1, all" in page
    assert "These are the figures of the fit the site uses" in page and "llama-bench" in page


def test_typing_suggests_models_and_gpus(client, catalog):
    models = client.get("/suggest/models", {"name": "mixt"}).content.decode()
    assert '<option value="Mixtral-8x7B-Instruct-v0.1">' in models
    gpus = client.get("/suggest/gpus", {"gpu": "3090"}).content.decode()
    assert '<option value="NVIDIA GeForce RTX 3090">' in gpus
    assert client.get("/suggest/gpus", {"gpu": "<script>"}).content.decode().strip() == ""


def test_the_model_box_opens_the_model_or_lists_candidates(client, catalog):
    page = client.get("/find/", {"name": "mixtral:8x7b"})
    assert page.status_code == 302 and page["Location"] == "/models/mixtral-8x7b-instruct-v0-1/"
    # The reference page's own word opens its model, saying how it was read and offering the rest of the family.
    family = client.get("/find/", {"name": "mixtral"})
    assert family.status_code == 302 and family["Location"] == "/models/mixtral-8x7b-instruct-v0-1/?named=mixtral"
    page = client.get(family["Location"]).content.decode()
    assert 'id="named-as"' in page and "ollama run mixtral" in page and "/models/mixtral-8x22b-instruct-v0-1/" in page
    several = client.get("/find/", {"name": "qwen2.5-coder"})
    assert several.status_code == 200 and "/models/qwen2-5-coder-32b-instruct/" in several.content.decode()
    # A note is shown only for a name that really was read that way.
    other = client.get("/models/mixtral-8x7b-instruct-v0-1/", {"named": "llama3.1"}).content.decode()
    assert 'id="named-as"' not in other
    assert client.get("/find/", {"name": "no-such-model-anywhere"}).status_code == 404


def test_pasting_nvidia_smi_for_two_3090s_and_64_gb_opens_the_machine_page(client, catalog):
    text = (ROOT / "tests" / "data" / "machine" / "nvidia_smi_L_2x3090.txt").read_text()
    text += "\n$ free -g\n               total        used        free\nMem:              64          10          50\n"
    page = client.post("/machine/paste/", {"text": text})
    assert page.status_code == 302
    follow = client.get(page["Location"])
    assert follow.status_code == 200
    assert follow.context["data"]["count"] == 2 and follow.context["data"]["gpu"].slug == "nvidia-geforce-rtx-3090"
    assert follow.context["data"]["ram"] >= 60 and follow.context["rows"]


def test_the_paste_forms_ram_box_carries_the_ram_a_bare_nvidia_smi_list_does_not_state(client, catalog):
    text = (ROOT / "tests" / "data" / "machine" / "nvidia_smi_L_2x3090.txt").read_text()
    page = client.post("/machine/paste/", {"text": text, "ram": "64"})
    assert page.status_code == 302 and page["Location"].endswith("ram=64")
    follow = client.get(page["Location"])
    assert follow.context["data"]["count"] == 2 and follow.context["data"]["ram"] == 64
    # The box wins over a size the text states; left empty, the text's size stands.
    stated = text + "\nRAM: 32 GB\n"
    assert client.post("/machine/paste/", {"text": stated, "ram": "128"})["Location"].endswith("ram=128")
    assert client.post("/machine/paste/", {"text": stated, "ram": ""})["Location"].endswith("ram=32")
    bad = client.post("/machine/paste/", {"text": text, "ram": "-4"})
    assert bad.status_code == 400 and "greater than or equal to 0" in bad.content.decode()
    assert text.splitlines()[0] in bad.content.decode()  # the pasted text is kept for the next try


def test_garbled_paste_says_what_was_not_understood(client, catalog):
    page = client.post("/machine/paste/", {"text": "GPU 0: Frobnicator 9000 (UUID: x)\nsomething else"})
    assert page.status_code == 422
    body = page.content.decode()
    assert 'id="paste-problem"' in body and "Frobnicator" in body
    assert client.post("/machine/paste/", {"text": ""}).status_code == 400


def test_no_unranked_gpu_appears_in_a_default_ranking(client, catalog):
    # Noise, unverified, vGPU-profile and duplicate rows stay on /gpus/ but out of the model page and the API.
    hidden = set(GPU.objects.exclude(listing="ranked").values_list("name", flat=True))
    assert hidden  # the shipped catalog has such rows, so the check below can fail
    page = client.get("/models/mixtral-8x7b-instruct-v0-1/", {"sort": "speed"})
    shown = set(page.context["ranking"].frame["name"])
    assert shown and not shown & hidden
    api = client.get("/api/v1/recommend", {"model": "mixtral:8x7b", "quant": "Q4_K_M", "limit": 100}).json()
    assert api["items"] and not {g["gpu"] for g in api["items"]} & hidden


def test_the_api_enumerations_take_any_case(client, catalog):
    upper = client.get("/api/v1/gpus", {"vendor": "NVIDIA", "limit": 5})
    assert upper.status_code == 200 and upper.json()["items"]
    assert upper.json() == client.get("/api/v1/gpus", {"vendor": "nvidia", "limit": 5}).json()
    estimate = client.get(
        "/api/v1/estimate", {"model": "mixtral:8x7b", "quant": "Q4_K_M", "gpu": "rtx-4090", "kv_cache": "Q8"}
    )
    assert estimate.status_code == 200 and estimate.json()["basis"]["kv_cache"] == "q8"
    assert client.get("/api/v1/gpus", {"vendor": "Nvidiaa"}).status_code == 422


def test_an_ollama_tag_with_a_format_needs_no_quant(client, catalog):
    page = client.get("/api/v1/estimate", {"model": "llama3.1:70b-instruct-q4_K_M", "gpu": "rtx-3090", "gpus": 2})
    assert page.status_code == 200 and page.json()["quant"] == "Q4_K_M"
