"""Estimate inputs, validated in one place for the CLI (`manage.py estimate`) and the JSON API.

`EstimateQuery` takes either catalog names (model, format, GPU) or a custom architecture and custom
hardware, checks every value and builds the estimator's plain inputs. Unknown names are kept apart
from other errors (`not_found`) because both callers answer them differently: exit code 2 or HTTP 404,
each with the closest catalog names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django import forms

from models.resolver import Resolution, resolve_model
from physics.builds import build_problem, engine_for
from physics.capacity import serving_capacity
from physics.estimator import Build, GPUSpec, ModelArch, Quant, Workload, estimate
from physics.vocab import Engine, KVCache, Split
from planner.calibration import calibration_factors
from planner.inputs import gpu_spec, model_arch, quant_of
from planner.lookup import NotFound, SeveralGPUs, find_format, find_gpu, find_model

# Upper bounds keep arithmetic finite and the work per request small. Each sits well above anything
# real: the largest catalog model has ~0.7 T parameters and the longest context is ~10 M tokens.
MAX_PARAMS_B = 100_000.0
MAX_LAYERS = 10_000
MAX_HEADS = 100_000
MAX_HEAD_DIM = 100_000
MAX_HIDDEN = 1_000_000
MAX_VOCAB = 10_000_000
MAX_EXPERTS = 100_000
MAX_MEMORY_GB = 1_000_000.0
MAX_BANDWIDTH_GB_S = 1_000_000.0
MAX_TFLOPS = 1_000_000.0
MAX_GPUS = 1024
MAX_CONTEXT = 100_000_000
MAX_BATCH = 100_000
MAX_BPW = 32.0


@dataclass(frozen=True)
class EstimateInputs:
    """The estimator's inputs for one query, with the GPU count echoed in the JSON."""

    model: ModelArch
    quant: Quant
    build: Build
    workload: Workload
    requested_engine: str = ""  # what the caller asked for; workload.backend is the engine that runs the build
    hf_repo: str = ""
    name_note: str = ""  # how a bare Ollama name ("mixtral") was read; '' when the name was the model's own

    def run(self) -> dict[str, Any]:
        """Returns the estimate as JSON-ready data, the same shape as `manage.py estimate --json`."""
        result = estimate(self.model, self.quant, self.build, self.workload, calibration_factors(), self.hf_repo)
        return {
            "model": self.model.name,
            "quant": self.quant.name,
            "gpu": self.build.gpu.name,
            "gpus": self.build.count,
            "engine": self.workload.backend,
            "engine_note": self.engine_note(),
            "check_command": result.basis["check_command"],
            **result.to_dict(),
            **({"notes": [self.name_note, *result.notes]} if self.name_note else {}),
        }

    def engine_note(self) -> str:
        """Returns why the estimate is for another engine than the one asked for ('' when it is the same)."""
        engine = self.workload.backend
        if not self.requested_engine or self.requested_engine == engine:
            return ""
        return f"Estimated for {engine}: {self.requested_engine} does not run {self.quant.name}" + (
            f" as tensor parallel over {self.build.count} GPUs." if self.build.split == "tensor" else "."
        )

    def capacity(self, min_tok_s: float) -> dict[str, Any]:
        """Returns the serving capacity at this workload's context per user, JSON-ready (API and CLI alike)."""
        result = serving_capacity(self.model, self.quant, self.build, self.workload, min_tok_s, calibration_factors())
        return {
            "model": self.model.name,
            "quant": self.quant.name,
            "gpu": self.build.gpu.name,
            "gpus": self.build.count,
            "engine": self.workload.backend,
            **result.to_dict(),
        }


def name_note(found: Resolution) -> str:
    """Returns how a bare Ollama library name was read ("mixtral" as mixtral:latest) and what else it names, or ''."""
    if not found.latest_tag:
        return ""
    others = ", ".join(m.name for m in found.candidates)
    text = f"'{found.query.strip()}' read as Ollama's {found.latest_tag}, {found.model.name}"
    return text + (f"; other models by that name: {others}." if others else ".")


