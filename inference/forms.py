from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.utils import timezone

from inference.models import BenchmarkJob, Device
from physics.presets import PRESETS
from physics.vocab import Precision, Preset, choices

PRESET_LAYERS = {name: config.n_layers for name, config in PRESETS.items()}


class BenchmarkJobForm(forms.ModelForm):
    preset = forms.ChoiceField(choices=choices(Preset), initial=Preset.MIXTRAL_8X7B)
    precision = forms.ChoiceField(choices=choices(Precision), initial=Precision.BF16)
    target = forms.ChoiceField(label="Target", help_text="A registered device, or any worker's CPU.")
    layers = forms.IntegerField(
        min_value=1, max_value=32, initial=1, help_text="Fewer than the model's layers is allowed; reported as such."
    )
    batch = forms.IntegerField(min_value=1, max_value=64, initial=1)
    prompt_tokens = forms.IntegerField(min_value=1, max_value=32768, initial=128)
    new_tokens = forms.IntegerField(min_value=1, max_value=4096, initial=32)
    repeats = forms.IntegerField(min_value=1, max_value=10, initial=3)

    class Meta:
        model = BenchmarkJob
        fields = ["preset", "layers", "precision", "batch", "prompt_tokens", "new_tokens", "repeats", "compile_decode"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("any|cpu", "any worker — CPU")]
        # Only hosts with a recent heartbeat: a job for a host nobody runs would wait forever.
        live_since = timezone.now() - dt.timedelta(seconds=settings.GPUFIT_HEARTBEAT_STALE_S)
        devices = Device.objects.select_related("host").filter(host__last_seen__gte=live_since)
        for device in devices.order_by("host__hostname", "index"):
            label = f"{device.host.hostname} — {device.index} ({device.name}, {device.memory_gb:.0f} GB)"
            choices.append((f"{device.host.hostname}|{device.index}", label))
        self.fields["target"].choices = choices

    def clean_target(self) -> tuple[str, str]:
        host, _, device = self.cleaned_data["target"].partition("|")
        return ("" if host == "any" else host, device or "cpu")

    def clean(self):
        data = super().clean()
        preset, layers = data.get("preset"), data.get("layers")
        if preset and layers and layers > PRESET_LAYERS[preset]:
            self.add_error("layers", f"{preset} has {PRESET_LAYERS[preset]} layers.")
        target = data.get("target")
        if target and target[1].startswith("cuda") and data.get("precision") == "fp32":
            self.add_error("precision", "fp32 is for CPU runs; use bf16, int8 or int4 on a GPU.")
        if preset and data.get("prompt_tokens") and data.get("new_tokens"):
            room = PRESETS[preset].max_seq_len
            if data["prompt_tokens"] + data["new_tokens"] > room:
                self.add_error("prompt_tokens", f"The {preset} preset holds {room} tokens (prompt + new).")
        return data

    def save(self, commit: bool = True) -> BenchmarkJob:
        job = super().save(commit=False)
        job.target_host, job.target_device = self.cleaned_data["target"]
        if commit:
            job.save()
        return job
