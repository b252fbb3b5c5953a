from __future__ import annotations

from django.contrib import admin

from core.history import CatalogHistoryMixin
from models.models import BenchmarkScore, LanguageModel, QuantFormat, QuantVRAM


class QuantVRAMInline(admin.TabularInline):
    model = QuantVRAM
    extra = 0
    fields = ["quant", "bits_per_weight", "file_bytes", "vram_gb", "quality_pct", "source", "source_url", "note"]
    autocomplete_fields = ["quant"]


class BenchmarkScoreInline(admin.TabularInline):
    model = BenchmarkScore
    extra = 0
    fields = ["name", "score", "source", "source_url"]


@admin.register(LanguageModel)
class LanguageModelAdmin(CatalogHistoryMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "family",
        "architecture",
        "total_params",
        "active_params",
        "layers",
        "kv_heads",
        "context_length",
        "release_date",
    ]
    list_filter = ["architecture", "attention", "family", "edited_by_editor"]
    search_fields = ["name", "slug", "hf_repo", "family", "tags"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["edited_by_editor", "updated_at"]
    inlines = [QuantVRAMInline, BenchmarkScoreInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "slug",
                    "family",
                    "vendor",
                    "hf_repo",
                    "release_date",
                    "license",
                    "downloads",
                    "tags",
                    "ollama_tag",
                ]
            },
        ),
        (
            "Architecture",
            {
                "fields": [
                    "architecture",
                    "attention",
                    "total_params",
                    "active_params",
                    "layers",
                    "hidden_size",
                    "attention_heads",
                    "kv_heads",
                    "head_dim",
                    "ffn_size",
                    "experts",
                    "experts_per_token",
                    "moe_layers",
                    "expert_params",
                    "shared_expert_params",
                    "embedding_params",
                    "tied_embeddings",
                    "kv_lora_rank",
                    "qk_rope_head_dim",
                    "sliding_window",
                    "sliding_layers",
                    "vocab_size",
                    "context_length",
                ]
            },
        ),
        ("Text", {"fields": ["description", "instruction_format"]}),
        ("Provenance", {"fields": ["source_url", "edited_by_editor", "updated_at"]}),
    ]

    def save_model(self, request, obj, form, change):
        obj.edited_by_editor = True
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        # A VRAM row an editor touched is kept by load_catalog.
        instances = formset.save(commit=False)
        for obj in instances:
            if isinstance(obj, QuantVRAM):
                obj.edited_by_editor = True
            obj.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()


@admin.register(QuantFormat)
class QuantFormatAdmin(CatalogHistoryMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "bits_per_weight", "sort_order"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]


@admin.register(QuantVRAM)
class QuantVRAMAdmin(CatalogHistoryMixin, admin.ModelAdmin):
    list_display = ["model", "quant", "bits_per_weight", "file_bytes", "vram_gb", "quality_pct", "edited_by_editor"]
    list_filter = ["quant", "edited_by_editor"]
    search_fields = ["model__name", "quant__name"]
    autocomplete_fields = ["model", "quant"]
    readonly_fields = ["edited_by_editor"]

    def save_model(self, request, obj, form, change):
        obj.edited_by_editor = True
        super().save_model(request, obj, form, change)


@admin.register(BenchmarkScore)
class BenchmarkScoreAdmin(admin.ModelAdmin):
    list_display = ["model", "name", "score", "source"]
    list_filter = ["name"]
    search_fields = ["model__name", "name"]
