"""python manage.py run_worker — a benchmark worker: registers devices, then consumes gpu.<host> and gpu.any."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from gpufit.celery import app
from inference.queues import ANY_QUEUE, queue_for_host
from inference.workers import register_host, start_heartbeat


class Command(BaseCommand):
    help = "Registers this host's devices, then runs a Celery worker on its own queue (gpu.<host>) and gpu.any."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default=settings.GPUFIT_WORKER_HOST, help="host name to register (default: GPUFIT_WORKER_HOST)"
        )
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument("--no-any", action="store_true", help="consume only this host's queue, not gpu.any")

    def handle(self, *args, **o):
        host = register_host(o["host"])
        devices = ", ".join(f"{d.index}: {d.name}" for d in host.devices.all())
        self.stdout.write(f"Registered {host.hostname} with {devices}")
        queues = [queue_for_host(o["host"])] + ([] if o["no_any"] else [ANY_QUEUE])
        start_heartbeat(o["host"])
        # Concurrency 1 and prefetch 1: one benchmark per GPU host at a time, never one waiting in a local buffer.
        app.worker_main(
            [
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "--prefetch-multiplier",
                "1",
                "--queues",
                ",".join(queues),
                "--hostname",
                f"gpufit@{o['host']}",
                "--loglevel",
                o["loglevel"],
                "--without-gossip",
                "--without-mingle",
            ]
        )
