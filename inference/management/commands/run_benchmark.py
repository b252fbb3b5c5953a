"""python manage.py run_benchmark — one benchmark on this host without Celery, with the estimate beside it."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench.runner import BenchSpec, run_benchmark
from inference.results import compare_with_estimate
from inference.workers import register_host


class Command(BaseCommand):
    help = "Runs one benchmark spec here (the worker's code path, without Celery) and prints measured vs estimated."

    def add_arguments(self, parser):
        parser.add_argument("--preset", default="mixtral-8x7b", choices=["mixtral-8x7b", "tiny"])
        parser.add_argument("--layers", type=int, default=None, help="default: all of the preset's layers")
        parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32", "int8", "int4"])
        parser.add_argument("--device", default="cpu", help="cpu or cuda:N")
        parser.add_argument("--batch", type=int, default=1)
        parser.add_argument("--prompt-tokens", type=int, default=128)
        parser.add_argument("--new-tokens", type=int, default=64)
        parser.add_argument("--repeats", type=int, default=3)
        parser.add_argument("--compile", action="store_true", help="torch.compile the decode step")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):

        try:
            spec = BenchSpec(
                preset=o["preset"],
                layers=o["layers"],
                precision=o["precision"],
                batch=o["batch"],
                prompt_tokens=o["prompt_tokens"],
                new_tokens=o["new_tokens"],
                repeats=o["repeats"],
                device=o["device"],
                compile=o["compile"],
            )
            spec.validate()
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        register_host(settings.GPUFIT_WORKER_HOST)  # so the device is matched to its catalog GPU for the estimate
        result = run_benchmark(spec, progress=lambda pct, msg: self.stderr.write(f"[{pct:5.1f} %] {msg}"))
        values = compare_with_estimate(result, host=settings.GPUFIT_WORKER_HOST)
        if o["json"]:
            out = {k: v for k, v in values.items() if k not in {"gpu"}}
            out["gpu"] = values["gpu"].name if values["gpu"] else None
            self.stdout.write(json.dumps(out, indent=2, default=str))
            return
        self.stdout.write(f"{values['device_name']}: {result.status} {result.message}")
        if result.status == "ok":
            self.stdout.write(
                f"  decode {values['decode_tok_s']:.3f} tok/s (estimated {values['estimated_decode_tok_s']:.3f}, "
                f"ratio {values['decode_ratio']:.2f}); prefill {values['prefill_tok_s']:.1f} tok/s "
                f"(estimated {values['estimated_prefill_tok_s']:.1f}); peak {values['peak_memory_gb']:.2f} GB "
                f"(estimated {values['estimated_memory_gb']:.2f}); achieved {values['achieved_bandwidth_gb_s']:.1f} GB/s"
            )
        if result.status == "error":
            raise CommandError(result.message)
