"""Benchmark engines on the Django side: what the job form offers, what a result stores, where "measured" may
appear, and calibration per engine. No worker runs here; tests/test_llamacpp_worker.py runs one end to end."""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import asdict

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from bench.engines import EngineInfo
from core.models import ApiToken
from hardware.models import GPU
from inference import jobs
from inference.calibration import fit_calibration, validation_summary
from inference.forms import BenchmarkJobForm
from inference.models import BenchmarkJob, BenchmarkResult, Device, JobStatus, WorkerEngine, WorkerHost
from inference.results import compare_with_estimate, estimate_for_run, measured_results
from inference.tasks import execute, spec_for
from inference.workers import register_host
from models.models import LanguageModel
from physics.runs import BenchResult, BenchSpec
from planner.models import Calibration

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalog")]

MIXTRAL = "mixtral-8x7b-instruct-v0-1"

TORCH = EngineInfo(name="gpufit-torch", available=True, version="2.13.0+cpu", backends=("cpu",))
LLAMA = EngineInfo(name="llama.cpp", available=True, version="0.3.36", backends=("cpu",), flags={"GGML_AVX2": True})
LLAMA_MISSING = EngineInfo(name="llama.cpp", available=False, reason="llama-cpp-python is not installed")


@pytest.fixture
def catalog(curated_catalog):
    """The curated catalog with the shipped H200 runs (gpufit-torch), loaded once for the module."""


@pytest.fixture
def operator(client) -> User:
    user = User.objects.create_user("operator", password="pw-for-tests-only")
    user.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
    client.force_login(user)
    return user


class FakeCPU:
    """A detected CPU as bench.devices reports it, without measuring this machine's bandwidth."""

    kind, torch_device, name, bandwidth_gb_s = "cpu", "cpu", "Test CPU", 20.0
    driver_version = cuda_version = None

    def __init__(self, memory_gb: float):
        self.memory_gb = memory_gb

    def to_dict(self) -> dict:
        return {"name": self.name, "memory_gb": self.memory_gb}


def host_with(name: str, *engines: EngineInfo, memory_gb: float = 64.0) -> WorkerHost:
    """Registers a worker host with one CPU and the given engines, as run_worker does at start-up."""
    return register_host(name, devices=[FakeCPU(memory_gb)], engines=list(engines))


def llama_job(host: str, **overrides) -> dict:
    """Returns the job form's fields for a llama.cpp run of Mixtral-8x7B Q4_K_M on a host's CPU."""
    data = {
        "engine": "llama.cpp",
        "model": LanguageModel.objects.get(slug=MIXTRAL).pk,
        "gguf_format": "Q4_K_M",
        "layers": 2,
        "batch": 1,
        "prompt_tokens": 64,
        "new_tokens": 16,
        "repeats": 2,
        "target": f"{host}|cpu",
    }
    data.update(overrides)
    return data


def h200_device() -> Device:
    """A registered H200 (the catalog's) on a host of its own, for results measured there."""
    host, _ = WorkerHost.objects.get_or_create(hostname="h200-test", defaults={"queue": "gpu.h200-test"})
    h200 = GPU.objects.resolve("NVIDIA H200")
    device, _ = Device.objects.get_or_create(
        host=host, index="cuda:0", defaults={"name": "NVIDIA H200", "memory_gb": 143.8, "gpu": h200}
    )
    return device


def llama_result(decode_tok_s: float, **spec_fields) -> BenchResult:
    """Returns a llama.cpp result of Mixtral-8x7B Q4_K_M at all 32 layers on the H200."""
    spec = BenchSpec(
        engine="llama.cpp",
        gguf_format="Q4_K_M",
        layers=32,
        batch=1,
        prompt_tokens=512,
        new_tokens=128,
        device="cuda:0",
        **spec_fields,
    )
    return BenchResult(
        spec=asdict(spec),
        status="ok",
        model_layers=32,
        full_layers=32,
        prefill_tok_s=3000.0,
        decode_tok_s=decode_tok_s,
        peak_memory_gb=27.0,
        device_name="NVIDIA H200",
        host="h200-test",
        engine="llama.cpp",
        engine_version="0.3.36 (ggml 4f1a2b)",
        engine_flags={"flash_attn": True, "n_gpu_layers": -1},
    )


