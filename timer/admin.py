"""Django admin: the health policy."""

from django.contrib import admin

from .models import HealthPolicy


@admin.register(HealthPolicy)
class HealthPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "threshold",
        "recovery_margin",
        "window",
        "capacity",
        "max_connections",
        "draining",
        "updated_at",
    )
    list_editable = ("draining",)
    list_display_links = ("__str__",)
    readonly_fields = ("updated_at",)
    fieldsets = (
        (None, {"fields": ("node", "draining")}),
        (
            "Capacity",
            {"fields": ("threshold", "recovery_margin", "window", "capacity", "max_connections")},
        ),
        (None, {"fields": ("updated_at",)}),
    )
