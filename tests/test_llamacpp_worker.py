"""llama.cpp end to end with real parts: Redis, a real worker process on the CPU, PostgreSQL shared between them.

The worker registers the engines it has; the job form offers llama.cpp; the worker writes a random-weight GGUF
of a Mixtral-architecture model with our own writer (bench.gguf_writer), runs it through llama-cpp-python and
stores the measurement beside the llama.cpp estimate for the same run; the job page shows both.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from inference.forms import BenchmarkJobForm
from inference.models import BenchmarkJob, BenchmarkResult, JobStatus, WorkerEngine
from models.models import LanguageModel, QuantFormat, QuantKind
from physics.presets import MIXTRAL_8X7B_ARCH
from tests.test_worker import Worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MIXTRAL = "mixtral-8x7b-instruct-v0-1"


@pytest.fixture
def worker(redis_url, postgres, tmp_path):
    # Its own var/ folder: the GGUF files it writes go to tmp_path/gguf, not into the checkout.
    w = Worker(redis_url, f"test-{uuid.uuid4().hex[:8]}", GPUFIT_VAR_DIR=str(tmp_path))
    yield w
    w.stop()


@pytest.fixture
def operator(client) -> User:
    user = User.objects.create_user("operator", password="pw-for-tests-only")
    user.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
    client.force_login(user)
    return user


@pytest.fixture
def gguf_formats():
    """The catalog's GGUF formats the job form offers (layouts from models/data/formats.csv)."""
    for name, bpw in (("Q4_K_M", 4.5), ("Q8_0", 8.5)):
        QuantFormat.objects.create(name=name, kind=QuantKind.GGUF, bits_per_weight=bpw)


def run_to_the_end(client, data: dict, timeout_s: float) -> BenchmarkJob:
    """Returns the job the form queued, once the worker has finished it."""
    response = client.post(reverse("inference:new_job"), data)
    assert response.status_code == 302, response.content[:3000]
    job = BenchmarkJob.objects.latest("created_at")
    wait_for(lambda: BenchmarkJob.objects.get(pk=job.pk).status not in ("queued", "running"), timeout_s, "the job")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, (job.status, job.message, job.error)
    return job


def test_a_tiny_mixtral_gguf_runs_on_llama_cpp_from_the_form_to_the_result_page(
    client, worker, operator, gguf_formats, tmp_path
):
    engines = dict(WorkerEngine.objects.filter(host__hostname=worker.host).values_list("name", "available"))
    assert engines == {"gpufit-torch": True, "llama.cpp": True}
    assert ("llama.cpp", "llama.cpp") in BenchmarkJobForm().fields["engine"].choices

    data = {
        "engine": "llama.cpp",
        "preset": "tiny",  # Mixtral's architecture at test size: 2 layers, 4 experts, top-2, hidden 64
        "gguf_format": "Q4_K_M",
        "layers": 2,
        "batch": 1,
        "prompt_tokens": 32,
        "new_tokens": 8,
        "repeats": 2,
        "target": f"{worker.host}|cpu",
    }
    job = run_to_the_end(client, data, timeout_s=240)
    assert (job.engine, job.preset, job.gguf_format, job.precision) == ("llama.cpp", "tiny", "Q4_K_M", "")
    result = BenchmarkResult.objects.get(job=job)
    assert result.status == "ok" and result.engine == "llama.cpp"
    assert result.engine_version.startswith("llama-cpp-python 0.3.36")
    assert result.precision == "Q4_K_M" and result.decode_path == "CPU, flash attention"
    assert result.decode_tok_s > 0 and result.prefill_tok_s > 0 and result.peak_memory_gb > 0
    basis = result.estimate_basis["basis"]
    assert basis["backend"] == "llama.cpp" and basis["quant"] == "Q4_K_M"
    assert result.decode_ratio == pytest.approx(result.decode_tok_s / result.estimated_decode_tok_s)
    # The estimate's weights are the bytes of the file the worker wrote (both from physics.gguf's layout).
    assert result.estimate_basis["memory"]["weights_gb"] == pytest.approx(result.raw["weight_bytes"] / 1e9, rel=1e-9)
    assert list((tmp_path / "gguf").glob("*-Q4_K_M-random-*.gguf"))

    page = client.get(job.get_absolute_url()).content.decode()
    assert f"Job #{job.pk}: tiny Q4_K_M on llama.cpp" in page
    assert f'<strong id="result-engine">{result.engine_label}</strong>' in page
    assert '<strong id="estimate-engine">llama.cpp</strong>' in page
    assert f'<td class="num" id="measured-decode">{result.decode_tok_s:.3f}</td>' in page
    assert f'<td class="num" id="estimated-decode">{result.estimated_decode_tok_s:.3f}</td>' in page
    validation = client.get(reverse("inference:validation")).content.decode()
    assert f"#{job.pk}" in validation.split('data-engine="llama.cpp"')[1].split("</section>")[0]


def test_an_operator_runs_mixtral_q4_k_m_on_a_cpu_host_with_fewer_layers(client, worker, operator, gguf_formats):
    # The catalog's Mixtral-8x7B-Instruct (its shipped config.json shapes the GGUF); one of its 32 layers, about
    # 1.1 GB of file, since a whole Mixtral Q4_K_M (26 GB) is more than a small CPU host holds.
    LanguageModel.objects.create(
        name="Mixtral-8x7B-Instruct-v0.1", slug=MIXTRAL, **LanguageModel.arch_values(MIXTRAL_8X7B_ARCH)
    )
    model = LanguageModel.objects.get(slug=MIXTRAL)
    data = {
        "engine": "llama.cpp",
        "model": model.pk,
        "gguf_format": "Q4_K_M",
        "layers": 1,
        "batch": 1,
        "prompt_tokens": 32,
        "new_tokens": 8,
        "repeats": 2,
        "target": f"{worker.host}|cpu",
    }
    job = run_to_the_end(client, data, timeout_s=480)
    result = BenchmarkResult.objects.get(job=job)
    assert (result.engine, result.layers, result.total_layers) == ("llama.cpp", 1, 32)
    assert result.raw["spec"]["model_config"]["num_local_experts"] == 8
    # Extrapolated to all 32 layers by bytes per step, and said so.
    assert 0 < result.decode_tok_s_full_depth < result.decode_tok_s
    assert "1 of 32 layers ran" in result.raw["extrapolation"]
    page = client.get(job.get_absolute_url()).content.decode()
    assert "Mixtral-8x7B-Instruct-v0.1 Q4_K_M on llama.cpp" in page
    assert "Decode tok/s extrapolated to 32 layers" in page
    assert f'<td class="num" id="estimated-decode">{result.estimated_decode_tok_s:.3f}</td>' in page
