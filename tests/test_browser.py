"""Browser tests in headless Chromium: the model page, its htmx swap and chart, the planner, the GPU page."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import sync_playwright

# Playwright's sync API runs an event loop in this thread; the ORM calls here are test setup only.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
DOCS_SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
# Screenshots go to a temporary folder; GPUFIT_REFRESH_SCREENSHOTS=1 refreshes docs/screenshots/ on purpose.
REFRESH = os.environ.get("GPUFIT_REFRESH_SCREENSHOTS") == "1"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
MIXTRAL = "/models/mixtral-8x7b-instruct-v0-1/"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    """Returns a headless Chromium (Debian's); outside CI a missing binary skips, in CI it fails."""
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; the CI script installs it")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Returns where screenshots go: a temporary folder, or docs/screenshots/ when refreshing them on purpose."""
    return DOCS_SHOTS if REFRESH else tmp_path


@pytest.fixture
def site(live_server):
    """Returns the live server's URL with the full catalog loaded (transactional tests empty it afterwards)."""
    call_command("load_catalog", verbosity=0)
    return live_server.url


def _page(browser, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    outside = []
    # No request may leave the machine: every URL must be the live server's.
    page.on(
        "request", lambda r: outside.append(r.url) if "127.0.0.1" not in r.url and "localhost" not in r.url else None
    )
    return page, outside


def test_model_page_list_htmx_swap_and_chart(browser, site, shots):
    page, outside = _page(browser)
    page.goto(site + MIXTRAL)
    rows = page.locator("table.quant-table tr.reference")
    assert [rows.nth(i).get_attribute("data-format") for i in range(4)] == ["Q4_K_M", "Q6_K", "Q8_0", "fp16"]
    first = page.locator("#gpu-list .gpu-card").first
    assert float(first.get_attribute("data-memory-gb")) >= 28

    # The speed chart is drawn by plotly from our own static file: an SVG with one point per priced GPU.
    page.wait_for_selector("#speed-chart .main-svg")
    assert page.locator("#speed-chart .scatterlayer .point").count() > 5

    # Changing the format swaps the list in place: the marker set on the window survives (no reload).
    page.evaluate("window.__no_reload = true")
    with page.expect_response(lambda r: "quant=Q8_0" in r.url and r.request.headers.get("hx-request") == "true"):
        page.select_option("#id_quant", "Q8_0")
    page.wait_for_function("() => parseFloat(document.querySelector('#gpu-list .gpu-card').dataset.memoryGb) >= 48")
    assert page.evaluate("window.__no_reload") is True
    assert "quant=Q8_0" in page.url  # hx-push-url keeps the address shareable
    page.select_option("#id_quant", "Q4_K_M")
    page.wait_for_function("() => parseFloat(document.querySelector('#gpu-list .gpu-card').dataset.memoryGb) < 48")
    page.wait_for_selector("#speed-chart .main-svg")
    shots.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelector('#gpu-summary').scrollIntoView()")
    page.screenshot(path=str(shots / "model-mixtral.png"))
    assert outside == []


def test_model_page_bad_input_shows_its_message(browser, site):
    page, _ = _page(browser, width=390)  # a phone
    page.goto(site + MIXTRAL + "?budget_usd=-5")
    assert "A budget cannot be negative." in page.locator("#budget_usd-errors").inner_text()


def test_planner_returns_ranked_builds_and_a_basis(browser, site, shots):
    page, outside = _page(browser)
    page.goto(site + "/plan/?model=mixtral-8x7b-instruct-v0-1&quant=Q4_K_M&max_gpus=2")
    builds = page.locator("#builds-table tr.build-row")
    assert builds.count() > 10
    page.locator("#builds-table .basis-button").first.click()
    page.wait_for_selector("#basis-1 .basis-table")
    page.wait_for_selector("#builds-chart .main-svg")
    page.screenshot(path=str(shots / "planner.png"))

    # A bad input through the form: the message appears next to the field.
    page.fill("#id_budget_usd", "-5")
    page.click("#plan-form button[type=submit]")
    page.wait_for_selector("#results .form-errors")
    assert "A budget cannot be negative." in page.locator("#results .form-errors").inner_text()
    assert outside == []


def test_gpu_page_lists_models_and_draws_the_chart(browser, site, shots):
    page, outside = _page(browser)
    page.goto(site + "/gpus/nvidia-geforce-rtx-4090/")
    assert page.locator("#models-table tbody tr").count() > 10
    page.wait_for_selector("#model-speed-chart .main-svg")
    assert page.locator("#model-speed-chart .bars .point").count() > 5
    page.screenshot(path=str(shots / "gpu-page.png"))
    assert outside == []


def test_the_front_door_on_a_phone_suggests_and_opens_the_machine_page(browser, site, shots):
    page, outside = _page(browser, width=390)
    page.goto(site + "/")
    # Typing in "I want to run…" fills the suggestions from the server (htmx, our own static file).
    page.fill("#want", "mixt")
    page.wait_for_function("() => document.querySelectorAll('#model-names option').length > 0")
    assert "Mixtral-8x7B-Instruct-v0.1" in page.evaluate(
        "Array.from(document.querySelectorAll('#model-names option')).map(o => o.value)"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing scrolls sideways
    # The bare word "mixtral" opens the Mixtral page, saying how the word was read.
    page.fill("#want", "mixtral")
    page.click("#want-form button[type=submit]")
    page.wait_for_selector("#named-as")
    assert page.locator("h1").inner_text() == "Mixtral-8x7B-Instruct-v0.1"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(site + "/")
    # "I have…" two RTX 3090s with 64 GB: the machine page lists models with speeds, still phone-wide.
    page.fill("#have", "rtx-3090")
    page.fill("#have-count", "2")
    page.fill("#have-ram", "64")
    page.click("#have-form button[type=submit]")
    page.wait_for_selector("#machine-table tbody tr td a")
    assert page.locator("#machine-table tbody tr").count() > 10
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "machine.png"))
    assert outside == []


def test_the_paste_box_reads_nvidia_smi_and_goes_to_the_machine_page(browser, site):
    page, _ = _page(browser)
    page.goto(site + "/machine/")
    page.fill("#id_text", "GPU 0: NVIDIA GeForce RTX 3090 (UUID: GPU-1)\nGPU 1: NVIDIA GeForce RTX 3090 (UUID: GPU-2)")
    page.fill("#paste-ram", "64")
    page.click("#paste-form button[type=submit]")
    page.wait_for_selector("#machine-summary")
    summary = page.inner_text("#machine-summary")
    assert "2 ×" in summary and "RTX 3090" in summary and "64 GB of system RAM" in summary


def test_serving_capacity_draws_its_chart(browser, site):
    page, _ = _page(browser, width=390)
    page.goto(site + MIXTRAL + "?cap-gpu=NVIDIA+H100+SXM5+80+GB&cap-count=1&cap-context=8192&cap-min_tok_s=10#capacity")
    assert "concurrent user" in page.inner_text("#capacity-result")
    page.wait_for_selector("#capacity-chart .main-svg")
    assert page.locator("#capacity-chart .scatterlayer .trace").count() == 2


def test_the_machine_page_opens_a_models_serving_capacity_and_names_a_macs_configurations(browser, site):
    page, outside = _page(browser)
    page.goto(site + "/machine/?gpu=rtx-3090&count=2&ram=64")
    page.wait_for_selector("#machine-table a.serve-link")
    page.click("#machine-table a.serve-link >> nth=0")
    page.wait_for_selector("#serving #capacity-chart .main-svg")
    assert "concurrent user" in page.inner_text("#serving") or "No user" in page.inner_text("#serving")
    # A Mac by its chip alone: the page lists the memory sizes it comes in, each a link to its machine page.
    page.goto(site + "/machine/?gpu=M2+Max")
    candidates = page.inner_text("#machine-candidates")
    assert "32 GB" in candidates and "64 GB" in candidates and "96 GB" in candidates
    page.click("#machine-candidates a:has-text('64 GB')")
    page.wait_for_selector("#machine-table tbody tr td a")
    assert "M2 Max" in page.inner_text("#machine-summary")
    assert outside == []