def store(result: BenchResult, folded: bool = False) -> BenchmarkResult:
    """Stores a llama.cpp result of the catalog's Mixtral as a finished job, the way the worker's task does."""
    h200_device()
    model = LanguageModel.objects.get(slug=MIXTRAL)
    job = BenchmarkJob.objects.create(
        engine="llama.cpp",
        preset="",
        model=model,
        gguf_format="Q4_K_M",
        precision="",
        layers=32,
        batch=1,
        prompt_tokens=512,
        new_tokens=128,
        target_host="h200-test",
        target_device="cuda:0",
        status=JobStatus.SUCCEEDED,
        worker="gpufit@h200-test",
    )
    values = compare_with_estimate(result, host="h200-test", model=model)
    return BenchmarkResult.objects.create(job=job, folded_into_calibration=folded, **values)


# ----------------------------------------------------------------------------------------------------------
# Registration and the job form


def test_a_worker_registers_its_engines_with_versions_backends_and_reasons():
    host = host_with("reg-host", TORCH, LLAMA_MISSING)
    rows = {e.name: e for e in WorkerEngine.objects.filter(host=host)}
    assert rows["gpufit-torch"].available and rows["gpufit-torch"].version == "2.13.0+cpu"
    assert rows["gpufit-torch"].backends == ["cpu"]
    assert not rows["llama.cpp"].available and "not installed" in rows["llama.cpp"].reason
    # Restarted with llama.cpp installed: the row is updated, not duplicated; an engine it lost is forgotten.
    host_with("reg-host", LLAMA)
    assert list(WorkerEngine.objects.filter(host=host).values_list("name", "available", "flags")) == [
        ("llama.cpp", True, {"GGML_AVX2": True})
    ]


def test_the_form_offers_only_engines_that_a_live_worker_can_run():
    host_with("torch-only", TORCH, LLAMA_MISSING)
    assert [value for value, _ in BenchmarkJobForm().fields["engine"].choices] == ["gpufit-torch"]
    form = BenchmarkJobForm(llama_job("torch-only"))
    assert not form.is_valid() and "No live worker has registered llama.cpp." in form.errors["engine"]

    host_with("both", TORCH, LLAMA)
    assert [value for value, _ in BenchmarkJobForm().fields["engine"].choices] == ["gpufit-torch", "llama.cpp"]
    # A host whose heartbeat stopped offers nothing.
    WorkerHost.objects.filter(hostname="both").update(last_seen=timezone.now() - dt.timedelta(hours=1))
    assert [value for value, _ in BenchmarkJobForm().fields["engine"].choices] == ["gpufit-torch"]


def test_with_no_live_worker_a_job_waits_for_gpufit_torch_only():
    WorkerHost.objects.update(last_seen=timezone.now() - dt.timedelta(hours=1))  # the shipped H200 host is old
    assert [value for value, _ in BenchmarkJobForm().fields["engine"].choices] == ["gpufit-torch"]


def test_a_llama_cpp_job_goes_only_to_a_host_that_has_it():
    host_with("torch-only", TORCH)
    host_with("llama-host", TORCH, LLAMA)
    form = BenchmarkJobForm(llama_job("torch-only"))
    assert not form.is_valid() and "torch-only has not registered llama.cpp." in form.errors["target"]
    # "Any worker" could be the host without it.
    form = BenchmarkJobForm(llama_job("any"))
    assert not form.is_valid() and "Not every live worker has llama.cpp" in form.errors["target"][0]
    assert BenchmarkJobForm(llama_job("llama-host")).is_valid()


