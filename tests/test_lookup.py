"""Name lookups: slug, name or alias; close matches for unknown names; a changed row is seen at once."""

from __future__ import annotations

import pytest

from hardware.models import GPU, GPUAlias
from planner.lookup import NotFound, find_gpu

pytestmark = pytest.mark.django_db


@pytest.fixture
def rtx_4090():
    # RTX 4090: 24 GB, 1008 GB/s.
    gpu = GPU.objects.create(
        name="NVIDIA GeForce RTX 4090",
        slug="nvidia-geforce-rtx-4090",
        vendor="nvidia",
        segment="consumer",
        memory_gb=24,
        memory_bandwidth_gb_s=1008,
    )
    GPUAlias.objects.create(gpu=gpu, name="RTX 4090")
    return gpu


def test_it_finds_a_gpu_by_slug_name_or_alias(rtx_4090):
    for name in ["nvidia-geforce-rtx-4090", "NVIDIA GeForce RTX 4090", "rtx 4090", "  RTX 4090 "]:
        assert find_gpu(name) == rtx_4090


def test_it_names_close_matches_for_an_unknown_gpu(rtx_4090):
    with pytest.raises(NotFound, match="Did you mean: NVIDIA GeForce RTX 4090"):
        find_gpu("NVIDIA GeForce RTX 4080")


def test_an_edited_row_is_seen_by_the_next_lookup(rtx_4090):
    assert find_gpu("RTX 4090").memory_bandwidth_gb_s == 1008
    rtx_4090.memory_bandwidth_gb_s = 1000
    rtx_4090.save()
    assert find_gpu("RTX 4090").memory_bandwidth_gb_s == 1000
    # A new alias is seen too.
    GPUAlias.objects.create(gpu=rtx_4090, name="4090")
    assert find_gpu("4090") == rtx_4090
    # And a removed GPU is gone.
    rtx_4090.delete()
    with pytest.raises(NotFound):
        find_gpu("RTX 4090")
