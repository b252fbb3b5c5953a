"""The admin: staff only, GPU list/change pages, CSV export and an all-or-nothing CSV import."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from hardware.catalog import COLUMNS
from hardware.models import GPU, GPUAlias, Source

pytestmark = pytest.mark.django_db

HEADER = ",".join(COLUMNS)


def csv_row(**values) -> str:
    return ",".join(str(values.get(c, "")) for c in COLUMNS)


# A40: 48 GB GDDR6, 696 GB/s (NVIDIA A40 datasheet).
A40 = {
    "name": "NVIDIA A40",
    "vendor": "nvidia",
    "segment": "datacenter",
    "memory_gb": 48,
    "memory_bandwidth_gb_s": 696,
    "source_url": "https://www.nvidia.com/en-us/data-center/a40/",
    "aliases": "NVIDIA A40 48GB",
}
# L4: 24 GB GDDR6, 300 GB/s (NVIDIA L4 datasheet).
L4 = {
    "name": "NVIDIA L4",
    "vendor": "nvidia",
    "segment": "datacenter",
    "memory_gb": 24,
    "memory_bandwidth_gb_s": 300,
    "source_url": "https://www.nvidia.com/en-us/data-center/l4/",
}


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("editor", "editor@example.com", "pw-for-tests-only")
    client.force_login(user)
    return user


@pytest.fixture
def rtx_3090():
    # RTX 3090: 24 GB, 936 GB/s — a row to list, change and export.
    gpu = GPU.objects.create(
        name="NVIDIA GeForce RTX 3090",
        slug="nvidia-geforce-rtx-3090",
        vendor="nvidia",
        segment="consumer",
        memory_gb=24,
        memory_bandwidth_gb_s=936,
        source=Source.CURATED,
    )
    GPUAlias.objects.create(gpu=gpu, name="RTX 3090")
    return gpu


def upload(client, text: str):
    data = {"file": SimpleUploadedFile("gpus.csv", text.encode(), content_type="text/csv")}
    return client.post(reverse("admin:hardware_gpu_import_csv"), data)


def test_it_refuses_anonymous_users(client, rtx_3090):
    for url in [
        reverse("admin:hardware_gpu_changelist"),
        reverse("admin:hardware_gpu_change", args=[rtx_3090.pk]),
        reverse("admin:hardware_gpu_import_csv"),
        reverse("admin:hardware_gpu_export_csv"),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


def test_it_refuses_a_logged_in_non_staff_user(client, rtx_3090):
    client.force_login(User.objects.create_user("visitor", password="pw-for-tests-only"))
    assert client.get(reverse("admin:hardware_gpu_changelist")).status_code == 302


def test_it_lists_and_shows_gpus_to_staff(client, staff, rtx_3090):
    response = client.get(reverse("admin:hardware_gpu_changelist"))
    assert response.status_code == 200
    assert b"NVIDIA GeForce RTX 3090" in response.content and b"936" in response.content
    assert client.get(reverse("admin:hardware_gpu_change", args=[rtx_3090.pk])).status_code == 200
    for name in ["models_languagemodel", "models_quantformat", "planner_calibration", "inference_benchmarkjob"]:
        app, model = name.split("_", 1)
        assert client.get(reverse(f"admin:{app}_{model}_changelist")).status_code == 200, name


def test_an_editor_save_marks_the_row(client, staff, rtx_3090):
    url = reverse("admin:hardware_gpu_change", args=[rtx_3090.pk])
    form = client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update(
        {
            "street_price_usd": 799,
            "street_price_date": "2026-11-01",
            "street_price_source_url": "https://example.org/rtx-3090-used-prices",
            "unified_memory": "",
            "aliases-TOTAL_FORMS": 0,
            "aliases-INITIAL_FORMS": 0,
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    rtx_3090.refresh_from_db()
    assert rtx_3090.street_price_usd == 799 and rtx_3090.edited_by_editor
    assert rtx_3090.street_price_source_url == "https://example.org/rtx-3090-used-prices"


def test_a_street_price_needs_its_date_and_none_is_in_the_future(client, staff, rtx_3090):
    url = reverse("admin:hardware_gpu_change", args=[rtx_3090.pk])
    form = client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"street_price_usd": 650, "street_price_date": "", "cloud_price_usd_hr": 0.4})
    data.update({"cloud_price_date": "2999-01-01", "aliases-TOTAL_FORMS": 0, "aliases-INITIAL_FORMS": 0})
    response = client.post(url, data)
    assert response.status_code == 200
    assert b"A street price needs the date it was seen." in response.content
    assert b"A price date cannot be in the future." in response.content
    rtx_3090.refresh_from_db()
    assert rtx_3090.street_price_usd is None and not rtx_3090.edited_by_editor


def test_it_shows_a_field_error_in_words(client, staff, rtx_3090):
    url = reverse("admin:hardware_gpu_change", args=[rtx_3090.pk])
    form = client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"memory_bandwidth_gb_s": -1, "aliases-TOTAL_FORMS": 0, "aliases-INITIAL_FORMS": 0})
    response = client.post(url, data)
    assert response.status_code == 200
    assert b"Bandwidth must be more than 0 GB/s." in response.content
    rtx_3090.refresh_from_db()
    assert rtx_3090.memory_bandwidth_gb_s == 936


def test_it_exports_csv(client, staff, rtx_3090):
    response = client.get(reverse("admin:hardware_gpu_export_csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = response.content.decode()
    assert text.splitlines()[0] == HEADER
    assert "NVIDIA GeForce RTX 3090" in text and "RTX 3090" in text


def test_it_imports_a_good_csv(client, staff, rtx_3090):
    response = upload(client, "\n".join([HEADER, csv_row(**A40), csv_row(**L4)]) + "\n")
    assert response.status_code == 302
    a40 = GPU.objects.get(name="NVIDIA A40")
    assert a40.memory_bandwidth_gb_s == 696 and a40.edited_by_editor and a40.source == Source.CSV
    assert GPU.objects.resolve("NVIDIA A40 48GB") == a40


def test_a_bad_row_rejects_the_whole_file(client, staff, rtx_3090):
    bad_l4 = dict(L4, memory_gb="lots")
    response = upload(client, "\n".join([HEADER, csv_row(**A40), csv_row(**bad_l4)]) + "\n")
    assert response.status_code == 200
    assert "row 3 (NVIDIA L4): memory_gb" in response.content.decode()
    assert not GPU.objects.filter(name__in=["NVIDIA A40", "NVIDIA L4"]).exists()


def test_an_alias_clash_rejects_the_file(client, staff, rtx_3090):
    clash = dict(L4, aliases="RTX 3090")
    response = upload(client, "\n".join([HEADER, csv_row(**A40), csv_row(**clash)]) + "\n")
    assert "already names" in response.content.decode()
    assert not GPU.objects.filter(name__in=["NVIDIA A40", "NVIDIA L4"]).exists()


@pytest.mark.parametrize(
    "body, message",
    [
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"name,memory_gb\nfoo,1\n", "missing column"),
        ((HEADER + "\n").encode(), "no rows"),
        ((HEADER + ",extra\n").encode(), "unknown column"),
    ],
)
def test_it_rejects_malformed_files_with_a_message(client, staff, body, message):
    data = {"file": SimpleUploadedFile("gpus.csv", body, content_type="text/csv")}
    response = client.post(reverse("admin:hardware_gpu_import_csv"), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert GPU.objects.count() == 0
