"""Finding catalog rows by the names people type: slug, name, alias or Hugging Face repo id."""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict

from django.db import connection

from hardware.apple import AppleName, match_apple, parse_apple
from hardware.machine import MIXED_GPUS, split_gpu_names
from hardware.models import GPU
from models.models import LanguageModel, QuantFormat
from models.resolver import resolve_model


class CatalogFreshnessMiddleware:
    """Lets a request read the catalog fingerprint once, however many lookups it makes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        begin_request()
        try:
            return self.get_response(request)
        finally:
            end_request()


# Catalog rows found by name, kept per process while the catalog is unchanged. Finding a model with its VRAM
# table and a GPU by alias takes several queries; the fingerprint below takes one. Each entry keeps the fingerprint
# that was read before it was built: {cache key: (fingerprint, value)}.
_FOUND: dict[str, tuple[tuple, object]] = {}

_VERSION_SQL = """
SELECT (SELECT COUNT(*) FROM hardware_gpu), (SELECT MAX(updated_at) FROM hardware_gpu), (SELECT MAX(id) FROM hardware_gpu),
       (SELECT COUNT(*) FROM hardware_gpualias), (SELECT MAX(id) FROM hardware_gpualias),
       (SELECT COUNT(*) FROM models_languagemodel), (SELECT MAX(updated_at) FROM models_languagemodel),
       (SELECT COUNT(*) FROM models_quantvram), (SELECT MAX(updated_at) FROM models_quantvram),
       (SELECT COUNT(*) FROM models_quantformat), (SELECT MAX(updated_at) FROM models_quantformat),
       (SELECT COUNT(*) FROM planner_calibration), (SELECT MAX(updated_at) FROM planner_calibration),
       (SELECT COUNT(*) FROM inference_benchmarkresult), (SELECT MAX(id) FROM inference_benchmarkresult)
