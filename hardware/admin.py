from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse

from core.history import CatalogHistoryMixin
from hardware.catalog import CatalogError, export_csv, import_csv
from hardware.models import GPU, GPUAlias, Source


class GPUAliasInline(admin.TabularInline):
    model = GPUAlias
    extra = 1
    fields = ["name"]


class CSVImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="Columns as in the export; all rows are imported or none.")


@admin.register(GPU)
class GPUAdmin(CatalogHistoryMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "vendor",
        "segment",
        "memory_gb",
        "memory_bandwidth_gb_s",
        "fp16_tensor_tflops",
        "tdp_w",
        "launch_price_usd",
        "street_price_usd",
        "source",
        "edited_by_editor",
    ]
    list_filter = ["listing", "verified", "vendor", "segment", "source", "unified_memory", "edited_by_editor"]
    search_fields = ["name", "slug", "aliases__name", "source_id"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["source", "source_id", "edited_by_editor", "updated_at"]
    inlines = [GPUAliasInline]
    actions = ["export_selected_csv"]
    change_list_template = "admin/hardware/gpu/change_list.html"
    fieldsets = [
        (None, {"fields": ["name", "slug", "vendor", "segment", "release_date"]}),
        (
            "Memory",
            {
                "fields": [
                    "memory_gb",
                    "memory_type",
                    "memory_bus_bits",
                    "memory_data_rate_gbps",
                    "memory_bandwidth_gb_s",
                    "unified_memory",
                    "gpu_memory_share",
                ]
            },
        ),
        ("Compute and power", {"fields": ["fp32_tflops", "fp16_tensor_tflops", "int8_tops", "fp8_tflops", "tdp_w"]}),
        ("Interconnect", {"fields": ["pcie_gen", "nvlink_gb_s"]}),
        (
            "Price",
            {
                "fields": [
                    ("launch_price_usd", "price_source_url"),
                    ("street_price_usd", "street_price_date", "street_price_source_url"),
                    ("cloud_price_usd_hr", "cloud_price_date", "cloud_price_source_url"),
                ],
                "description": "Each price names the page it comes from; street and cloud prices carry the date seen.",
            },
        ),
        (
            "Listing",
            {
                "fields": ["listing", "listing_reason", "verified"],
                "description": "Only ranked rows take part in rankings; load_catalog's checks set these fields.",
            },
        ),
        ("Provenance", {"fields": ["source", "source_url", "source_id", "notes", "edited_by_editor", "updated_at"]}),
    ]

    def save_model(self, request, obj, form, change):
        # An editor's save marks the row so that load_catalog never overwrites it.
        obj.edited_by_editor = True
        if not change:
            obj.source = Source.EDITOR
        super().save_model(request, obj, form, change)

    def get_urls(self):
        extra = [
            path("import-csv/", self.admin_site.admin_view(self.import_csv_view), name="hardware_gpu_import_csv"),
            path("export-csv/", self.admin_site.admin_view(self.export_all_csv), name="hardware_gpu_export_csv"),
        ]
        return extra + super().get_urls()

    @admin.action(description="Export selected GPUs as CSV")
    def export_selected_csv(self, request, queryset):
        return self._csv_response(queryset)

    def export_all_csv(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self._csv_response(GPU.objects.all())

    def _csv_response(self, queryset):
        body = export_csv(queryset.prefetch_related("aliases").order_by("name"))
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="gpus.csv"'
        return response

    def import_csv_view(self, request):
        if not self.has_add_permission(request) or not self.has_change_permission(request):
            raise PermissionDenied
        form = CSVImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                created, updated = import_csv(form.cleaned_data["file"].read(), user=request.user)
            except CatalogError as exc:
                form.add_error("file", f"Nothing was imported: {exc}")
            else:
                messages.success(request, f"Imported {created} new and {updated} changed GPUs.")
                return redirect(reverse("admin:hardware_gpu_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "opts": self.model._meta,
            "title": "Import GPUs from CSV",
        }
        return render(request, "admin/hardware/gpu/import_csv.html", context)


@admin.register(GPUAlias)
class GPUAliasAdmin(admin.ModelAdmin):
    list_display = ["name", "gpu"]
    search_fields = ["name", "gpu__name"]
    autocomplete_fields = ["gpu"]