def test_a_llama_cpp_job_takes_a_catalog_model_and_a_gguf_format(client, operator, django_capture_on_commit_callbacks):
    host_with("llama-host", TORCH, LLAMA)
    form = BenchmarkJobForm()
    assert {"Q4_K_M", "Q8_0"} <= {value for value, _ in form.fields["gguf_format"].choices}
    assert form.fields["model"].queryset.filter(slug=MIXTRAL).exists()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("inference:new_job"), llama_job("llama-host"))
    assert response.status_code == 302, response.content[:2000]
    job = BenchmarkJob.objects.get(requested_by=operator)
    assert (job.engine, job.model.slug, job.gguf_format, job.precision, job.preset) == (
        "llama.cpp",
        MIXTRAL,
        "Q4_K_M",
        "",
        "",
    )
    spec = spec_for(job)
    spec.validate()
    assert (spec.engine, spec.gguf_format, spec.layers, spec.batch) == ("llama.cpp", "Q4_K_M", 2, 1)
    assert spec.model_config["num_local_experts"] == 8 and spec.model_config["num_hidden_layers"] == 32
    page = client.get(job.get_absolute_url()).content.decode()
    assert "Mixtral-8x7B-Instruct-v0.1 Q4_K_M on llama.cpp" in page


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"gguf_format": ""}, "gguf_format", "llama.cpp needs a GGUF format."),
        ({"batch": 4}, "batch", "llama.cpp runs one sequence (batch 1)."),
        ({"compile_decode": "on"}, "compile_decode", "Compiling the decode step is a gpufit-torch option."),
        ({"model": "", "preset": "tiny", "layers": 3}, "layers", "tiny has 2 layers."),
        ({"gguf_format": "Q3_K_M"}, "gguf_format", "Select a valid choice."),  # not one the adapter writes
    ],
)
def test_a_llama_cpp_job_form_says_what_is_wrong(change, field, message):
    host_with("llama-host", TORCH, LLAMA)
    form = BenchmarkJobForm(llama_job("llama-host", **change))
    assert not form.is_valid()
    assert any(message in e for e in form.errors[field]), form.errors


def test_a_cpu_host_runs_only_the_layers_its_ram_holds():
    # 16 GB of RAM, 80 % of it for the run: 12.8 GB. Mixtral-8x7B Q4_K_M is about 0.8 GB a layer.
    host_with("small-cpu", TORCH, LLAMA, memory_gb=16.0)
    form = BenchmarkJobForm(llama_job("small-cpu", layers=32))
    assert not form.is_valid()
    message = form.errors["layers"][0]
    assert message.startswith("small-cpu's 16 GB of RAM holds ") and "run fewer layers" in message
    fits = int(message.split(" holds ")[1].split(" ")[0])
    assert 8 <= fits < 16
    assert BenchmarkJobForm(llama_job("small-cpu", layers=fits)).is_valid()
    assert not BenchmarkJobForm(llama_job("small-cpu", layers=fits + 1)).is_valid()


def test_gpufit_torch_jobs_keep_their_form():
    host_with("torch-host", TORCH)
    data = {"preset": "tiny", "precision": "fp32", "layers": 2, "batch": 2, "prompt_tokens": 16, "new_tokens": 8}
    form = BenchmarkJobForm({**data, "repeats": 1, "target": "torch-host|cpu"})
    assert form.is_valid(), form.errors
    job = form.save(commit=False)
    assert (job.engine, job.model, job.gguf_format, job.precision) == ("gpufit-torch", None, "", "fp32")
    form = BenchmarkJobForm({**data, "repeats": 1, "target": "torch-host|cpu", "gguf_format": "Q4_K_M"})
    assert not form.is_valid() and "gpufit-torch takes a precision" in form.errors["gguf_format"][0]


# ----------------------------------------------------------------------------------------------------------
# Results: engine, version, and the same engine's estimate


def test_a_result_stores_its_engine_and_is_compared_with_that_engines_estimate():
    row = store(llama_result(decode_tok_s=60.0))
    assert (row.engine, row.engine_version, row.precision) == ("llama.cpp", "0.3.36 (ggml 4f1a2b)", "Q4_K_M")
    assert row.engine_flags == {"flash_attn": True, "n_gpu_layers": -1}
    basis = row.estimate_basis["basis"]
    assert basis["backend"] == "llama.cpp" and basis["quant"] == "Q4_K_M" and basis["gpu"] == row.gpu.name
    assert row.decode_ratio == pytest.approx(60.0 / row.estimated_decode_tok_s)
    # The estimate is llama.cpp's for this run, not gpufit-torch's for int4 (which assumes our runner's efficiency).
    spec = {**row.raw["spec"], "engine": "gpufit-torch", "precision": "int4"}
    torch_estimate = estimate_for_run(spec, 32, estimate_gpu(row))
    assert torch_estimate.basis["backend"] == "gpufit-torch"
    assert row.estimated_decode_tok_s != pytest.approx(torch_estimate.decode_tok_s_aggregate)


def estimate_gpu(row: BenchmarkResult):
    from planner.inputs import gpu_spec

    return gpu_spec(row.gpu)


