"""The LLM catalog: architecture facts, quantization formats, the VRAM table and quality scores."""

from __future__ import annotations

import re

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

from core.constraints import Check
from physics.arch import ModelArch

# Bounds on a model row: far beyond every published model, so they only stop typing slips and absurd values.
# Largest shipped values, for scale: 1.03e12 parameters (Kimi K2), 126 layers (Llama 3.1 405B), a 1,024,000-token
# context (Mistral Nemo).
MAX_PARAMS = 100 * 10**12  # 100 trillion parameters
MAX_LAYERS = 10_000
MAX_CONTEXT_TOKENS = 100_000_000


class Architecture(models.TextChoices):
    DENSE = "dense", "Dense"
    MOE = "moe", "Mixture of Experts"


class Attention(models.TextChoices):
    GQA = "gqa", "Grouped-query (incl. MHA/MQA)"
    MLA = "mla", "Multi-head latent (DeepSeek)"
    HYBRID_SLIDING = "hybrid-sliding", "Sliding window + global layers"


def normalise_alias(name: str) -> str:
    """Returns the form model names are compared in: lower case, single spaces, no surrounding space."""
    return re.sub(r"\s+", " ", name).strip().lower()


class LanguageModelQuerySet(models.QuerySet):
    def with_table(self) -> LanguageModelQuerySet:
        return self.prefetch_related("vram_rows__quant", "benchmarks")


