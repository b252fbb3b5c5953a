"""Forms for the pages people browse: every input is checked here and comes out typed.

The model page, the recommender, the build planner and the compare page share one set of fields
(``WorkloadFields``); each ``clean_*`` returns the value the view hands to the estimator, and a bad value
becomes a message next to its field rather than an exception.
"""

from __future__ import annotations

import re

from django import forms

from hardware.models import GPU, Segment, Vendor
from models.models import LanguageModel, QuantVRAM
from physics.vocab import KVCache, Split, choices, values
from planner.lookup import Ambiguous, NotFound, SeveralGPUs, find_gpu, find_model

BEST = "best"  # quant choice: the highest-precision format that fits each GPU
DEFAULT_QUANT = "Q4_K_M"  # the reference page's format
MIN_CONTEXT = 256
OLD_BUDGET = "budget"  # the budget's query name before it became budget_usd, as in the API

PRICE_BASIS = [
    ("street", "Street price (used/current where known)"),
    ("launch", "New, at launch price"),
]
KV_CHOICES = choices(KVCache)
SPLIT_CHOICES = [("both", "Try both"), *choices(Split)]
GPU_SORTS = {
    "memory": "Minimum VRAM (like the reference)",
    "speed": "Fastest first",
    "price": "Cheapest first",
    "value": "Best $ per tok/s",
}
# Columns the recommender's table can be sorted by (the estimator's column names).
RANK_COLUMNS = {
    "name": "GPU",
    "memory_gb": "VRAM",
    "decode_tok_s": "Decode tok/s",
    "prefill_tok_s": "Prefill tok/s",
    "price_usd": "Price",
    "usd_per_tok_s": "$ per tok/s",
    "usd_per_million_tokens": "$ per M tokens",
    "headroom_gb": "Headroom",
}
# A typical desktop's system RAM for the CPU-offload option: dual-channel DDR5-5600
# (2 channels x 8 bytes x 5600 MT/s = 89.6 GB/s theoretical).
DEFAULT_RAM_GB = 64
DEFAULT_RAM_BANDWIDTH_GB_S = 89.6
# Serving capacity: the slowest decode each user accepts unless they say otherwise (about reading speed).
DEFAULT_MIN_TOK_S = 10.0


def _vendor_choices() -> list[tuple[str, str]]:
    return [("", "Any vendor"), *Vendor.choices]


def _segment_choices() -> list[tuple[str, str]]:
    return [("", "Any segment"), *Segment.choices]


class AnyCaseChoiceField(forms.ChoiceField):
    """A choice of lower-case catalog values (vendor, segment) that takes any case, as the API does (NVIDIA)."""

    def to_python(self, value):
        return super().to_python(value).lower()