"""


def catalog_fingerprint() -> tuple:
    """Returns a value that changes whenever a catalog, calibration or result row is added, changed or removed.

    One query. Results count because pages show them beside the estimates.
    """
    with connection.cursor() as cursor:
        cursor.execute(_VERSION_SQL)
        row = cursor.fetchone()
    return (connection.alias, connection.settings_dict["NAME"], *row)


# Inside a request the fingerprint is read once, before the request's first lookup (CatalogFreshnessMiddleware
# marks the request's start); outside one (commands, tests calling functions) it is read on every lookup.
_REQUEST = threading.local()
_UNREAD = object()


def begin_request() -> None:
    _REQUEST.version = _UNREAD


def end_request() -> None:
    _REQUEST.version = None


def _current_version() -> tuple:
    """Returns the catalog fingerprint this lookup works under (the request's, read once, or a fresh one)."""
    version = getattr(_REQUEST, "version", None)
    if version is None:
        return catalog_fingerprint()
    if version is _UNREAD:
        _REQUEST.version = catalog_fingerprint()
    return _REQUEST.version


def remembered(kind: str, key: str, find):
    """Returns find() for (kind, key), remembered until the catalog fingerprint changes.

    The fingerprint is read before find() runs and the value is stored under it. Were it read after, a catalog
    change made while find() runs (by another request) would file a value built from the old rows under the
    new fingerprint, and that stale value would be served until the next change.
    """
    version = _current_version()
    cache_key = f"{kind}:{key.strip().lower()}"
    entry = _FOUND.get(cache_key)
    if entry is not None and entry[0] == version:
        return entry[1]
    value = find()
    # Forget what was built under other fingerprints (an older catalog), so the cache stays small.
    for stale_key in [k for k, (stored, _) in list(_FOUND.items()) if stored != version]:
        _FOUND.pop(stale_key, None)
    _FOUND[cache_key] = (version, value)
    return value


# Values keyed by what a visitor chose (a GPU build and a workload), kept per process for the last few choices
# while the catalog is unchanged: the views of one machine (sorted, filtered, one model's serving capacity opened)
# rank once. {cache key: (fingerprint, value)}, oldest first. A machine's ranking of every catalog model is about
# 1.5 MB (1,548 rows of 46 columns), so 8 of them stay near 12 MB a process.
RECENT_SIZE = 8
_RECENT: OrderedDict[str, tuple[tuple, object]] = OrderedDict()
_RECENT_LOCK = threading.Lock()


def recent(kind: str, key: str, find):
    """Returns find() for (kind, key), kept for the RECENT_SIZE latest keys while the catalog fingerprint holds.

    The fingerprint is read before find() runs, as in remembered().
    """
    version = _current_version()
    cache_key = f"{kind}:{key}"
    with _RECENT_LOCK:
        entry = _RECENT.get(cache_key)
        if entry is not None and entry[0] == version:
            _RECENT.move_to_end(cache_key)
            return entry[1]
    value = find()
    with _RECENT_LOCK:
        _RECENT[cache_key] = (version, value)
        _RECENT.move_to_end(cache_key)
        while len(_RECENT) > RECENT_SIZE:
            _RECENT.popitem(last=False)
    return value


class NotFound(LookupError):
    """A name that matches nothing; the message lists the closest names."""

    def __init__(self, kind: str, name: str, suggestions: list[str], message: str = ""):
        self.kind, self.name, self.suggestions = kind, name, suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(message or f"Unknown {kind} {name!r}.{hint}")


class Ambiguous(NotFound):
    """A name that fits several catalog GPUs ("M2 Max": three memory sizes); ``rows`` are the candidates."""

    def __init__(self, name: str, rows: list[GPU], reason: str):
        self.rows = rows
        names = "; ".join(g.name for g in rows)
        super().__init__("GPU (ambiguous)", name, [g.name for g in rows], f"{name!r}: {reason}. Candidates: {names}.")


class SeveralGPUs(NotFound):
    """A name that lists several GPUs ("RTX 4090 + RTX 3090"); ``rows`` holds each GPU model with its count.

    One name stands for one GPU model, so it is refused; the machine page reads a list of one model as a count.
    """

    def __init__(self, name: str, rows: list[tuple[GPU, int]]):
        self.rows = rows
        if len(rows) == 1:
            gpu, count = rows[0]
            message = f"{name!r} names {count} × {gpu.name}: give the GPU once and the count (gpus={count})."
        else:
            listed = " + ".join(f"{count} × {gpu.name}" for gpu, count in rows)
            message = f"{name!r} names different GPU models ({listed}). {MIXED_GPUS}"
        super().__init__("GPU (several)", name, [gpu.name for gpu, _ in rows], message)

    @property
    def mixed(self) -> bool:
        return len(self.rows) > 1


def _close(name: str, candidates: list[str], n: int = 5) -> list[str]:
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    contains = [c for k, c in lowered.items() if name.lower() in k and c not in hits]
    return list(dict.fromkeys([lowered[h] for h in hits] + contains))[:n]


def find_model(name: str) -> LanguageModel:
    """Returns the model whose slug, name or Hugging Face repo id is ``name`` (its VRAM table prefetched)."""
    return remembered("model", name, lambda: _find_model(name))


def _find_model(name: str) -> LanguageModel:
    # One resolver for every entry point (models/resolver.py): slug, name, repo id, alias, Ollama tag.
    found = resolve_model(name)
    if found.model is None:
        kind = "model (ambiguous)" if found.ambiguous else "model"
        raise NotFound(kind, name, [c.name for c in found.candidates])
    return LanguageModel.objects.with_table().get(pk=found.model.pk)


def find_gpu(name: str) -> GPU:
    """Returns the GPU whose slug, name or alias is ``name``; a Mac by its chip ("M4 Pro 48GB") too.

    Raises NotFound for a name that matches nothing, Ambiguous for a Mac's chip that comes in several
    configurations, SeveralGPUs for a list ("RTX 4090 + RTX 3090").
    """
    return remembered("gpu", name, lambda: _find_gpu(name))


def _find_gpu(name: str) -> GPU:
    apple = parse_apple(name)
    if apple is not None:
        return _find_mac(name, apple)
    gpu = GPU.objects.resolve(name)
    if gpu is not None:
        return gpu
    parts = split_gpu_names(name)
    if len(parts) > 1 or (parts and parts[0][1] > 1):  # "RTX 4090 + RTX 3090", "2x RTX 3090"
        rows: dict[int, tuple[GPU, int]] = {}
        for part, count in parts:
            found = find_gpu(part)
            rows[found.pk] = (found, rows.get(found.pk, (found, 0))[1] + count)
        raise SeveralGPUs(name, list(rows.values()))
    names = list(GPU.objects.values_list("name", flat=True))
    raise NotFound("GPU", name, _close(name.strip(), names))


def _find_mac(name: str, apple: AppleName) -> GPU:
    """Returns the Apple configuration a Mac's name means; the catalog's own names and slugs answer first."""
    text = name.strip()
    exact = GPU.objects.filter(slug=text.lower()).first() or GPU.objects.filter(name__iexact=text).first()
    if exact is not None:
        return exact
    found = match_apple(apple)
    if found.gpu is not None:
        return found.gpu
    if found.candidates:
        raise Ambiguous(name, list(found.candidates), found.reason)
    raise NotFound("GPU", name, [], f"Unknown GPU {name!r}: {found.reason}.")


def find_format(name: str) -> QuantFormat:
    """Returns the quantization format called ``name`` (case-insensitive)."""
    fmt = QuantFormat.objects.filter(name__iexact=name.strip()).first()
    if fmt is None:
        raise NotFound(
            "quantization format", name, _close(name.strip(), list(QuantFormat.objects.values_list("name", flat=True)))
        )
    return fmt
