from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from messaging.models import Delivery, DeliveryAttempt, DeliveryStatus


class FailedRecentlyFilter(admin.SimpleListFilter):
    title = "problems"
    parameter_name = "problems"

    def lookups(self, request, model_admin):
        return [
            ("failed_hour", "Failed or skipped in the last hour"),
            ("failed_day", "Failed or skipped in the last 24 hours"),
            ("unknown", "Unknown outcome (check by hand)"),
        ]

    def queryset(self, request, queryset):
        problem = [DeliveryStatus.FAILED, DeliveryStatus.SKIPPED]
        if self.value() == "failed_hour":
            since = timezone.now() - timedelta(hours=1)
            return queryset.filter(status__in=problem, created_at__gte=since)
        if self.value() == "failed_day":
            since = timezone.now() - timedelta(days=1)
            return queryset.filter(status__in=problem, created_at__gte=since)
        if self.value() == "unknown":
            return queryset.filter(status=DeliveryStatus.UNKNOWN)
        return queryset


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = [
        "number",
        "started_at",
        "duration_ms",
        "outcome",
        "http_status",
        "reason",
        "meta_code",
        "meta_subcode",
        "meta_message",
        "meta_trace_id",
        "request_summary",
        "response_excerpt",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "account",
        "kind",
        "status",
        "reason",
        "trigger",
        "contact",
        "attempts",
        "latency",
    ]
    list_filter = [FailedRecentlyFilter, "status", "reason", "kind", "account__workspace"]
    list_select_related = ["account", "trigger", "contact"]
    search_fields = ["comment_id", "recipient", "meta_response_id", "meta_trace_id"]
    raw_id_fields = ["account", "trigger", "event", "contact", "workspace"]
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline]
    readonly_fields = [
        f.name for f in Delivery._meta.get_fields() if f.concrete and f.name != "id"
    ] + ["latency"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Arrival to sent")
    def latency(self, obj: Delivery) -> str:
        value = obj.latency_ms
        return f"{value:.0f} ms" if value is not None else "-"
