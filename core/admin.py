from __future__ import annotations

from django.contrib import admin, messages

from core.history import restore
from core.models import ApiToken, CatalogChange


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["name", "prefix", "user__username"]
    fields = ["user", "name", "revoked", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # The raw token exists only in this message; the database keeps its hash.
        token, raw = ApiToken.objects.issue(obj.user, obj.name)
        obj.pk, obj.key_hash, obj.prefix, obj.created_at = token.pk, token.key_hash, token.prefix, token.created_at
        messages.warning(request, f"New API token for {obj.user}: {raw} — copy it now, it is not shown again.")

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        count = queryset.update(revoked=True)
        messages.success(request, f"Revoked {count} token(s).")


@admin.register(CatalogChange)
class CatalogChangeAdmin(admin.ModelAdmin):
    list_display = ["at", "user", "action", "model_label", "object_repr", "changed_fields"]
    list_filter = ["action", "model_label"]
    search_fields = ["object_repr", "object_id", "user__username"]
    date_hierarchy = "at"
    actions = ["restore_version"]
    readonly_fields = [f.name for f in CatalogChange._meta.fields]

    def has_add_permission(self, request) -> bool:
        # History is written by the catalog admins, never typed in.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Restore this version (the row as this change left it)", permissions=["view"])
    def restore_version(self, request, queryset):
        for change in queryset.order_by("at", "id"):
            model_name = change.model_label.split(".")[1].lower()
            app_label = change.model_label.split(".")[0]
            if not request.user.has_perm(f"{app_label}.change_{model_name}"):
                messages.error(request, f"You may not change {change.model_label} rows.")
                continue
            try:
                obj = restore(change, request.user)
            except (ValueError, LookupError) as exc:
                messages.error(request, f"Could not restore change {change.pk}: {exc}")
                continue
            messages.success(
                request, f"Restored {change.model_label} {obj} to the version of {change.at:%Y-%m-%d %H:%M:%S}."
            )
