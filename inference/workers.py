"""A worker host: registers its devices, keeps a heartbeat, and finds jobs whose worker died."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from bench.devices import detect_devices, match_catalog
from bench.engines import EngineInfo, available_engines
from hardware.models import GPU, GPUAlias
from inference import jobs
from inference.models import Device, WorkerEngine, WorkerHost
from inference.queues import queue_for_host

log = logging.getLogger(__name__)

HEARTBEAT_S = settings.GPUFIT_HEARTBEAT_S


def register_host(hostname: str, devices=None, engines: list[EngineInfo] | None = None) -> WorkerHost:
    """Returns the host row after recording its detected devices, each matched to a catalog GPU by alias, and the
    benchmark engines it has (the job form offers only engines that a live host can run)."""

    devices = detect_devices() if devices is None else devices
    engines = available_engines() if engines is None else engines
    # Jobs this host was running before it (re)started cannot still be running; they are settled before the host row
    # says it started, so whoever sees the new start time sees them lost.
    lost = jobs.mark_lost(worker=f"gpufit@{hostname}")
    if lost:
        log.warning("marked %d stale job(s) lost", lost)
    resent = jobs.requeue_stale()
    if resent:
        log.warning("re-sent %d queued job(s) whose message may have been lost", resent)
    aliases = dict(GPUAlias.objects.values_list("name", "gpu__slug"))
    host, _ = WorkerHost.objects.update_or_create(
        hostname=hostname,
        defaults={"queue": queue_for_host(hostname), "started_at": timezone.now(), "last_seen": timezone.now()},
    )
    seen = []

    for info in devices:
        slug = match_catalog(info.name, aliases) if info.kind == "cuda" else None
        gpu = GPU.objects.filter(slug=slug).first() if slug else None
        Device.objects.update_or_create(
            host=host,
            index=info.torch_device,
            defaults={
                "name": info.name,
                "memory_gb": info.memory_gb,
                "bandwidth_gb_s": info.bandwidth_gb_s,
                "details": info.to_dict(),
                "gpu": gpu,
            },
        )
        seen.append(info.torch_device)
    host.devices.exclude(index__in=seen).delete()
    software = {
        d.torch_device: {"driver": d.driver_version, "cuda": d.cuda_version} for d in devices if d.kind == "cuda"
    }
    WorkerHost.objects.filter(pk=host.pk).update(software=software)
    register_engines(host, engines)
    return host


def register_engines(host: WorkerHost, engines: list[EngineInfo]) -> None:
    """Records each engine as this host has it (available or not, with the reason); forgets engines it lost."""
    for info in engines:
        WorkerEngine.objects.update_or_create(
            host=host,
            name=info.name,
            defaults={
                "available": info.available,
                "version": info.version[:120],
                "backends": list(info.backends),
                "flags": info.flags,
                "reason": info.reason[:300],
            },
        )
    host.engines.exclude(name__in=[info.name for info in engines]).delete()
    for info in engines:
        if info.available:
            log.info("engine %s %s (%s)", info.name, info.version, ", ".join(info.backends))
        else:
            log.warning("engine %s cannot run here: %s", info.name, info.reason)


def beat(hostname: str) -> None:
    """Records that the host is alive and marks jobs whose worker stopped reporting as lost."""
    WorkerHost.objects.filter(hostname=hostname).update(last_seen=timezone.now())
    jobs.mark_lost()
    jobs.requeue_stale()


def start_heartbeat(hostname: str, interval_s: float = HEARTBEAT_S) -> threading.Event:
    """Returns an Event that stops the heartbeat thread started here."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                close_old_connections()
                beat(hostname)
            except Exception:  # a database hiccup must not kill the worker; the next beat tries again
                log.exception("heartbeat failed")

    threading.Thread(target=loop, name="gpufit-heartbeat", daemon=True).start()
    return stop