class LanguageModel(models.Model):
    name = models.CharField("name", max_length=120, unique=True)
    slug = models.SlugField("slug", max_length=140, unique=True)
    family = models.CharField("family", max_length=60, blank=True, help_text="e.g. mistral, llama, qwen.")
    vendor = models.CharField("publisher", max_length=60, blank=True, help_text="Who released the weights.")
    hf_repo = models.CharField(
        "Hugging Face repo", max_length=200, blank=True, help_text="e.g. mistralai/Mixtral-8x7B-Instruct-v0.1"
    )
    architecture = models.CharField(
        "architecture", max_length=8, choices=Architecture.choices, default=Architecture.DENSE
    )
    attention = models.CharField("attention", max_length=16, choices=Attention.choices, default=Attention.GQA)
    total_params = models.BigIntegerField(
        "total parameters",
        validators=[
            MinValueValidator(1, "A model has at least one parameter."),
            MaxValueValidator(MAX_PARAMS, f"At most {MAX_PARAMS:,} parameters."),
        ],
        help_text="Exact count from the published config.",
    )
    active_params = models.BigIntegerField(
        "active parameters",
        validators=[
            MinValueValidator(1, "A model uses at least one parameter per token."),
            MaxValueValidator(MAX_PARAMS, f"At most {MAX_PARAMS:,} parameters."),
        ],
        help_text="Parameters used per token: all but the unused experts (equals total for dense models).",
    )
    layers = models.PositiveIntegerField(
        "layers",
        validators=[
            MinValueValidator(1, "A model has at least one layer."),
            MaxValueValidator(MAX_LAYERS, f"At most {MAX_LAYERS:,} layers."),
        ],
    )
    hidden_size = models.PositiveIntegerField("hidden size")
    attention_heads = models.PositiveIntegerField("attention heads")
    kv_heads = models.PositiveIntegerField("KV heads")
    head_dim = models.PositiveIntegerField("head dim")
    ffn_size = models.PositiveIntegerField("FFN size", default=0, help_text="Per expert for MoE models.")
    experts = models.PositiveIntegerField("experts", default=0, help_text="0 for dense models.")
    experts_per_token = models.PositiveIntegerField("experts per token", default=0)
    moe_layers = models.PositiveIntegerField("MoE layers", default=0)
    expert_params = models.BigIntegerField("params per expert per layer", default=0)
    shared_expert_params = models.BigIntegerField("shared-expert params per layer", default=0)
    embedding_params = models.BigIntegerField("input embedding params", default=0)
    tied_embeddings = models.BooleanField("tied embeddings", default=False)
    kv_lora_rank = models.PositiveIntegerField("MLA KV rank", default=0)
    qk_rope_head_dim = models.PositiveIntegerField("MLA rope key dim", default=0)
    sliding_window = models.PositiveIntegerField("sliding window (tokens)", default=0)
    sliding_layers = models.PositiveIntegerField("sliding-window layers", default=0)
    vocab_size = models.PositiveIntegerField("vocabulary")
    context_length = models.PositiveIntegerField(
        "context length (tokens)",
        validators=[
            MinValueValidator(1, "A context holds at least one token."),
            MaxValueValidator(MAX_CONTEXT_TOKENS, f"At most {MAX_CONTEXT_TOKENS:,} tokens."),
        ],
    )
    release_date = models.DateField("release date", null=True, blank=True)
    license = models.CharField("license", max_length=80, blank=True)
    downloads = models.PositiveBigIntegerField(
        "downloads", null=True, blank=True, help_text="Hugging Face downloads, as sourced."
    )
    tags = models.CharField("tags", max_length=200, blank=True, help_text="Comma-separated: chat, coding, reasoning…")
    ollama_tag = models.CharField("Ollama tag", max_length=80, blank=True, help_text="e.g. mixtral:8x7b")
    instruction_format = models.TextField("instruction format", blank=True)
    description = models.TextField("description", blank=True)
    source_url = models.URLField("source URL", max_length=400, blank=True)
    edited_by_editor = models.BooleanField("changed by an editor", default=False)
    # Indexed: the catalog fingerprint (planner.lookup) reads MAX(updated_at) on every page request.
    updated_at = models.DateTimeField("updated", auto_now=True, db_index=True)

    objects = LanguageModelQuerySet.as_manager()

    class Meta:
        verbose_name = "language model"
        ordering = ["family", "total_params"]
        constraints = [
            Check(condition=Q(total_params__gt=0) & Q(total_params__lte=MAX_PARAMS), name="llm_total_params_in_range"),
            Check(
                condition=Q(active_params__gt=0) & Q(active_params__lte=F("total_params")), name="llm_active_le_total"
            ),
            Check(condition=Q(kv_heads__lte=F("attention_heads")), name="llm_kv_heads_le_heads"),
            Check(condition=Q(layers__gte=1) & Q(layers__lte=MAX_LAYERS), name="llm_layers_in_range"),
            Check(
                condition=Q(context_length__gte=1) & Q(context_length__lte=MAX_CONTEXT_TOKENS),
                name="llm_context_in_range",
            ),
            Check(condition=Q(experts_per_token__lte=F("experts")), name="llm_experts_per_token_le_experts"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("models:model_detail", args=[self.slug])

    @property
    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.tags.split(",") if t.strip()]

    @property
    def is_moe(self) -> bool:
        return self.architecture == Architecture.MOE

    def arch(self) -> ModelArch:
        """Returns the estimator's architecture for this row (the one mapping, ARCH_FIELDS, both ways)."""
        return ModelArch(name=self.name, **{attr: getattr(self, column) for column, attr in ARCH_FIELDS.items()})

    @staticmethod
    def arch_values(arch: ModelArch) -> dict:
        """Returns the row's architecture columns for an architecture built from config.json."""
        values = {column: getattr(arch, attr) for column, attr in ARCH_FIELDS.items()}
        values["architecture"] = Architecture.MOE if arch.is_moe else Architecture.DENSE
        return values


# Database column -> ModelArch attribute: the one mapping between a catalog row and the physics type.
ARCH_FIELDS = {
    "total_params": "total_params",
    "active_params": "active_params",
    "layers": "layers",
    "hidden_size": "hidden",
    "attention_heads": "heads",
    "kv_heads": "kv_heads",
    "head_dim": "head_dim",
    "vocab_size": "vocab",
    "context_length": "context_length",
    "ffn_size": "ffn",
    "experts": "experts",
    "experts_per_token": "experts_per_token",
    "expert_params": "expert_params",
    "moe_layers": "moe_layers",
    "shared_expert_params": "shared_expert_params",
    "embedding_params": "embedding_params",
    "tied_embeddings": "tied_embeddings",
    "attention": "attention",
    "kv_lora_rank": "kv_lora_rank",
    "qk_rope_head_dim": "qk_rope_head_dim",
    "sliding_window": "sliding_window",
    "sliding_layers": "sliding_layers",
}


class QuantKind(models.TextChoices):
    GGUF = "gguf", "GGUF (llama.cpp)"
    AWQ = "awq", "AWQ"
    GPTQ = "gptq", "GPTQ"
    FLOAT = "float", "Floating point"
    FP8 = "fp8", "FP8"
    MXFP4 = "mxfp4", "MXFP4"
    TORCH = "torch", "torch weight-only"


class QuantFormat(models.Model):
    name = models.CharField("name", max_length=32, unique=True, help_text="e.g. Q4_K_M, Q8_0, FP16, AWQ-INT4.")
    kind = models.CharField("kind", max_length=8, choices=QuantKind.choices)
    bits_per_weight = models.FloatField(
        "bits per weight",
        help_text="Effective bits per weight of the format's block layout (Q8_0: 34 bytes / 32 weights = 8.5).",
    )
    description = models.TextField("description", blank=True)
    source_url = models.URLField("source URL", max_length=400, blank=True)
    sort_order = models.PositiveSmallIntegerField("order", default=100)
    # Indexed: the catalog fingerprint (planner.lookup) reads MAX(updated_at) on every page request.
    updated_at = models.DateTimeField("updated", auto_now=True, db_index=True)

    class Meta:
        verbose_name = "quantization format"
        ordering = ["sort_order", "bits_per_weight", "name"]
        constraints = [
            Check(condition=Q(bits_per_weight__gt=0) & Q(bits_per_weight__lte=32), name="quant_bpw_in_range"),
        ]

    def __str__(self) -> str:
        return self.name


class QuantVRAM(models.Model):
    """One row of the quantization VRAM table: a model at a format."""

    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="vram_rows", verbose_name="model")
    quant = models.ForeignKey(QuantFormat, on_delete=models.PROTECT, related_name="vram_rows", verbose_name="format")
    bits_per_weight = models.FloatField(
        "bits per weight (this model)",
        null=True,
        blank=True,
        help_text="Effective bpw for this model when it differs from the format's layout (mixed _K_M formats).",
    )
    file_bytes = models.BigIntegerField(
        "weight file size (bytes)",
        null=True,
        blank=True,
        help_text="Published file size; when empty, params × bpw / 8 is used.",
    )
    vram_gb = models.FloatField(
        "VRAM required (GB)",
        null=True,
        blank=True,
        help_text="Published or measured figure; when empty it is computed (weights + 0.5 GB, the reference rule).",
    )
    quality_pct = models.FloatField(
        "quality (%)", null=True, blank=True, help_text="Share of the full-precision model's quality."
    )
    source = models.CharField("source", max_length=200, blank=True, help_text="Where the figures come from.")
    source_url = models.URLField("source URL", max_length=400, blank=True)
    note = models.TextField(
        "note", blank=True, help_text="Shown under the table, e.g. why a published figure was corrected."
    )
    edited_by_editor = models.BooleanField("changed by an editor", default=False)
    # Indexed: the catalog fingerprint (planner.lookup) reads MAX(updated_at) on every page request.
    updated_at = models.DateTimeField("updated", auto_now=True, db_index=True)

    class Meta:
        verbose_name = "quantization VRAM row"
        ordering = ["model", "quant__sort_order", "quant__bits_per_weight"]
        constraints = [
            models.UniqueConstraint(fields=["model", "quant"], name="vram_one_row_per_model_format"),
            Check(condition=Q(file_bytes__isnull=True) | Q(file_bytes__gt=0), name="vram_file_bytes_positive"),
            Check(condition=Q(vram_gb__isnull=True) | Q(vram_gb__gt=0), name="vram_gb_positive"),
            Check(
                condition=Q(quality_pct__isnull=True) | (Q(quality_pct__gte=0) & Q(quality_pct__lte=100)),
                name="vram_quality_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} @ {self.quant}"

    @property
    def effective_bpw(self) -> float:
        return self.bits_per_weight or self.quant.bits_per_weight


class BenchmarkScore(models.Model):
    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="benchmarks", verbose_name="model")
    name = models.CharField("benchmark", max_length=60)
    score = models.FloatField("score")
    out_of = models.FloatField(
        "out of", default=100.0, help_text="The score's full scale: 100 for a percentage, 10 for MT-Bench."
    )
    source = models.CharField("source", max_length=200, blank=True, help_text="Who published the score, in words.")
    source_url = models.URLField(
        "source URL",
        max_length=400,
        help_text="The public page that states the score; a score without one is not kept.",
    )

    class Meta:
        verbose_name = "quality benchmark score"
        ordering = ["model", "-score"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="benchmark_one_score_per_model")]

    def __str__(self) -> str:
        return f"{self.name}: {self.score}"


class LanguageModelAlias(models.Model):
    """Another name a model goes by: an Ollama tag, the Hugging Face repo id, a common spelling."""

    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="aliases", verbose_name="model")
    name = models.CharField(
        "alias", max_length=200, help_text="A name people type, e.g. 'mixtral:8x7b' or 'Mixtral-8x7B'."
    )
    normalised = models.CharField(
        "normalised",
        max_length=200,
        unique=True,
        editable=False,
        help_text="Lower-cased form the resolver matches on; one model per normalised alias.",
    )

    class Meta:
        verbose_name = "model alias"
        verbose_name_plural = "model aliases"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.normalised = normalise_alias(self.name)
        super().save(*args, **kwargs)
