"""The page cache: anonymous pages of an unchanged catalog come from the cache; any change renders afresh."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from hardware.models import GPU

pytestmark = pytest.mark.django_db


@pytest.fixture
def page_cache(settings):
    settings.GPUFIT_PAGE_CACHE_S = 60
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def gpu():
    # RTX 3090: 24 GB, 936 GB/s.
    return GPU.objects.create(
        name="NVIDIA GeForce RTX 3090",
        slug="nvidia-geforce-rtx-3090",
        vendor="nvidia",
        segment="consumer",
        memory_gb=24,
        memory_bandwidth_gb_s=936,
    )


def test_a_repeated_anonymous_request_is_a_hit_until_the_catalog_changes(client, page_cache, gpu):
    url = gpu.get_absolute_url()
    first = client.get(url)
    assert first.status_code == 200 and "X-Page-Cache" not in first
    second = client.get(url)
    assert second["X-Page-Cache"] == "hit" and second.content == first.content
    gpu.memory_bandwidth_gb_s = 940
    gpu.save()
    third = client.get(url)
    assert "X-Page-Cache" not in third and b"940" in third.content


def test_logged_in_visitors_and_other_urls_are_not_served_from_the_cache(client, page_cache, gpu):
    url = gpu.get_absolute_url()
    client.get(url)
    assert "X-Page-Cache" not in client.get(url + "?x=1")
    client.force_login(User.objects.create_user("someone", password="pw-for-tests-only"))
    assert "X-Page-Cache" not in client.get(url)