def test_the_task_runs_the_jobs_engine_and_stores_what_it_reports(monkeypatch):
    """inference.tasks.execute with a stand-in engine: the spec it gets, and the row it leaves."""
    seen = {}

    class StandIn:
        name = "llama.cpp"

        def run(self, spec, progress=None):
            seen["spec"] = spec
            progress(50, "decoding")
            return llama_result(decode_tok_s=40.0)

    monkeypatch.setattr("inference.tasks.engine_for", lambda name: StandIn() if name == "llama.cpp" else None)
    h200_device()
    job = BenchmarkJob.objects.create(
        engine="llama.cpp",
        preset="",
        model=LanguageModel.objects.get(slug=MIXTRAL),
        gguf_format="Q4_K_M",
        precision="",
        layers=32,
        batch=1,
        prompt_tokens=512,
        new_tokens=128,
        target_host="h200-test",
        target_device="cuda:0",
    )
    assert jobs.claim(job.pk, "gpufit@h200-test")
    job.refresh_from_db()
    assert execute(job) == "ok"
    assert seen["spec"].engine == "llama.cpp" and seen["spec"].model_config["hidden_size"] == 4096
    result = BenchmarkResult.objects.get(job=job)
    assert (result.engine, result.engine_version) == ("llama.cpp", "0.3.36 (ggml 4f1a2b)")
    assert result.estimate_basis["basis"]["backend"] == "llama.cpp" and result.gpu == h200_device().gpu


def test_the_job_page_shows_measured_and_estimated_llama_cpp_figures_with_the_version(client):
    row = store(llama_result(decode_tok_s=60.0))
    page = client.get(row.job.get_absolute_url()).content.decode()
    assert (
        '<strong id="result-engine">llama.cpp 0.3.36 (ggml 4f1a2b)</strong> (flash_attn True, n_gpu_layers -1);' in page
    )
    assert '<strong id="estimate-engine">llama.cpp</strong>' in page
    assert f'<td class="num" id="measured-decode">{row.decode_tok_s:.3f}</td>' in page
    assert f'<td class="num" id="estimated-decode">{row.estimated_decode_tok_s:.3f}</td>' in page
    chart = client.get(row.job.get_absolute_url()).context["chart"]
    assert '"measured (llama.cpp 0.3.36 (ggml 4f1a2b))"' in chart and '"estimated (llama.cpp)"' in chart


def test_results_recorded_before_engines_are_gpufit_torch_with_torchs_version():
    # The first H200 check (measured.json) predates engines; later shipped files name theirs (llama.cpp's sweep).
    shipped = BenchmarkResult.objects.filter(job__task_id__startswith="measured:measured.json:")
    assert shipped.exists() and set(shipped.values_list("engine", flat=True)) == {"gpufit-torch"}
    assert set(shipped.values_list("engine_version", flat=True)) == {"2.11.0+cu130"}
    # The migration fills the version of rows that existed before it from the runner's own record.
    shipped.update(engine_version="")
    migration = importlib.import_module("inference.migrations.0006_engines")
    migration.fill_engine_version(django_apps, None)
    assert set(shipped.values_list("engine_version", flat=True)) == {"2.11.0+cu130"}


# ----------------------------------------------------------------------------------------------------------
# "measured" only beside the same engine's estimate


def test_a_gpufit_torch_run_never_marks_a_llama_cpp_estimate(client):
    # The shipped H200 runs are gpufit-torch (int4 decode 7.1 tok/s); the model page's estimates are llama.cpp.
    model = LanguageModel.objects.get(slug=MIXTRAL)
    assert measured_results(model, "gpufit-torch").filter(gpu=h200_device().gpu).exists()
    assert not measured_results(model, "llama.cpp").exists()
    ranking = client.get(f"/models/{MIXTRAL}/").context["ranking"]
    assert ranking.measured == [] and not any(row["measured"] for row in ranking.fits)
    assert client.get(f"/models/{MIXTRAL}/?measured_only=on").context["ranking"].fits == []
    page = client.get(f"/models/{MIXTRAL}/").content.decode()
    assert "Measured on real hardware" not in page and 'class="gpu-card measured"' not in page
    rows = client.get("/recommend/", {"model": MIXTRAL, "quant": "Q4_K_M"}).context["rows"]
    assert not any(row["measured"] for row in rows)