class WorkloadFields(forms.Form):
    """The inputs every ranking takes; ``model`` is fixed by the page (model page) or a field (subclasses)."""

    quant = forms.CharField(label="Format", required=False, initial=DEFAULT_QUANT, max_length=32)
    context = forms.IntegerField(label="Context (tokens)", initial=4096, min_value=MIN_CONTEXT)
    users = forms.IntegerField(label="Concurrent users", initial=1, min_value=1, max_value=256)
    kv_cache = forms.ChoiceField(label="KV cache", choices=KV_CHOICES, initial="fp16")
    # The API's name for the same input; "budget", the page's old name, is still read by from_query.
    budget_usd = forms.FloatField(label="Budget (USD)", required=False, max_value=1e9)
    vendor = AnyCaseChoiceField(label="Vendor", required=False, choices=_vendor_choices)
    segment = AnyCaseChoiceField(label="Segment", required=False, choices=_segment_choices)
    price_basis = forms.ChoiceField(label="Price", choices=PRICE_BASIS, initial="street", required=False)

    def __init__(self, *args, model: LanguageModel | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model = model

    @classmethod
    def from_query(cls, query, **kwargs) -> WorkloadFields:
        """Returns a bound form: the query's values over the fields' initials, so a bare URL is valid."""
        data = {name: field.initial for name, field in cls.base_fields.items() if field.initial is not None}
        if query.get(OLD_BUDGET, "") != "" and query.get("budget_usd", "") == "":
            data["budget_usd"] = query[OLD_BUDGET]  # links made before the rename keep working
        data.update({k: v for k, v in query.items() if k in cls.base_fields and v != ""})
        model = kwargs.get("model")
        if model is not None and query.get("context", "") == "" and model.context_length < data["context"]:
            data["context"] = model.context_length  # a short-context model's page opens at its whole context
        return cls(data, **kwargs)

    def clean_budget_usd(self) -> float | None:
        budget = self.cleaned_data.get("budget_usd")
        if budget is not None and budget < 0:
            raise forms.ValidationError("A budget cannot be negative.")
        return budget

    def clean_quant(self) -> str:
        quant = (self.cleaned_data.get("quant") or DEFAULT_QUANT).strip()
        return BEST if quant.lower() == BEST else quant

    def clean_price_basis(self) -> str:
        return self.cleaned_data.get("price_basis") or "street"

    def clean(self) -> dict:
        data = super().clean()
        # The ranking services read the budget under its old key.
        data[OLD_BUDGET] = data.get("budget_usd")
        model = data.get("model") or self.model
        if model is None:
            return data
        data["model"] = model
        context = data.get("context")
        if context is not None and context > model.context_length:
            self.add_error(
                "context", f"{model.name} reads at most {model.context_length:,} tokens; {context:,} is longer."
            )
        quant = data.get("quant")
        if quant and quant != BEST:
            row = quant_row(model, quant)
            if row is None:
                names = ", ".join(r.quant.name for r in model.vram_rows.all())
                self.add_error("quant", f"{model.name} has no {quant} row. Formats: {names}.")
            else:
                data["quant_row"] = row
        return data


def quant_row(model: LanguageModel, name: str) -> QuantVRAM | None:
    """Returns the model's VRAM-table row for a format name (case-insensitive; uses prefetched rows)."""
    rows = list(model.vram_rows.all())
    exact = [r for r in rows if r.quant.name == name]
    if exact:
        return exact[0]
    return next((r for r in rows if r.quant.name.lower() == name.lower()), None)


class ModelGPUForm(WorkloadFields):
    """The model page's "GPUs that can run this model" controls."""

    measured_only = forms.BooleanField(label="Measured only", required=False)
    sort = forms.ChoiceField(label="Sort", choices=list(GPU_SORTS.items()), initial="memory", required=False)

    def clean_sort(self) -> str:
        return self.cleaned_data.get("sort") or "memory"


class ModelField(forms.CharField):
    """A model named by slug, name or Hugging Face repo id; cleans to the LanguageModel (VRAM rows prefetched)."""

    def clean(self, value) -> LanguageModel | None:
        value = super().clean(value)
        if not value:
            return None
        try:
            return find_model(value)
        except NotFound as exc:
            raise forms.ValidationError(str(exc)) from None


class RecommendForm(WorkloadFields):
    """The recommender: a model and a workload -> ranked single GPUs."""

    model = ModelField(label="Model", max_length=200, initial="mixtral-8x7b-instruct-v0-1")
    sort = forms.ChoiceField(
        label="Sort by", choices=list(RANK_COLUMNS.items()), initial="decode_tok_s", required=False
    )
    order = forms.ChoiceField(
        label="Order", choices=[("desc", "High to low"), ("asc", "Low to high")], initial="desc", required=False
    )

    field_order = ["model", "quant", "context", "users", "kv_cache", "budget_usd", "vendor", "segment", "price_basis"]

    def clean_sort(self) -> str:
        return self.cleaned_data.get("sort") or "decode_tok_s"

    def clean_order(self) -> str:
        return self.cleaned_data.get("order") or "desc"


class PlanForm(WorkloadFields):
    """The build planner: the recommender's inputs plus several cards, split mode and CPU offload."""

    model = ModelField(label="Model", max_length=200, initial="mixtral-8x7b-instruct-v0-1")
    max_gpus = forms.IntegerField(label="Up to N GPUs", initial=4, min_value=1, max_value=8)
    # Serving capacity of a build: the slowest decode each user accepts.
    min_tok_s = forms.FloatField(
        label="Min tok/s per user", initial=DEFAULT_MIN_TOK_S, min_value=0.1, max_value=10_000, required=False
    )
    split = forms.ChoiceField(label="Split", choices=SPLIT_CHOICES, initial="both")
    offload = forms.BooleanField(label="Allow CPU offload", required=False)
    ram_gb = forms.FloatField(label="System RAM (GB)", initial=DEFAULT_RAM_GB, min_value=0, max_value=4096)
    ram_bandwidth_gb_s = forms.FloatField(
        label="RAM bandwidth (GB/s)", initial=DEFAULT_RAM_BANDWIDTH_GB_S, min_value=1, max_value=2000
    )

    field_order = [
        "model",
        "quant",
        "context",
        "users",
        "kv_cache",
        "budget_usd",
        "vendor",
        "segment",
        "price_basis",
        "max_gpus",
        "split",
        "offload",
        "ram_gb",
        "ram_bandwidth_gb_s",
        "min_tok_s",
    ]

    def clean_min_tok_s(self) -> float:
        return self.cleaned_data.get("min_tok_s") or DEFAULT_MIN_TOK_S

    def clean_split(self) -> tuple[str, ...]:
        split = self.cleaned_data.get("split") or "both"
        return values(Split) if split == "both" else (split,)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("quant") == BEST:
            # A build is sized for one format; "best that fits" would need one search per format.
            self.add_error("quant", "The planner sizes builds for one format; pick one (e.g. Q4_K_M).")
        return data


class BasisForm(PlanForm):
    """One build of the planner's table: its GPU, count and split, for the basis partial."""

    gpu = forms.CharField(max_length=200)
    count = forms.IntegerField(min_value=1, max_value=8)
    split_one = forms.ChoiceField(choices=[(s.value, s.value) for s in Split], initial=Split.LAYER)

    def clean_gpu(self) -> GPU:
        try:
            return find_gpu(self.cleaned_data["gpu"])
        except NotFound as exc:
            raise forms.ValidationError(str(exc)) from None


class CompareForm(WorkloadFields):
    """Compare: a list of GPUs side by side for one model."""

    gpus = forms.CharField(
        label="GPUs (comma-separated)",
        max_length=1000,
        initial="nvidia-geforce-rtx-4090,nvidia-geforce-rtx-3090,nvidia-rtx-6000-ada-generation",
    )
    model = ModelField(label="Model", max_length=200, initial="mixtral-8x7b-instruct-v0-1")

    field_order = ["gpus", "model", "quant", "context", "users", "kv_cache"]

    def clean_gpus(self) -> list[GPU]:
        names = [n.strip() for n in self.cleaned_data["gpus"].split(",") if n.strip()]
        if not names:
            raise forms.ValidationError("Name at least one GPU.")
        if len(names) > 8:
            raise forms.ValidationError("Compare at most 8 GPUs at once.")
        gpus, errors = [], []
        for name in names:
            try:
                gpus.append(find_gpu(name))
            except NotFound as exc:
                errors.append(str(exc))
        if errors:
            raise forms.ValidationError(errors)
        return gpus


# One GPU model, optionally with a count: "rtx-3090" or "rtx-3090:2" (the machine page's shareable form).
GPU_WITH_COUNT = re.compile(r"^\s*(?P<name>[^:]+?)\s*(?::\s*(?P<count>\d{1,2}))?\s*$")
MACHINE_SORTS = {"speed": "Fastest first", "size": "Largest model first", "name": "Name"}
# What a model is for, as the catalog tags it (LanguageModel.tags).
MACHINE_USES = {
    "chat": "Chat",
    "coding": "Coding",
    "reasoning": "Reasoning",
    "vision": "Vision",
    "multilingual": "Multilingual",
    "base": "Base (not tuned to chat)",
}
# Model size classes by total parameters, billions: (label, lowest, below).
MACHINE_SIZES = {
    "small": ("Under 10B", 0.0, 10.0),
    "medium": ("10B to 40B", 10.0, 40.0),
    "large": ("40B and up", 40.0, float("inf")),
}


class MachineForm(forms.Form):
    """A machine: its GPUs (one model, a count), system RAM for offload, and the context each answer needs."""

    gpu = forms.CharField(
        label="GPU",
        max_length=120,
        help_text="A catalog name or alias, or a Mac's chip with its memory (M4 Pro 48GB); rtx-3090:2 for two cards, "
        "or use the count.",
    )
    count = forms.IntegerField(label="How many", required=False, min_value=1, max_value=16)
    ram = forms.FloatField(label="System RAM (GB)", required=False, min_value=0, max_value=4096)
    ram_bandwidth_gb_s = forms.FloatField(
        label="RAM bandwidth (GB/s)", required=False, min_value=1, max_value=2000, initial=DEFAULT_RAM_BANDWIDTH_GB_S
    )
    context = forms.IntegerField(label="Context (tokens)", required=False, min_value=MIN_CONTEXT, max_value=1_048_576)
    users = forms.IntegerField(label="Concurrent users", required=False, min_value=1, max_value=256)
    sort = forms.ChoiceField(label="Sort", required=False, choices=list(MACHINE_SORTS.items()))
    family = forms.CharField(label="Family", required=False, max_length=60)
    use = forms.ChoiceField(label="Use", required=False, choices=[("", "Any"), *MACHINE_USES.items()])
    size = forms.ChoiceField(
        label="Size", required=False, choices=[("", "Any"), *((k, v[0]) for k, v in MACHINE_SIZES.items())]
    )
    moe = forms.ChoiceField(
        label="Architecture", required=False, choices=[("", "Any"), ("dense", "Dense"), ("moe", "MoE")]
    )
    # Serving capacity for one of the listed models: its slug, and the slowest speed each user accepts.
    serve = forms.SlugField(label="Serve", required=False, max_length=140)
    min_tok_s = forms.FloatField(label="Min tok/s per user", required=False, min_value=0.1, max_value=10_000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.candidates: list[GPU] = []  # a Mac's chip that comes in several configurations: the ones it may be
        self.mixed: list[tuple[GPU, int]] = []  # different GPU models named together: each with its count
        self._count_in_name: int | None = None

    def clean_gpu(self) -> GPU:
        values = [v for v in self.data.getlist("gpu") if v.strip()] if hasattr(self.data, "getlist") else []
        # gpu=rtx-4090&gpu=rtx-3060 (the shareable query of a paste) is read like "rtx-4090 + rtx-3060".
        text = " + ".join(values) if len(values) > 1 else self.cleaned_data["gpu"]
        match = GPU_WITH_COUNT.match(text)
        # "rtx-3090:2" carries its count; a list ("RTX 4090 + RTX 3090", "3090:1, 3090:1") goes to the lookup whole.
        name = match.group("name") if match else text
        self._count_in_name = int(match.group("count")) if match and match.group("count") else None
        try:
            return find_gpu(name)
        except SeveralGPUs as exc:
            if not exc.mixed:
                gpu, self._count_in_name = exc.rows[0]  # "RTX 3090 + RTX 3090" is two 3090s
                return gpu
            self.mixed = exc.rows
            raise forms.ValidationError(str(exc)) from None
        except Ambiguous as exc:
            self.candidates = exc.rows
            raise forms.ValidationError(str(exc)) from None
        except NotFound as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        data = super().clean()
        if "gpu" in data:
            data["count"] = self._count_in_name or data.get("count") or 1
            if not 1 <= data["count"] <= 16:
                self.add_error("count", "Between 1 and 16 GPUs.")
        data["ram"] = data.get("ram") or 0.0
        data["ram_bandwidth_gb_s"] = data.get("ram_bandwidth_gb_s") or DEFAULT_RAM_BANDWIDTH_GB_S
        data["context"] = data.get("context") or 8192
        data["users"] = data.get("users") or 1
        data["sort"] = data.get("sort") or "speed"
        data["min_tok_s"] = data.get("min_tok_s") or DEFAULT_MIN_TOK_S
        return data


class CapacityForm(forms.Form):
    """Serving capacity on the model page: a build, the context each user keeps, the slowest speed accepted."""

    gpu = forms.CharField(label="GPU", max_length=120, initial="NVIDIA H100 SXM5 80 GB")
    count = forms.IntegerField(label="GPUs", min_value=1, max_value=16, initial=1)
    context = forms.IntegerField(label="Context per user", min_value=MIN_CONTEXT, max_value=1_048_576, initial=8192)
    min_tok_s = forms.FloatField(label="Min tok/s per user", min_value=0.1, max_value=10_000, initial=10)

    def clean_gpu(self) -> GPU:
        try:
            return find_gpu(self.cleaned_data["gpu"])
        except NotFound as exc:
            raise forms.ValidationError(str(exc)) from None


class PasteForm(forms.Form):
    text = forms.CharField(
        label="Paste what your machine says",
        max_length=50_000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="nvidia-smi (table, -L or --query-gpu csv), rocm-smi, system_profiler, lspci, wmic, or plain text.",
    )
    ram = forms.FloatField(
        label="System RAM (GB)",
        required=False,
        min_value=0,
        max_value=4096,
        # Its own id: the machine page's form, on the same page, has a RAM box of its own.
        widget=forms.NumberInput(attrs={"id": "paste-ram", "step": "any", "placeholder": "64"}),
        help_text="Optional: for models that fit only with part of the weights in system RAM. It wins over a size "
        "the text states (free, system_profiler, wmic).",
    )
