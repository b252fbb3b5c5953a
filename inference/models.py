"""Benchmark jobs, their results, and the worker hosts and devices that run them.

The database row, not the broker, is the truth about a job.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from core.constraints import Check
from inference.queues import queue_for_host
from physics.runs import RUNNABLE_ENGINES
from physics.vocab import Engine

ENGINE_CHOICES = [(name, name) for name in RUNNABLE_ENGINES]
# Engine settings that change the figures, shown on a job page to everyone.
PUBLIC_ENGINE_FLAGS = ("flash_attn", "threads", "n_gpu_layers", "context_depth", "n_ctx", "n_batch", "n_ubatch")


class WorkerHost(models.Model):
    hostname = models.CharField("host", max_length=120, unique=True)
    queue = models.CharField("queue", max_length=140, help_text="The host's own queue, gpu.<host>.")
    software = models.JSONField("software", default=dict, blank=True, help_text="torch, CUDA, driver versions.")
    started_at = models.DateTimeField("worker started", default=timezone.now)
    last_seen = models.DateTimeField("last heartbeat", default=timezone.now)

    class Meta:
        verbose_name = "worker host"
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    def is_live(self) -> bool:
        age = (timezone.now() - self.last_seen).total_seconds()
        return age <= settings.GPUFIT_HEARTBEAT_STALE_S


class Device(models.Model):
    host = models.ForeignKey(WorkerHost, on_delete=models.CASCADE, related_name="devices", verbose_name="host")
    index = models.CharField("device", max_length=16, help_text="cpu, cuda:0, cuda:1…")
    name = models.CharField("reported name", max_length=160)
    memory_gb = models.FloatField("memory (GB)")
    bandwidth_gb_s = models.FloatField(
        "bandwidth (GB/s)", null=True, blank=True, help_text="Theoretical, or measured for a CPU."
    )
    details = models.JSONField("details", default=dict, blank=True)
    gpu = models.ForeignKey(
        "hardware.GPU",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name="catalog GPU",
        related_name="devices",
    )

    class Meta:
        verbose_name = "device"
        ordering = ["host", "index"]
        constraints = [models.UniqueConstraint(fields=["host", "index"], name="device_unique_per_host")]

    def __str__(self) -> str:
        return f"{self.host}/{self.index} ({self.name})"


class WorkerEngineQuerySet(models.QuerySet):
    def runnable(self) -> WorkerEngineQuerySet:
        """Returns the engines that can run on a host whose heartbeat is recent: what a job may ask for now."""
        live_since = timezone.now() - dt.timedelta(seconds=settings.GPUFIT_HEARTBEAT_STALE_S)
        return self.filter(available=True, host__last_seen__gte=live_since)


class WorkerEngine(models.Model):
    """A benchmark engine as one worker host has it, registered when the worker starts (bench.engines.EngineInfo)."""

    host = models.ForeignKey(WorkerHost, on_delete=models.CASCADE, related_name="engines", verbose_name="host")
    name = models.CharField("engine", max_length=32, choices=ENGINE_CHOICES)
    available = models.BooleanField(
        "can run", default=True, help_text="False when the engine is missing or broken on this host; see the reason."
    )
    version = models.CharField(
        "version", max_length=120, blank=True, help_text="The package's version, and its native build where it has one."
    )
    backends = models.JSONField(
        "backends", default=list, blank=True, help_text="What this build can use: cpu, cuda, metal, rocm, vulkan."
    )
    flags = models.JSONField(
        "build flags",
        default=dict,
        blank=True,
        help_text="Build facts that change figures (CPU features, GPU offload…).",
    )
    reason = models.CharField("why not", max_length=300, blank=True, help_text="Why it cannot run here, and the fix.")

    objects = WorkerEngineQuerySet.as_manager()

    class Meta:
        verbose_name = "worker engine"
        ordering = ["host", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="engine_unique_per_host")]

    def __str__(self) -> str:
        return f"{self.host}: {self.name} {self.version}".rstrip()


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost (worker died)"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class BenchmarkJob(models.Model):
    engine = models.CharField(
        "engine",
        max_length=32,
        choices=ENGINE_CHOICES,
        default=Engine.GPUFIT_TORCH.value,
        help_text="What runs the benchmark: gpufit-torch (our torch Mixtral) or llama.cpp (a GGUF of the model).",
    )
    preset = models.CharField(
        "model preset",
        max_length=40,
        default="mixtral-8x7b",
        blank=True,
        help_text="The runner's model shapes; empty when a llama.cpp job runs a catalog model's shapes instead.",
    )
    model = models.ForeignKey(
        "models.LanguageModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="benchmark_jobs",
        verbose_name="catalog model",
        help_text="llama.cpp: the catalog model whose config.json shapes the GGUF; empty: the preset.",
    )
    gguf_format = models.CharField(
        "GGUF format",
        max_length=16,
        blank=True,
        help_text="llama.cpp: the file's quantization (Q4_K_M, Q8_0…), written with random weights at the real shapes.",
    )
    layers = models.PositiveIntegerField(
        "layers", help_text="Fewer than the model's layers is allowed; reported as such."
    )
    precision = models.CharField(
        "precision",
        max_length=8,
        blank=True,
        help_text="gpufit-torch: bf16, fp16, fp32, int8 or int4; empty for llama.cpp.",
    )
    batch = models.PositiveIntegerField("batch")
    prompt_tokens = models.PositiveIntegerField("prompt tokens")
    new_tokens = models.PositiveIntegerField("new tokens")
    repeats = models.PositiveIntegerField("repeats", default=3)
    compile_decode = models.BooleanField(
        "compile the decode step",
        default=False,
        help_text="torch.compile of the decode step (one compiled block shared by all layers; on a GPU replayed "
        "from a CUDA graph). Compiling takes seconds to minutes before the measured region and is reported apart.",
    )
    target_host = models.CharField("target host", max_length=120, blank=True, help_text="Empty: any worker.")
    target_device = models.CharField("target device", max_length=16, default="cpu", help_text="cpu or cuda:N")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, verbose_name="requested by"
    )
    status = models.CharField(
        "status", max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    progress = models.FloatField("progress (%)", default=0)
    message = models.CharField("message", max_length=300, blank=True)
    worker = models.CharField("worker", max_length=200, blank=True)
    task_id = models.CharField("task id", max_length=64, blank=True)
    created_at = models.DateTimeField("created", default=timezone.now)
    sent_at = models.DateTimeField(
        "last sent",
        null=True,
        blank=True,
        help_text="When the task was last sent to the broker (re-sent if it was lost).",
    )
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    heartbeat_at = models.DateTimeField("last progress", null=True, blank=True)
    error = models.TextField("error", blank=True)

    class Meta:
        verbose_name = "benchmark job"
        ordering = ["-created_at"]
        permissions = [("run_benchmarks", "Can trigger and cancel benchmark jobs")]
        constraints = [
            Check(condition=Q(progress__gte=0) & Q(progress__lte=100), name="job_progress_in_range"),
            Check(condition=Q(batch__gte=1) & Q(layers__gte=1), name="job_batch_layers_positive"),
            # llama.cpp runs one sequence from a GGUF file; gpufit-torch has no GGUF format.
            Check(
                condition=(Q(engine=Engine.GPUFIT_TORCH.value) & ~Q(precision="") & Q(gguf_format=""))
                | (Q(engine=Engine.LLAMA_CPP.value) & Q(precision="") & ~Q(gguf_format="") & Q(batch=1)),
                name="job_engine_fields",
            ),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk}: {self.model_name} {self.weights} b{self.batch} on {self.engine} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("inference:job_detail", args=[self.pk])

    def private_visible_to(self, user) -> bool:
        """Returns whether ``user`` may see this job's private part: who asked, the worker, its messages and error
        text, and the runner's raw output. The requester and staff may; the run and its figures are public.

        The job page, its status fragment and the API's job endpoint all ask this (docs/security.md).
        """
        if not user.is_authenticated:
            return False
        return user.is_staff or (self.requested_by_id is not None and self.requested_by_id == user.pk)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def queue(self) -> str:
        return queue_for_host(self.target_host)

    @property
    def model_name(self) -> str:
        """Returns what the job runs: the catalog model's name, or the preset's."""
        return self.model.name if self.model_id else self.preset

    @property
    def weights(self) -> str:
        """Returns the weights' format: the GGUF format for llama.cpp, the torch precision otherwise."""
        return self.gguf_format or self.precision


