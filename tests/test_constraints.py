"""Database constraints: what must never be stored is refused by the database itself."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from hardware.models import GPU
from models.models import LanguageModel, QuantFormat

pytestmark = pytest.mark.django_db


def gpu(**overrides) -> GPU:
    # RTX 4090 figures: 24 GB, 1008 GB/s.
    values = {
        "name": "NVIDIA GeForce RTX 4090",
        "slug": "rtx-4090",
        "vendor": "nvidia",
        "segment": "consumer",
        "memory_gb": 24,
        "memory_bandwidth_gb_s": 1008,
    }
    values.update(overrides)
    return GPU(**values)


@pytest.mark.parametrize(
    "field, value",
    [
        ("memory_gb", 0),
        ("memory_gb", -24),
        ("memory_bandwidth_gb_s", 0),
        ("memory_bandwidth_gb_s", -1),
        ("launch_price_usd", -1),
        ("street_price_usd", -0.01),
        ("gpu_memory_share", 1.5),
    ],
)
def test_it_refuses_impossible_gpu_values(field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        gpu(**{field: value}).save()


def test_it_stores_a_valid_gpu():
    gpu().save()
    assert GPU.objects.count() == 1


def mixtral(**overrides) -> LanguageModel:
    values = {
        "name": "Mixtral-8x7B",
        "slug": "mixtral-8x7b",
        "total_params": 46_702_792_704,
        "active_params": 12_879_925_248,
        "layers": 32,
        "hidden_size": 4096,
        "attention_heads": 32,
        "kv_heads": 8,
        "head_dim": 128,
        "experts": 8,
        "experts_per_token": 2,
        "vocab_size": 32000,
        "context_length": 32768,
    }
    values.update(overrides)
    return LanguageModel(**values)


@pytest.mark.parametrize(
    "overrides",
    [{"active_params": 46_702_792_705}, {"total_params": 0}, {"kv_heads": 64}, {"experts_per_token": 9}],
)
def test_it_refuses_impossible_models(overrides):
    with pytest.raises(IntegrityError), transaction.atomic():
        mixtral(**overrides).save()


def test_it_refuses_a_format_without_bits():
    with pytest.raises(IntegrityError), transaction.atomic():
        QuantFormat.objects.create(name="Q0", kind="gguf", bits_per_weight=0)
