"""Turning a name a person typed into one catalog model (and, for an Ollama tag, a quantization format).

People name models many ways: the slug (``mixtral-8x7b-instruct-v0-1``), the display name
(``Mixtral-8x7B-Instruct-v0.1``), the Hugging Face repo id (``mistralai/Mixtral-8x7B-Instruct-v0.1``),
an Ollama tag (``mixtral:8x7b``, ``llama3.1:70b-instruct-q4_K_M``) or a common spelling
(``Mixtral-8x7B``).  :func:`resolve_model` tries them in that spirit and says what it found:
one model, several candidates (ambiguous), or the closest names (unknown).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from models.models import LanguageModel, LanguageModelAlias, QuantFormat, normalise_alias

# Quantization suffixes of Ollama tags: "-q4_K_M", "-q8_0", "-fp16", "-bf16", "-mxfp4", "-iq4_xs".
_QUANT_SUFFIX = re.compile(r"-(i?q\d(?:_[a-z0-9]+)*|fp16|f16|bf16|fp32|f32|fp8|mxfp4)$", re.IGNORECASE)
# Variant words Ollama puts between the size and the quantization; "-instruct"/"-chat" name the model
# the plain tag already serves, so dropping them keeps the same weights.
_SAME_WEIGHTS_VARIANT = re.compile(r"-(instruct|chat|it)$", re.IGNORECASE)
# Ollama spells full precision "fp16"; the catalog's GGUF rows are "F16" / "BF16".
_FORMAT_SPELLINGS = {"fp16": "F16", "f16": "F16", "bf16": "BF16", "fp32": "F32", "f32": "F32"}

MAX_CANDIDATES = 5


@dataclass(frozen=True)
class Resolution:
    """What a name resolved to: a model (or None), a format named in the tag, and candidates otherwise."""

    query: str
    model: LanguageModel | None = None
    format: str | None = None  # e.g. "Q4_K_M" from "llama3.1:70b-instruct-q4_K_M"
    # "slug", "name", "hf_repo", "alias", "family", "ollama-default" (a bare Ollama library name read as its
    # ":latest" tag, the others that name fits in `candidates`), "ambiguous", or "" when nothing matched
    matched_by: str = ""
    candidates: list[LanguageModel] = field(default_factory=list)

    @property
    def ambiguous(self) -> bool:
        """Returns True when the name fits several models and none was chosen."""
        return self.model is None and bool(self.candidates) and self.matched_by == "ambiguous"

    @property
    def found(self) -> bool:
        return self.model is not None

    @property
    def latest_tag(self) -> str:
        """Returns the Ollama tag a bare library name was read as ("mixtral:latest"), or '' for any other match."""
        return (
            f"{self.query.strip().lower()}:latest"
            if self.model is not None and self.matched_by == "ollama-default"
            else ""
        )


def _exact(key: str, raw: str) -> tuple[list[LanguageModel], str]:
    """Returns the models whose slug, name, repo id or alias equals the name, and which field matched."""
    hits: dict[int, tuple[LanguageModel, str]] = {}
    lookups = (
        ("slug", LanguageModel.objects.filter(slug__iexact=raw)),
        ("name", LanguageModel.objects.filter(name__iexact=raw)),
        ("hf_repo", LanguageModel.objects.filter(hf_repo__iexact=raw)),
    )
    for field_name, queryset in lookups:
        for model in queryset:
            hits.setdefault(model.pk, (model, field_name))
    for alias in LanguageModelAlias.objects.select_related("model").filter(normalised=key):
        hits.setdefault(alias.model.pk, (alias.model, "alias"))
    models = [model for model, _ in hits.values()]
    how = next(iter(hits.values()))[1] if len(hits) == 1 else ""
    return models, how


def _split_format(name: str) -> tuple[str, str | None]:
    """Returns (name without an Ollama quantization suffix, catalog format name or None)."""
    if ":" not in name:
        return name, None
    match = _QUANT_SUFFIX.search(name)
    if not match:
        return name, None
    suffix = match.group(1)
    known = {n.lower(): n for n in QuantFormat.objects.values_list("name", flat=True)}
    canonical = _FORMAT_SPELLINGS.get(suffix.lower(), suffix.upper())
    return name[: match.start()], known.get(canonical.lower(), canonical)


def _names() -> dict[str, set[int]]:
    """Returns every normalised name the catalog knows, mapped to the models it names."""
    names: dict[str, set[int]] = {}
    for pk, slug, name, repo in LanguageModel.objects.values_list("pk", "slug", "name", "hf_repo"):
        for value in (slug, name, repo):
            if value:
                names.setdefault(normalise_alias(value), set()).add(pk)
    for normalised, pk in LanguageModelAlias.objects.values_list("normalised", "model_id"):
        names.setdefault(normalised, set()).add(pk)
    return names


def _models(pks: list[int]) -> list[LanguageModel]:
    by_pk = LanguageModel.objects.in_bulk(pks)
    return [by_pk[pk] for pk in pks if pk in by_pk]


def _family_candidates(key: str, names: dict[str, set[int]]) -> list[int]:
    """Returns models named `key` plus a size or variant ("llama3.1" -> llama3.1:8b, llama3.1:70b, …)."""
    pks: list[int] = []
    for name, owners in sorted(names.items()):
        if name.startswith(key + ":") or name.startswith(key + "-"):
            for pk in sorted(owners):
                if pk not in pks:
                    pks.append(pk)
    return pks


def resolve_model(name: str) -> Resolution:
    """Returns the Resolution of a model name: one model, or candidates when it is ambiguous or unknown.

    Matching is case-insensitive on slug, name, Hugging Face repo id and alias.  An Ollama tag with a
    quantization suffix resolves the tag without it and returns the format ("Q4_K_M").  A name that
    fits several models (a family without a size) returns them as candidates and no model; an
    unknown name returns the closest known names' models.
    """
    raw = (name or "").strip()
    if not raw:
        return Resolution(query=name)
    models, how = _exact(normalise_alias(raw), raw)
    if len(models) == 1:
        return Resolution(query=name, model=models[0], matched_by=how)
    if len(models) > 1:
        return Resolution(query=name, matched_by="ambiguous", candidates=models)

    base, fmt = _split_format(raw)
    tries = [base] if base != raw else []
    if ":" in base and _SAME_WEIGHTS_VARIANT.search(base):
        tries.append(_SAME_WEIGHTS_VARIANT.sub("", base))
    for attempt in tries:
        models, how = _exact(normalise_alias(attempt), attempt)
        if len(models) == 1:
            return Resolution(query=name, model=models[0], format=fmt, matched_by=how)
        if len(models) > 1:
            return Resolution(query=name, format=fmt, matched_by="ambiguous", candidates=models)

    names = _names()
    key = normalise_alias(base)
    # A tag with a size (`deepseek-r1:8b`) names one set of weights: when the catalog does not hold it, a longer tag
    # that starts the same way is offered among the closest names below, never opened (Ollama re-points tags).
    prefixed = _family_candidates(key, names)
    longer, family = (prefixed, []) if ":" in base else ([], prefixed)
    if ":" not in base:
        # A bare Ollama library name ("mixtral") is what `ollama run mixtral` runs: its ":latest" tag. The other
        # models the name fits stay in the answer, so that a page can offer them beside it.
        models, _ = _exact(normalise_alias(f"{base}:latest"), f"{base}:latest")
        if len(models) == 1:
            others = [pk for pk in family if pk != models[0].pk][:MAX_CANDIDATES]
            return Resolution(
                query=name, model=models[0], format=fmt, matched_by="ollama-default", candidates=_models(others)
            )
    if len(family) == 1:
        return Resolution(query=name, model=_models(family)[0], format=fmt, matched_by="family")
    if family:
        return Resolution(query=name, format=fmt, matched_by="ambiguous", candidates=_models(family[:MAX_CANDIDATES]))

    close = difflib.get_close_matches(key, list(names), n=MAX_CANDIDATES * 2, cutoff=0.6)
    pks: list[int] = list(longer)
    for match in close:
        for pk in sorted(names[match]):
            if pk not in pks:
                pks.append(pk)
    return Resolution(query=name, format=fmt, candidates=_models(pks[:MAX_CANDIDATES]))