def _positive_float(maximum: float) -> forms.FloatField:
    return forms.FloatField(required=False, max_value=maximum)


def _positive_int(maximum: int) -> forms.IntegerField:
    return forms.IntegerField(required=False, min_value=1, max_value=maximum)


class EstimateQuery(forms.Form):
    """A validated estimate request; `inputs()` returns the estimator's inputs once `is_valid()` holds.

    ``option_style`` only changes how messages name the fields: ``"cli"`` writes ``--params-b``
    (the command's options), ``"api"`` writes ``params_b`` (the query parameter).
    """

    # model
    model = forms.CharField(required=False, max_length=200, help_text="catalog model: slug, name or HF repo id")
    params_b = _positive_float(MAX_PARAMS_B)
    active_params_b = _positive_float(MAX_PARAMS_B)
    layers = _positive_int(MAX_LAYERS)
    kv_heads = _positive_int(MAX_HEADS)
    head_dim = _positive_int(MAX_HEAD_DIM)
    heads = _positive_int(MAX_HEADS)
    hidden = _positive_int(MAX_HIDDEN)
    vocab = _positive_int(MAX_VOCAB)
    experts = forms.IntegerField(required=False, min_value=0, max_value=MAX_EXPERTS)
    experts_per_token = forms.IntegerField(required=False, min_value=0, max_value=MAX_EXPERTS)
    # quantization
    quant = forms.CharField(required=False, max_length=64)
    bits_per_weight = _positive_float(MAX_BPW)
    # hardware
    gpu = forms.CharField(required=False, max_length=200)
    bandwidth_gb_s = _positive_float(MAX_BANDWIDTH_GB_S)
    memory_gb = _positive_float(MAX_MEMORY_GB)
    tflops = _positive_float(MAX_TFLOPS)
    unified = forms.BooleanField(required=False)
    gpus = _positive_int(MAX_GPUS)
    split = forms.ChoiceField(required=False, choices=[(s.value, s.value) for s in Split])
    offload_ram_gb = forms.FloatField(required=False, min_value=0, max_value=MAX_MEMORY_GB)
    ram_bandwidth_gb_s = forms.FloatField(required=False, min_value=0, max_value=MAX_BANDWIDTH_GB_S)
    # workload
    context = _positive_int(MAX_CONTEXT)
    prompt_tokens = _positive_int(MAX_CONTEXT)
    batch = _positive_int(MAX_BATCH)
    kv_cache = forms.ChoiceField(required=False, choices=[(k.value, k.value) for k in KVCache])
    backend = forms.ChoiceField(required=False, choices=[(e.value, e.value) for e in Engine])

    DEFAULTS: dict[str, Any] = {
        "vocab": 32000,
        "experts": 0,
        "experts_per_token": 0,
        "gpus": 1,
        "split": "layer",
        "offload_ram_gb": 0.0,
        "ram_bandwidth_gb_s": 0.0,
        "context": 4096,
        "prompt_tokens": 512,
        "batch": 1,
        "kv_cache": "fp16",
        "backend": "llama.cpp",
    }

    def __init__(self, *args: Any, option_style: str = "api", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.option_style = option_style
        self.not_found: list[NotFound] = []
        self._inputs: EstimateInputs | None = None

    def opt(self, field: str) -> str:
        """Returns the field's name as the caller's users type it."""
        return f"--{field.replace('_', '-')}" if self.option_style == "cli" else field

    # Field cleaning: typed values, defaults filled in, catalog names resolved to rows.

    def _clean_positive(self, name: str) -> float | None:
        value = self.cleaned_data.get(name)
        if value is not None and not value > 0:
            raise forms.ValidationError("must be more than 0", code="min_value")
        return value

    def clean_params_b(self) -> float | None:
        return self._clean_positive("params_b")

    def clean_active_params_b(self) -> float | None:
        return self._clean_positive("active_params_b")

    def clean_bits_per_weight(self) -> float | None:
        return self._clean_positive("bits_per_weight")

    def clean_bandwidth_gb_s(self) -> float | None:
        return self._clean_positive("bandwidth_gb_s")

    def clean_memory_gb(self) -> float | None:
        return self._clean_positive("memory_gb")

    def clean_tflops(self) -> float | None:
        return self._clean_positive("tflops")

    def _lookup(self, name: str, finder):
        text = (self.cleaned_data.get(name) or "").strip()
        if not text:
            return None
        try:
            return finder(text)
        except SeveralGPUs as exc:
            # Known GPUs that do not make one build (an estimate is for one GPU model and a count): a 400, not a 404.
            raise forms.ValidationError(str(exc), code="several") from exc
        except NotFound as exc:
            self.not_found.append(exc)
            raise forms.ValidationError(str(exc), code="not_found") from exc

    @cached_property
    def resolution(self) -> Resolution:
        """Returns how the model name was read (resolved once: the format in its tag and the note both use it)."""
        return resolve_model(str(self.data.get("model", "")))

    def clean_model(self):
        """Returns the catalog LanguageModel (with its VRAM table prefetched), or None for a custom model."""
        return self._lookup("model", find_model)

    def clean_gpu(self):
        """Returns the catalog GPU, or None for custom hardware."""
        return self._lookup("gpu", find_gpu)

    def clean_quant(self) -> str:
        """Returns the format name; an Ollama tag that names one (llama3.1:70b-instruct-q4_K_M) supplies it."""
        quant = (self.cleaned_data.get("quant") or "").strip()
        if not quant and self.cleaned_data.get("model") is not None:
            quant = self.resolution.format or ""
        return quant

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name, default in self.DEFAULTS.items():
            if data.get(name) in (None, ""):
                data[name] = default
        if self.errors:
            return data
        try:
            model, quant = self._model_and_quant(data)
            gpu = self._gpu(data)
        except NotFound as exc:
            self.not_found.append(exc)
            raise forms.ValidationError(str(exc), code="not_found") from exc
        if data["context"] > model.context_length:
            raise forms.ValidationError(
                f"{self.opt('context')} {data['context']} is longer than {model.name}'s {model.context_length}-token context.",
                code="context",
            )
        if (data["offload_ram_gb"] > 0) != (data["ram_bandwidth_gb_s"] > 0):
            raise forms.ValidationError(
                f"{self.opt('offload_ram_gb')} and {self.opt('ram_bandwidth_gb_s')} go together.", code="offload"
            )
        problem = build_problem(model, quant.kind, quant.name, data["gpus"], data["split"])
        if problem:
            raise forms.ValidationError(problem, code="build")
        build = Build(
            gpu=gpu,
            count=data["gpus"],
            split=data["split"],
            offload_ram_gb=data["offload_ram_gb"],
            ram_bandwidth_gb_s=data["ram_bandwidth_gb_s"],
        )
        workload = Workload(
            context=data["context"],
            prompt_tokens=data["prompt_tokens"],
            batch=data["batch"],
            kv_cache=data["kv_cache"],
            backend=engine_for(quant.kind, data["split"], data["gpus"], data["backend"]),
        )
        hf_repo = data["model"].hf_repo if data["model"] is not None else ""
        self._inputs = EstimateInputs(
            model=model,
            quant=quant,
            build=build,
            workload=workload,
            requested_engine=data["backend"],
            hf_repo=hf_repo,
            name_note=name_note(self.resolution) if data["model"] is not None else "",
        )
        return data

    def inputs(self) -> EstimateInputs:
        """Returns the estimator's inputs; call after is_valid() returned True."""
        if self._inputs is None:
            raise ValueError("EstimateQuery.inputs() needs a valid form (call is_valid() first).")
        return self._inputs

    def messages(self) -> list[str]:
        """Returns every error as one readable line, field errors prefixed with the field's option name."""
        lines = []
        for field, errors in self.errors.as_data().items():
            for error in errors:
                text = " ".join(error.messages)
                bare = field == "__all__" or error.code == "not_found"
                lines.append(text if bare else f"{self.opt(field)}: {text}")
        return lines

    def _model_and_quant(self, o: dict[str, Any]) -> tuple[ModelArch, Quant]:
        if o["model"] is not None:
            row = o["model"]
            model = model_arch(row)
            vram = {r.quant.name.lower(): r for r in row.vram_rows.all()}
        else:
            missing = [self.opt(k) for k in ("params_b", "layers", "kv_heads", "head_dim") if not o[k]]
            if missing:
                raise forms.ValidationError(
                    f"Give {self.opt('model')}, or a custom model with {', '.join(missing)}.", code="required"
                )
            total = int(o["params_b"] * 1e9)
            active = int((o["active_params_b"] or o["params_b"]) * 1e9)
            if active > total:
                raise forms.ValidationError(
                    f"{self.opt('active_params_b')} cannot exceed {self.opt('params_b')}.", code="active"
                )
            if o["experts_per_token"] > o["experts"]:
                raise forms.ValidationError(
                    f"{self.opt('experts_per_token')} cannot exceed {self.opt('experts')}.", code="experts"
                )
            heads = o["heads"] or o["kv_heads"] * 4
            hidden = o["hidden"] or heads * o["head_dim"]
            # A MoE's inactive parameters are the unused experts: spread them over experts and layers.
            expert_params = (
                (total - active) // max(o["experts"] - o["experts_per_token"], 1) // o["layers"] if o["experts"] else 0
            )
            model = ModelArch(
                name="custom model",
                total_params=total,
                active_params=active,
                layers=o["layers"],
                hidden=hidden,
                heads=heads,
                kv_heads=o["kv_heads"],
                head_dim=o["head_dim"],
                vocab=o["vocab"],
                context_length=max(o["context"], 4096),
                experts=o["experts"],
                experts_per_token=o["experts_per_token"],
                expert_params=expert_params,
                moe_layers=o["layers"] if o["experts"] else 0,
                embedding_params=o["vocab"] * hidden,
            )
            vram = {}
        if not o["quant"] and not o["bits_per_weight"]:
            raise forms.ValidationError(
                f"Give {self.opt('quant')} NAME and/or {self.opt('bits_per_weight')} X.", code="required"
            )
        if o["quant"]:
            row = vram.get(o["quant"].lower())
            if row is not None:
                quant = quant_of(row)
            else:
                fmt = find_format(o["quant"])
                quant = Quant(name=fmt.name, bits_per_weight=fmt.bits_per_weight, kind=fmt.kind)
            if o["bits_per_weight"]:
                quant = Quant(name=quant.name, bits_per_weight=o["bits_per_weight"], kind=quant.kind)
        else:
            quant = Quant(name=f"{o['bits_per_weight']} bpw", bits_per_weight=o["bits_per_weight"], kind="custom")
        return model, quant

    def _gpu(self, o: dict[str, Any]) -> GPUSpec:
        if o["gpu"] is not None:
            return gpu_spec(o["gpu"])
        if not (o["bandwidth_gb_s"] and o["memory_gb"]):
            raise forms.ValidationError(
                f"Give {self.opt('gpu')} NAME, or custom hardware with {self.opt('bandwidth_gb_s')} and "
                f"{self.opt('memory_gb')}.",
                code="required",
            )
        return GPUSpec(
            name="custom hardware",
            vendor="other",
            segment="integrated-soc" if o["unified"] else "consumer",
            memory_gb=o["memory_gb"],
            bandwidth_gb_s=o["bandwidth_gb_s"],
            fp16_tflops=o["tflops"],
            unified_memory=o["unified"],
        )


def finite(value: Any) -> Any:
    """Returns ``value`` with every non-finite float (inf, nan) replaced by None, so it is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
