"""python manage.py compare_llama_bench FILE --gpu NAME — a llama-bench sweep against the estimator, row by row."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from planner.queries import EstimateQuery


def _label(r: dict) -> str:
    """Returns llama-bench's name of a test: pp512, tg128, pp512 @ d4096."""
    name = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    return f"{name} @ d{r['n_depth']}" if r["n_depth"] else name


def _estimate(model: str, gpu: str, fmt: str, prompt_tokens: int, context: int) -> dict:
    query = EstimateQuery(
        {"model": model, "gpu": gpu, "quant": fmt, "prompt_tokens": prompt_tokens, "context": context},
        option_style="cli",
    )
    if not query.is_valid():
        raise CommandError(" ".join(query.messages()))
    return query.inputs().run()


class Command(BaseCommand):
    help = (
        "Reads the JSON lines of a bench.llama_bench run (llama-bench records of catalog models) and prints, for "
        "each test run with flash attention (what the estimator assumes for llama.cpp), the measured rate beside "
        "the estimate for the same model, format, prompt and cache depth on the named catalog GPU, then the mean "
        "and median error and how many measurements fall inside the estimate's range."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSON-lines file written by python -m bench.llama_bench")
        parser.add_argument("--gpu", required=True, help="the catalog GPU the sweep ran on (name, slug or alias)")

    def handle(self, *args, path, gpu, **options):
        try:
            records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        errors: dict[str, list[float]] = {"prompt": [], "decode": []}
        inside: dict[str, int] = {"prompt": 0, "decode": 0}
        lines = []  # every estimate first, so that a bad name fails before any output
        needed = ("config", "format", "n_prompt", "n_gen", "n_depth", "avg_ts")
        for number, r in enumerate(records, start=1):
            missing = [key for key in needed if not isinstance(r, dict) or key not in r]
            if missing:
                raise CommandError(
                    f"record {number} of {path} is not a bench.llama_bench record: no {', '.join(missing)}"
                )
            if r.get("flash_attn") not in (1, True):
                continue
            prompt = bool(r["n_prompt"])
            # The estimate's context is the cache when the test ends: depth plus the prompt or the generated tokens.
            context = r["n_depth"] + (r["n_prompt"] if prompt else r["n_gen"])
            model = r["config"].removesuffix(".json")
            e = _estimate(model, gpu, r["format"], r["n_prompt"] or 512, context)
            kind = "prompt" if prompt else "decode"
            point, low, high = (e[f"{'prefill' if prompt else 'decode'}_tok_s{s}"] for s in ("", "_low", "_high"))
            measured = r["avg_ts"]
            errors[kind].append(point / measured - 1)
            inside[kind] += low <= measured <= high
            lines.append(
                f"| {model} | {r['format']} | {_label(r)} | {measured:,.0f} | {point:,.0f} ({low:,.0f}-{high:,.0f}) "
                f"| {point / measured - 1:+.0%} | {'yes' if low <= measured <= high else 'no'} |"
            )
        self.stdout.write("| model | format | test | measured tok/s | estimate (range) | error | in range |")
        self.stdout.write("| --- | --- | --- | ---: | ---: | ---: | --- |")
        for line in lines:
            self.stdout.write(line)
        for kind, errs in errors.items():
            if errs:
                ape = [abs(x) * 100 for x in errs]
                self.stdout.write(
                    f"{kind}: {len(errs)} tests, MAPE {statistics.mean(ape):.1f} %, median {statistics.median(ape):.1f} %, "
                    f"{inside[kind]} of {len(errs)} inside the range"
                )