class BenchmarkResult(models.Model):
    job = models.OneToOneField(BenchmarkJob, on_delete=models.CASCADE, related_name="result", verbose_name="job")
    status = models.CharField("outcome", max_length=8, help_text="ok, oom or error.")
    device_name = models.CharField("device", max_length=160)
    gpu = models.ForeignKey(
        "hardware.GPU",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name="catalog GPU",
        related_name="results",
    )
    precision = models.CharField(
        "weights format", max_length=8, help_text="gpufit-torch: bf16, int8, int4…; llama.cpp: the GGUF format."
    )
    engine = models.CharField(
        "engine",
        max_length=32,
        choices=ENGINE_CHOICES,
        default=Engine.GPUFIT_TORCH.value,
        help_text="What ran it. It is compared, calibrated and shown only against estimates for this engine.",
    )
    engine_version = models.CharField(
        "engine version", max_length=120, blank=True, help_text="torch's version, or llama-cpp-python's and ggml's."
    )
    engine_flags = models.JSONField(
        "engine settings", default=dict, blank=True, help_text="Settings that change the figures (flash attention…)."
    )
    decode_path = models.CharField(
        "decode path",
        max_length=40,
        blank=True,
        help_text="How the decode step ran: eager, CUDA graph, compiled (+ CUDA graph); quantized runs without the "
        "fused kernels add 'unfused'.",
    )
    layers = models.PositiveIntegerField("layers run")
    total_layers = models.PositiveIntegerField("model layers")
    batch = models.PositiveIntegerField("batch")
    prompt_tokens = models.PositiveIntegerField("prompt tokens")
    new_tokens = models.PositiveIntegerField("new tokens")
    prefill_tok_s = models.FloatField("prefill (tok/s)", null=True, blank=True)
    ttft_s = models.FloatField("time to first token (s)", null=True, blank=True)
    decode_tok_s = models.FloatField(
        "decode (tok/s)", null=True, blank=True, help_text="Tokens per second over all sequences of the batch."
    )
    decode_tok_s_full_depth = models.FloatField(
        "decode extrapolated to all layers", null=True, blank=True, help_text="Measured × layers run / model layers."
    )
    peak_memory_gb = models.FloatField("peak memory (GB)", null=True, blank=True)
    achieved_bandwidth_gb_s = models.FloatField("achieved bandwidth (GB/s)", null=True, blank=True)
    estimated_decode_tok_s = models.FloatField(
        "estimated decode (tok/s)", null=True, blank=True, help_text="The estimate's aggregate rate for the same batch."
    )
    estimated_prefill_tok_s = models.FloatField("estimated prefill (tok/s)", null=True, blank=True)
    estimated_memory_gb = models.FloatField("estimated memory (GB)", null=True, blank=True)
    decode_ratio = models.FloatField("decode measured / estimated", null=True, blank=True)
    prefill_ratio = models.FloatField("prefill measured / estimated", null=True, blank=True)
    raw = models.JSONField("runner result", default=dict)
    estimate_basis = models.JSONField("estimate basis", default=dict, blank=True)
    folded_into_calibration = models.BooleanField("used for calibration", default=False)
    created_at = models.DateTimeField("recorded", default=timezone.now)

    class Meta:
        verbose_name = "benchmark result"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Result of job {self.job_id} ({self.status})"

    @property
    def engine_label(self) -> str:
        """Returns the engine and its version, as the pages print it."""
        return f"{self.engine} {self.engine_version}".strip()

    @property
    def engine_settings(self) -> list[tuple[str, object]]:
        """Returns the engine settings a job page shows everyone (the rest of engine_flags, such as file paths on
        the worker, stays in the runner output that the requester and staff see)."""
        return [(key, self.engine_flags[key]) for key in PUBLIC_ENGINE_FLAGS if key in self.engine_flags]
