from __future__ import annotations

from django.contrib import admin

from inference.models import BenchmarkJob, BenchmarkResult, Device, WorkerEngine, WorkerHost


class DeviceInline(admin.TabularInline):
    model = Device
    extra = 0
    readonly_fields = ["index", "name", "memory_gb", "bandwidth_gb_s", "gpu", "details"]


class WorkerEngineInline(admin.TabularInline):
    model = WorkerEngine
    extra = 0
    can_delete = False
    readonly_fields = ["name", "available", "version", "backends", "flags", "reason"]


@admin.register(WorkerHost)
class WorkerHostAdmin(admin.ModelAdmin):
    list_display = ["hostname", "queue", "started_at", "last_seen"]
    inlines = [DeviceInline, WorkerEngineInline]
    readonly_fields = ["hostname", "queue", "software", "started_at", "last_seen"]


@admin.register(BenchmarkJob)
class BenchmarkJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "engine",
        "preset",
        "model",
        "gguf_format",
        "layers",
        "precision",
        "batch",
        "prompt_tokens",
        "new_tokens",
        "target_host",
        "status",
        "progress",
        "created_at",
    ]
    list_filter = ["status", "engine", "precision", "preset", "compile_decode"]
    search_fields = ["worker", "target_host", "message", "error"]
    readonly_fields = [
        "status",
        "progress",
        "message",
        "worker",
        "task_id",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "error",
    ]


@admin.register(BenchmarkResult)
class BenchmarkResultAdmin(admin.ModelAdmin):
    list_display = [
        "job",
        "status",
        "engine",
        "engine_version",
        "device_name",
        "precision",
        "decode_path",
        "layers",
        "batch",
        "decode_tok_s",
        "estimated_decode_tok_s",
        "decode_ratio",
        "folded_into_calibration",
    ]
    list_filter = ["status", "precision", "device_name", "folded_into_calibration"]
    readonly_fields = [f.name for f in BenchmarkResult._meta.fields if f.name != "folded_into_calibration"]