def test_a_llama_cpp_run_marks_the_llama_cpp_estimate_of_its_gpu(client):
    h200 = store(llama_result(decode_tok_s=60.0)).gpu
    ranking = client.get(f"/models/{MIXTRAL}/").context["ranking"]
    assert [r.gpu for r in ranking.measured] == [h200]
    # "Measured only" keeps the H200's card, and it carries the mark.
    only = client.get(f"/models/{MIXTRAL}/?measured_only=on").context["ranking"].fits
    assert [(row["name"], row["measured"]) for row in only] == [(h200.name, True)]
    page = client.get(f"/models/{MIXTRAL}/").content.decode()
    table = page.split("Measured on real hardware")[1].split("</table>")[0]
    assert "llama.cpp 0.3.36" in table and "gpufit-torch" not in table
    rows = client.get("/recommend/", {"model": MIXTRAL, "quant": "Q4_K_M"}).context["rows"]
    assert {row["name"] for row in rows if row["measured"]} == {h200.name}


# ----------------------------------------------------------------------------------------------------------
# Calibration by engine


def test_folding_a_llama_cpp_run_refits_only_llama_cpp_rows():
    torch_rows = set(Calibration.objects.filter(backend="gpufit-torch", is_fitted=True).values_list("pk", "source"))
    assert torch_rows  # the shipped H200 bf16 runs
    row = store(llama_result(decode_tok_s=60.0), folded=True)
    fit_calibration()
    fitted = Calibration.objects.get(backend="llama.cpp", is_fitted=True)
    basis = row.estimate_basis["basis"]
    assert (fitted.hardware_class, fitted.precision_class, fitted.batch_class) == (
        basis["hardware_class"],
        basis["precision_class"],
        "1",
    )
    assert fitted.decode_efficiency < basis["decode_efficiency"]  # measured slower than estimated
    assert fitted.costs == basis["fixed_costs_s"]  # the fixed costs stay; the bandwidth share moves
    assert fitted.runs == 1 and fitted.source.startswith("fit: 1 llama.cpp run(s)")
    assert set(Calibration.objects.filter(backend="gpufit-torch", is_fitted=True).values_list("pk", "source")) == (
        torch_rows
    )
    # The next llama.cpp estimate for that key uses the fit, and so reproduces the measurement.
    again = store(llama_result(decode_tok_s=60.0))
    assert again.estimate_basis["basis"]["efficiency_key"].startswith("llama.cpp/")
    assert again.estimated_decode_tok_s == pytest.approx(60.0, rel=0.02)


@pytest.mark.parametrize(
    "comm_s, bound, measured, fitted",
    [
        (0.0, "bandwidth", 50.0, 0.25),  # no fixed costs: 0.5 x measured / estimated = 0.5 x 50 / 100
        (0.002, "bandwidth", 50.0, 0.5 * 0.008 / 0.018),  # 10 ms estimated, 2 of them fixed; 20 ms measured
        (0.002, "compute", 50.0, 0.25),  # the memory term did not bind: the ratio alone
        (0.025, "bandwidth", 60.0, 1.0),  # 16.7 ms measured, under the 25 ms of fixed costs: not bandwidth-bound
    ],
)
def test_a_fit_moves_only_the_part_of_a_step_that_depends_on_bandwidth(comm_s, bound, measured, fitted):
    from inference.calibration import decode_efficiency_fit

    basis = {"decode_efficiency": 0.5, "batch": 1, "comm_s_per_step": comm_s}
    row = BenchmarkResult(
        decode_tok_s=measured,
        estimated_decode_tok_s=100.0,
        decode_ratio=measured / 100.0,
        batch=1,
        estimate_basis={"basis": basis, "decode_bound": bound},
    )
    assert decode_efficiency_fit(row) == pytest.approx(fitted)


def test_a_result_whose_estimate_was_for_another_engine_is_never_folded():
    row = store(llama_result(decode_tok_s=60.0), folded=True)
    basis = row.estimate_basis
    basis["basis"]["backend"] = "gpufit-torch"
    BenchmarkResult.objects.filter(pk=row.pk).update(estimate_basis=basis)
    fit_calibration()
    assert not Calibration.objects.filter(backend="llama.cpp", is_fitted=True).exists()


