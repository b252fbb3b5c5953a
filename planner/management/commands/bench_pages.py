"""python manage.py bench_pages — how long the ranking and the front-door pages take to render, in process.

Each page is rendered once untimed (the process warms: catalog frame, model tables, templates), then ``--repeats``
times with a context no earlier request used, so nothing a page computed for one request serves the next (the
page cache is off): every timed render is a first render. Prints the median wall and CPU milliseconds per page;
``--json`` prints them as one JSON object (python -m planner.bench --pages compares two trees with it).

The command uses only what older versions of the code have too (the test client, the page URLs and
planner.services.gpu_ranking), so the same file times a baseline tree.
"""

from __future__ import annotations

import json
import statistics
import time

from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict
from django.test import Client
from django.test.utils import override_settings

from planner.forms import ModelGPUForm
from planner.lookup import NotFound, begin_request, end_request, find_model
from planner.services import gpu_ranking

MODEL = "mixtral-8x7b-instruct-v0-1"
# Each page's URL; {context} differs on every request. The GPU page shows what fits on an RTX 4090, the machine
# page two RTX 3090s with 64 GB of RAM (the home page's "Two RTX 3090s").
PAGES = {
    "model page": f"/models/{MODEL}/?context={{context}}",
    "GPU page": "/gpus/nvidia-geforce-rtx-4090/?context={context}&users=1&fits_only=on",
    "machine page": "/machine/?gpu=rtx-3090&count=2&ram=64&context={context}",
    "planner page": f"/plan/?model={MODEL}&context={{context}}",
}


def _timed(run) -> tuple[float, float]:
    """Returns (wall ms, CPU ms) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


class Command(BaseCommand):
    help = "Times the GPU ranking and the model, GPU, machine and planner pages in process (first renders, warm)."

    def add_arguments(self, parser):
        parser.add_argument("--repeats", type=int, default=15, help="timed renders per page (default 15)")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="print one JSON object instead of a table"
        )

    def handle(self, *args, repeats: int, as_json: bool, **options):
        try:
            model = find_model(MODEL)
        except NotFound as exc:
            raise CommandError(f"{exc} Load the catalog first: python manage.py load_catalog") from exc
        with override_settings(GPUFIT_PAGE_CACHE_S=0, ALLOWED_HOSTS=["testserver"]):
            figures = self._measure(model, max(repeats, 3))
        if as_json:
            self.stdout.write(_json(figures))
            return
        for name, (wall, cpu) in figures.items():
            self.stdout.write(f"{name:<14} wall {wall:7.1f} ms   CPU {cpu:7.1f} ms")

    def _measure(self, model, repeats: int) -> dict[str, tuple[float, float]]:
        client = Client()
        # Contexts no two requests share: 2,048 + 16 n tokens, n counting across every page.
        contexts = iter(range(2048, 2048 + 16 * (repeats + 1) * (len(PAGES) + 1), 16))
        figures = {}

        def rank(context: int):
            form = ModelGPUForm.from_query(QueryDict(f"context={context}"), model=model)
            if not form.is_valid():
                raise CommandError(f"ranking form: {form.errors.as_text()}")
            # As in a request: the catalog fingerprint is read once (planner.lookup.CatalogFreshnessMiddleware).
            begin_request()
            try:
                return gpu_ranking(model, form.cleaned_data, [], sort="memory")
            finally:
                end_request()

        runs = {"ranking": rank}
        for name, url in PAGES.items():
            runs[name] = lambda context, url=url: self._get(client, url.format(context=context))
        for name, run in runs.items():
            run(next(contexts))  # warm-up, untimed
            samples = []
            for _ in range(repeats):
                context = next(contexts)
                samples.append(_timed(lambda run=run, context=context: run(context)))
            figures[name] = (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
        return figures

    @staticmethod
    def _get(client: Client, url: str):
        response = client.get(url)
        if response.status_code != 200:
            raise CommandError(f"GET {url} answered {response.status_code}")
        return response


def _json(figures: dict[str, tuple[float, float]]) -> str:
    return json.dumps({name: {"wall_ms": wall, "cpu_ms": cpu} for name, (wall, cpu) in figures.items()})
