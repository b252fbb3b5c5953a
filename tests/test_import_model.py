"""import_model: a model from a local config.json and a GGUF header; bad files write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from models.models import LanguageModel, QuantFormat, QuantVRAM

pytestmark = pytest.mark.django_db

# A tiny Mistral-shaped config: 2 layers, hidden 64, 4 heads of 16, 2 KV heads, FFN 128, vocab 256.
TINY = {
    "model_type": "mistral",
    "architectures": ["MistralForCausalLM"],
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 256,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
# Count by hand: embedding 256*64 + lm_head 64*256 + final norm 64
#   + per layer: q 64*64 + k 64*32 + v 64*32 + o 64*64 + MLP 3*64*128 + 2 norms * 64
TINY_PARAMS = 2 * 256 * 64 + 64 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64)


def write_config(tmp_path, config) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config) if not isinstance(config, str) else config)
    return str(path)


def write_gguf(tmp_path) -> str:
    import gguf

    path = tmp_path / "tiny.Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    # Two Q8_0 tensors of 64 x 64: 34 bytes per block of 32 weights (raw bytes, shaped as the quantized rows).
    for i in range(2):
        raw = np.zeros((64, 64 // 32 * 34), dtype=np.uint8)
        writer.add_tensor(f"blk.{i}.attn_q.weight", raw, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


@pytest.fixture
def q8_0():
    return QuantFormat.objects.create(name="Q8_0", kind="gguf", bits_per_weight=8.5)


def test_it_adds_a_model_from_a_config(tmp_path):
    call_command("import_model", "--config", write_config(tmp_path, TINY), "--name", "Tiny Mistral")
    model = LanguageModel.objects.get(slug="tiny-mistral")
    assert model.total_params == TINY_PARAMS == model.active_params
    assert (model.layers, model.kv_heads, model.head_dim, model.context_length) == (2, 2, 16, 1024)


def test_it_reads_the_gguf_header_for_format_size_and_bits(tmp_path, q8_0):
    call_command(
        "import_model",
        "--config",
        write_config(tmp_path, TINY),
        "--name",
        "Tiny Mistral",
        "--gguf",
        write_gguf(tmp_path),
    )
    row = QuantVRAM.objects.get(model__slug="tiny-mistral", quant=q8_0)
    assert row.bits_per_weight == pytest.approx(8.5)  # 34 bytes per 32 weights, read from the tensor table
    assert row.file_bytes > 2 * 64 * 68


@pytest.mark.parametrize(
    "config, message",
    [
        ("{not json", "not valid JSON"),
        ({}, "config"),
        ({**TINY, "num_hidden_layers": -2}, "num_hidden_layers"),
        ({k: v for k, v in TINY.items() if k != "hidden_size"}, "hidden_size"),
    ],
)
def test_it_rejects_a_malformed_config_and_writes_nothing(tmp_path, config, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_model", "--config", write_config(tmp_path, config), "--name", "Broken")
    assert not LanguageModel.objects.exists()


def test_it_rejects_a_file_that_is_not_gguf(tmp_path, q8_0):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF but not really" * 10)
    with pytest.raises(CommandError, match="not a readable GGUF file"):
        call_command("import_model", "--config", write_config(tmp_path, TINY), "--name", "Tiny", "--gguf", str(bad))
    assert not LanguageModel.objects.exists()
