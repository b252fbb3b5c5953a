"""The engine interface (bench.engines) and the run records' new fields (physics.runs)."""

from __future__ import annotations

import pytest

from bench.engines import ENGINES, Engine, EngineInfo, available_engines, get_engine
from physics.gguf import FORMAT_TYPES
from physics.runs import GGUF_FORMATS, BenchResult, BenchSpec


def test_it_lists_both_engines_with_what_they_can_run():
    infos = {i.name: i for i in available_engines()}
    assert set(infos) == set(ENGINES) == {"gpufit-torch", "llama.cpp"}
    for info in infos.values():
        assert isinstance(info, EngineInfo) and info.available, info.reason
        assert info.backends[0] == "cpu" and info.version
        assert info.to_dict()["backends"] == list(info.backends)
    assert all(isinstance(e, Engine) for e in ENGINES.values())


def test_it_names_the_known_engines_for_an_unknown_one():
    assert get_engine("llama.cpp") is ENGINES["llama.cpp"]
    with pytest.raises(KeyError, match="gpufit-torch"):
        get_engine("vllm")


def test_the_torch_engine_runs_one_new_token():
    # new_tokens=1 used to make the warm-up's second decode step index past the KV cache.
    result = get_engine("gpufit-torch").run(BenchSpec(preset="tiny", prompt_tokens=8, new_tokens=1, repeats=1))
    assert result.status == "ok", result.message
    assert result.engine == "gpufit-torch" and result.engine_version and result.decode_tok_s > 0


def test_the_torch_engine_returns_an_invalid_spec_as_an_error():
    result = get_engine("gpufit-torch").run(BenchSpec(preset="tiny", gguf_format="Q4_K_M"))
    assert result.status == "error" and "for the llama.cpp engine" in result.message


def test_a_default_spec_is_still_the_torch_run_it_was():
    spec = BenchSpec()
    spec.validate()
    assert (spec.engine, spec.model_config, spec.gguf_format, spec.gguf_path) == ("gpufit-torch", None, "", "")
    assert BenchResult(spec={}, status="ok").engine == "gpufit-torch"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"engine": "vllm"}, "engine must be one of"),
        ({"engine": "llama.cpp"}, "needs gguf_format"),
        ({"engine": "llama.cpp", "gguf_format": "Q3_K_XL"}, "gguf_format must be one of"),
        ({"engine": "llama.cpp", "gguf_format": "Q4_K_M", "batch": 4}, "batch 1"),
        ({"engine": "llama.cpp", "gguf_format": "Q4_K_M", "compile": True}, "gpufit-torch options"),
        ({"engine": "llama.cpp", "gguf_format": "Q4_K_M", "device": "mps"}, "device must be"),
        ({"engine": "llama.cpp", "gguf_format": "Q4_K_M", "context_depth": -1}, "context_depth"),
        ({"engine": "llama.cpp", "gguf_format": "Q4_K_M", "threads": 0}, "threads"),
        ({"gguf_path": "/x.gguf"}, "for the llama.cpp engine"),
    ],
)
def test_it_refuses_specs_an_engine_cannot_run(fields, message):
    with pytest.raises(ValueError, match=message):
        BenchSpec(**fields).validate()


def test_every_format_a_llama_cpp_spec_accepts_has_a_layout():
    assert set(GGUF_FORMATS) == set(FORMAT_TYPES)
    for fmt in GGUF_FORMATS:
        BenchSpec(engine="llama.cpp", gguf_format=fmt).validate()
