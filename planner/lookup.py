"""Finding catalog rows by the names people type: slug, name, alias or Hugging Face repo id."""

from __future__ import annotations

import difflib

from hardware.models import GPU
from models.models import LanguageModel, QuantFormat


class NotFound(LookupError):
    """A name that matches nothing; the message lists the closest names."""

    def __init__(self, kind: str, name: str, suggestions: list[str]):
        self.kind, self.name, self.suggestions = kind, name, suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"Unknown {kind} {name!r}.{hint}")


def _close(name: str, candidates: list[str], n: int = 5) -> list[str]:
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    contains = [c for k, c in lowered.items() if name.lower() in k and c not in hits]
    return list(dict.fromkeys([lowered[h] for h in hits] + contains))[:n]


def find_model(name: str) -> LanguageModel:
    """Returns the model whose slug, name or Hugging Face repo id is ``name``."""
    key = name.strip()
    qs = LanguageModel.objects.with_table()
    model = (
        qs.filter(slug=key.lower()).first()
        or qs.filter(name__iexact=key).first()
        or qs.filter(hf_repo__iexact=key).first()
    )
    if model is None:
        names = list(LanguageModel.objects.values_list("name", flat=True)) + list(
            LanguageModel.objects.values_list("slug", flat=True)
        )
        raise NotFound("model", name, _close(key, names))
    return model


def find_gpu(name: str) -> GPU:
    """Returns the GPU whose slug, name or alias is ``name``."""
    gpu = GPU.objects.resolve(name)
    if gpu is None:
        names = list(GPU.objects.values_list("name", flat=True))
        raise NotFound("GPU", name, _close(name.strip(), names))
    return gpu


def find_format(name: str) -> QuantFormat:
    """Returns the quantization format called ``name`` (case-insensitive)."""
    fmt = QuantFormat.objects.filter(name__iexact=name.strip()).first()
    if fmt is None:
        raise NotFound(
            "quantization format", name, _close(name.strip(), list(QuantFormat.objects.values_list("name", flat=True)))
        )
    return fmt
