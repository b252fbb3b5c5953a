"""The benchmark job form: an engine that a live worker registered, the model and its weights, the target, the run."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.utils import timezone

from inference.models import BenchmarkJob, Device, WorkerEngine
from inference.results import device_spec_for, llama_cpp_models, max_layers_that_fit
from models.models import LanguageModel, QuantFormat, QuantKind
from physics.presets import PRESETS
from physics.runs import GGUF_FORMATS, RUNNABLE_ENGINES
from physics.vocab import Engine, Precision, Preset, choices

PRESET_LAYERS = {name: config.n_layers for name, config in PRESETS.items()}
ANY_HOST = "any"


class BenchmarkJobForm(forms.ModelForm):
    engine = forms.ChoiceField(
        required=False,
        error_messages={"invalid_choice": "No live worker has registered %(value)s."},
        help_text="Only engines that a live worker registered. gpufit-torch: our torch Mixtral; llama.cpp: a GGUF "
        "of the model with random weights at the real shapes.",
    )
    target = forms.ChoiceField(label="Target", help_text="A registered device, or any worker's CPU.")
    preset = forms.ChoiceField(choices=choices(Preset), initial=Preset.MIXTRAL_8X7B, required=False)
    model = forms.ModelChoiceField(
        queryset=LanguageModel.objects.none(),
        required=False,
        label="Catalog model",
        help_text="llama.cpp: the model whose config.json shapes the GGUF; empty: the preset above.",
    )
    gguf_format = forms.ChoiceField(required=False, label="GGUF format", help_text="llama.cpp: the file's format.")
    precision = forms.ChoiceField(
        choices=[("", "—"), *choices(Precision)],
        initial=Precision.BF16,
        required=False,
        help_text="gpufit-torch only.",
    )
    layers = forms.IntegerField(
        min_value=1, max_value=32, initial=1, help_text="Fewer than the model's layers is allowed; reported as such."
    )
    batch = forms.IntegerField(min_value=1, max_value=64, initial=1, help_text="llama.cpp runs one sequence.")
    prompt_tokens = forms.IntegerField(min_value=1, max_value=32768, initial=128)
    new_tokens = forms.IntegerField(min_value=1, max_value=4096, initial=32)
    repeats = forms.IntegerField(min_value=1, max_value=10, initial=3)

    class Meta:
        model = BenchmarkJob
        fields = [
            "engine",
            "preset",
            "model",
            "gguf_format",
            "precision",
            "layers",
            "batch",
            "prompt_tokens",
            "new_tokens",
            "repeats",
            "compile_decode",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        target_choices = [(f"{ANY_HOST}|cpu", "any worker — CPU")]
        # Only hosts with a recent heartbeat: a job for a host nobody runs would wait forever.
        live_since = timezone.now() - dt.timedelta(seconds=settings.GPUFIT_HEARTBEAT_STALE_S)
        devices = Device.objects.select_related("host").filter(host__last_seen__gte=live_since)
        for device in devices.order_by("host__hostname", "index"):
            label = f"{device.host.hostname} — {device.index} ({device.name}, {device.memory_gb:.0f} GB)"
            target_choices.append((f"{device.host.hostname}|{device.index}", label))
        self.fields["target"].choices = target_choices
        # {engine: {live host: backends}}, from what each worker registered when it started.
        self.engines: dict[str, dict[str, list[str]]] = {}
        for host, name, backends in WorkerEngine.objects.runnable().values_list("host__hostname", "name", "backends"):
            self.engines.setdefault(name, {})[host] = backends
        self.fields["engine"].choices = [(name, name) for name in self.offered_engines()]
        self.fields["model"].queryset = llama_cpp_models()
        known = set(QuantFormat.objects.filter(kind=QuantKind.GGUF).values_list("name", flat=True))
        self.fields["gguf_format"].choices = [("", "—")] + [(f, f) for f in GGUF_FORMATS if f in known]

    def offered_engines(self) -> list[str]:
        """Returns the engines a job may ask for: those a live worker can run. With no live worker at all, the job
        waits for the next one, and only gpufit-torch, which every worker runs, is offered."""
        if not self.engines:
            return [Engine.GPUFIT_TORCH.value]
        return [name for name in RUNNABLE_ENGINES if name in self.engines]

    def clean_engine(self) -> str:
        return self.cleaned_data.get("engine") or Engine.GPUFIT_TORCH.value

    def clean_target(self) -> tuple[str, str]:
        host, _, device = self.cleaned_data["target"].partition("|")
        return ("" if host == ANY_HOST else host, device or "cpu")

    def clean(self):
        data = super().clean()
        engine, target = data.get("engine"), data.get("target")
        if engine and target:
            self._check_host_has_engine(engine, *target)
        if engine == Engine.LLAMA_CPP:
            self._clean_llama_cpp(data)
            # One sequence from a GGUF: no torch precision; a catalog model's shapes replace the preset's.
            data["precision"] = ""
            if data.get("model"):
                data["preset"] = ""
        elif engine:
            self._clean_gpufit_torch(data)
            data["model"], data["gguf_format"] = None, ""
        return data

    def _check_host_has_engine(self, engine: str, host: str, device: str) -> None:
        hosts = self.engines.get(engine, {})
        if not self.engines:  # no live worker: the job waits for the next one (gpufit-torch only)
            return
        if not host:
            live = set().union(*self.engines.values())
            if live - set(hosts):
                self.add_error("target", f"Not every live worker has {engine}; pick a host that has it.")
            return
        if host not in hosts:
            self.add_error("target", f"{host} has not registered {engine}.")
            return
        backend = "cpu" if device == "cpu" else "cuda"
        if backend not in hosts[host]:
            self.add_error("target", f"{engine} on {host} was built for {', '.join(hosts[host]) or 'no backend'}.")

    def _clean_gpufit_torch(self, data: dict) -> None:
        preset, layers, target = data.get("preset"), data.get("layers"), data.get("target")
        if data.get("model"):
            self.add_error("model", "gpufit-torch runs its presets; a catalog model is for llama.cpp.")
        if data.get("gguf_format"):
            self.add_error("gguf_format", "A GGUF format is for llama.cpp; gpufit-torch takes a precision.")
        if not preset:
            self.add_error("preset", "gpufit-torch runs a preset.")
        if not data.get("precision") and "precision" not in self.errors:
            self.add_error("precision", "gpufit-torch needs a precision.")
        if preset and layers and layers > PRESET_LAYERS[preset]:
            self.add_error("layers", f"{preset} has {PRESET_LAYERS[preset]} layers.")
        if target and target[1].startswith("cuda") and data.get("precision") == "fp32":
            self.add_error("precision", "fp32 is for CPU runs; use bf16, int8 or int4 on a GPU.")
        if preset and data.get("prompt_tokens") and data.get("new_tokens"):
            room = PRESETS[preset].max_seq_len
            if data["prompt_tokens"] + data["new_tokens"] > room:
                self.add_error("prompt_tokens", f"The {preset} preset holds {room} tokens (prompt + new).")

    def _clean_llama_cpp(self, data: dict) -> None:
        model, preset, layers = data.get("model"), data.get("preset"), data.get("layers")
        if not data.get("gguf_format"):
            self.add_error("gguf_format", "llama.cpp needs a GGUF format.")
        if not (model or preset):
            self.add_error("model", "Pick a catalog model, or a preset.")
        if data.get("batch") and data["batch"] != 1:
            self.add_error("batch", "llama.cpp runs one sequence (batch 1).")
        if data.get("compile_decode"):
            self.add_error("compile_decode", "Compiling the decode step is a gpufit-torch option.")
        depth = model.layers if model else PRESET_LAYERS.get(preset or "", 0)
        if layers and depth and layers > depth:
            self.add_error("layers", f"{model or preset} has {depth} layers.")
        room = model.context_length if model else (PRESETS[preset].max_seq_len if preset else None)
        if room and data.get("prompt_tokens") and data.get("new_tokens"):
            if data["prompt_tokens"] + data["new_tokens"] > room:
                self.add_error("prompt_tokens", f"{model or preset} holds {room} tokens (prompt + new).")
        if not self.errors:
            self._check_layers_fit_the_cpu()

    def _check_layers_fit_the_cpu(self) -> None:
        """A CPU host holds the model's file in its RAM: on one, llama.cpp runs as many layers as fit, said so here."""
        host, device = self.cleaned_data["target"]
        row = Device.objects.filter(host__hostname=host, index=device).first() if host else None
        if device != "cpu" or row is None:
            return
        job = self._job()
        fits = max_layers_that_fit(job, device_spec_for(row))
        if job.layers > fits:
            self.add_error(
                "layers",
                f"{row.host.hostname}'s {row.memory_gb:.0f} GB of RAM holds {fits} layer{'s' if fits != 1 else ''} "
                f"of {job.model_name} at {job.gguf_format}; run fewer layers (the figures are extrapolated).",
            )

    def _job(self) -> BenchmarkJob:
        """Returns the unsaved job the cleaned values describe (clean() runs before the instance is filled in)."""
        job = BenchmarkJob(**{name: self.cleaned_data[name] for name in self._meta.fields})
        job.target_host, job.target_device = self.cleaned_data["target"]
        return job

    def save(self, commit: bool = True) -> BenchmarkJob:
        job = super().save(commit=False)
        job.target_host, job.target_device = self.cleaned_data["target"]
        # Fields left out of the request keep their model default; these follow the engine instead.
        job.preset, job.precision = self.cleaned_data["preset"], self.cleaned_data["precision"]
        if commit:
            job.save()
        return job