def test_the_validation_page_groups_results_by_engine(client):
    row = store(llama_result(decode_tok_s=60.0))
    summary = validation_summary()
    groups = {g["engine"]: g for g in summary["engines"]}
    assert set(groups) == {"gpufit-torch", "llama.cpp"}
    # The stored run, beside the shipped H200 llama-bench runs, and no gpufit-torch run among them.
    assert row.pk in [r["result"].pk for r in groups["llama.cpp"]["rows"]]
    assert all(r["result"].engine == "llama.cpp" for r in groups["llama.cpp"]["rows"])
    assert all(r["result"].engine == "gpufit-torch" for r in groups["gpufit-torch"]["rows"])
    page = client.get(reverse("inference:validation")).content.decode()
    llama = page.split('data-engine="llama.cpp"')[1].split("</section>")[0]
    assert f"#{row.job_id}" in llama and "0.3.36 (ggml 4f1a2b)" in llama and "NVIDIA H200" in llama
    torch = page.split('data-engine="gpufit-torch"')[1].split("</section>")[0]
    assert f"#{row.job_id}<" not in torch and "nvidia-hbm" in torch


def test_the_benchmarks_page_lists_each_hosts_engines_with_version_or_reason(client):
    host_with("listed-host", TORCH, LLAMA_MISSING)
    page = client.get(reverse("inference:benchmarks")).content.decode()
    row = page.split("listed-host")[1].split('<tr class="engines">')[1].split("</tr>")[0]
    assert "<strong>gpufit-torch</strong> 2.13.0+cpu (cpu)" in row
    assert 'llama.cpp: <span class="muted">llama-cpp-python is not installed</span>' in row


def test_the_preview_estimates_a_llama_cpp_job_for_llama_cpp(client, operator):
    host_with("preview-host", TORCH, LLAMA)
    response = client.get(reverse("inference:preview_estimate"), llama_job("preview-host"))
    assert response.status_code == 200, response.content[:2000]
    estimate = response.context["estimate"]
    assert estimate.basis["backend"] == "llama.cpp" and estimate.basis["quant"] == "Q4_K_M"
    assert "llama.cpp on <strong>Test CPU</strong>" in response.content.decode()


def test_the_api_queues_a_llama_cpp_job_for_a_catalog_model_and_lists_the_engines(
    client, operator, django_capture_on_commit_callbacks
):
    host_with("api-host", TORCH, LLAMA)
    engines = client.get("/api/v1/benchmarks/engines").json()
    assert {(e["host"], e["engine"], e["version"]) for e in engines} >= {("api-host", "llama.cpp", "0.3.36")}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.objects.issue(operator, 'test')[1]}"}
    body = {
        "engine": "llama.cpp",
        "model": "mixtral:8x7b",
        "gguf_format": "Q4_K_M",
        "layers": 1,
        "target_host": "api-host",
        "target_device": "cpu",
    }
    with django_capture_on_commit_callbacks(execute=False):
        r = client.post("/api/v1/benchmarks", body, content_type="application/json", **headers)
    assert r.status_code == 201, r.content
    job = r.json()
    assert (job["engine"], job["model"], job["gguf_format"], job["precision"]) == ("llama.cpp", MIXTRAL, "Q4_K_M", "")
    unknown = client.post(
        "/api/v1/benchmarks", {**body, "model": "no-such-model"}, content_type="application/json", **headers
    )
    assert unknown.status_code == 400 and "model" in unknown.json()["errors"]


def test_the_validation_page_shows_the_memory_check_against_llama_cpp(client):
    page = client.get(reverse("inference:validation")).content.decode()
    assert 'id="llamacpp-memory"' in page and "Memory against llama.cpp" in page
    summary = validation_summary()["memory_summary"]
    assert summary["models"] >= 25 and summary["rows"] >= 50
    assert summary["total"]["max"] <= 10.0 and summary["kv"]["max"] <= 3.0


def test_an_operators_real_gguf_replaces_the_generated_file(tmp_path, settings):
    model = LanguageModel.objects.get(slug=MIXTRAL)
    job = BenchmarkJob(engine="llama.cpp", model=model, gguf_format="Q4_K_M", layers=2, batch=1, precision="")
    assert spec_for(job).gguf_path == ""  # no folder set: the worker writes a random-weight file
    settings.GPUFIT_REAL_GGUF_DIR = str(tmp_path)
    (tmp_path / "other-model-Q4_K_M.gguf").write_bytes(b"")
    assert spec_for(job).gguf_path == ""
    real = tmp_path / f"{MIXTRAL.upper()}-q4_k_m.gguf"
    real.write_bytes(b"")
    assert spec_for(job).gguf_path == str(real)
