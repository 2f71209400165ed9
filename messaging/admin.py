from datetime import timedelta

from django.contrib import admin
from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.html import format_html_join

from accounts.admin import account_status_html
from accounts.permissions import (
    AGENCY_ONLY,
    SUPPORT_ROLES,
    WorkspaceScopedAdmin,
    WorkspaceScopedInline,
    is_agency_admin,
)
from messaging.models import AccountQueue, Delivery, DeliveryAttempt, DeliveryKind, DeliveryStatus
from messaging.projection import unreachable_deliveries
from messaging.selectors import account_queue_stats, drain_seconds, kind_rate_per_second
from messaging.services import account_release


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


class DeliveryAttemptInline(WorkspaceScopedInline, admin.TabularInline):
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
class DeliveryAdmin(WorkspaceScopedAdmin):
    """Support reads their workspaces' delivery records, attempts included."""

    workspace_path = "workspace"
    view_roles = SUPPORT_ROLES
    edit_roles = AGENCY_ONLY
    list_display = [
        "id",
        "created_at",
        "account",
        "kind",
        "status",
        "reason",
        "detail_excerpt",
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

    @admin.display(description="Why")
    def detail_excerpt(self, obj: Delivery) -> str:
        return obj.detail[:90] + ("…" if len(obj.detail) > 90 else "")

    @admin.display(description="Arrival to sent")
    def latency(self, obj: Delivery) -> str:
        value = obj.latency_ms
        return f"{value:.0f} ms" if value is not None else "-"


def _count_for_account(**filters) -> Coalesce:
    """The number of the account's deliveries matching ``filters``, as a subquery."""
    rows = (
        Delivery.objects.filter(account=OuterRef("pk"), **filters)
        .order_by()
        .values("account")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "now"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@admin.register(AccountQueue)
class AccountQueueAdmin(WorkspaceScopedAdmin):
    """Per account: what waits, how fast it goes, when it will be done, what will miss.

    Agency admins only: pacing and budgets span workspaces."""

    workspace_path = "workspace"
    view_roles = edit_roles = AGENCY_ONLY

    list_display = [
        "username",
        "workspace",
        "status_display",
        "queued",
        "held",
        "sending_rate",
        "drain_time",
        "paused",
    ]
    list_filter = ["status", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["username", "ig_user_id"]
    actions = ["release_held"]
    fields = [
        "username",
        "workspace",
        "status_display",
        "queue_report",
        "send_limit_per_second",
        "private_reply_limit_per_hour",
        "paused_until",
        "pause_reason",
        "usage_percent",
    ]
    readonly_fields = ["username", "workspace", "status_display", "queue_report", "usage_percent"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        # One subquery per figure, each answered from an index on the account's rows (no join
        # over every delivery ever made): the list costs the same few queries for any number
        # of accounts.
        since = timezone.now() - timedelta(minutes=1)
        queued = {
            f"queued_{kind}": _count_for_account(status=DeliveryStatus.QUEUED, kind=kind)
            for kind in DeliveryKind.values
        }
        return (
            super()
            .get_queryset(request)
            .annotate(
                **queued,
                held_count=_count_for_account(
                    status=DeliveryStatus.QUEUED, held_since__isnull=False
                ),
                sent_last_minute=_count_for_account(status=DeliveryStatus.SENT, sent_at__gte=since),
            )
            .annotate(queued_count=sum((F(name) for name in queued), Value(0)))
        )

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj) -> str:
        return account_status_html(obj)

    @admin.display(description="Queued", ordering="queued_count")
    def queued(self, obj) -> int:
        return obj.queued_count

    @admin.display(description="Held for reconnect")
    def held(self, obj) -> int:
        return obj.held_count

    @admin.display(description="Sent/s (last minute) vs budget")
    def sending_rate(self, obj) -> str:
        budget = kind_rate_per_second(obj, DeliveryKind.PRIVATE_REPLY)
        return f"{obj.sent_last_minute / 60:.1f} / {budget:.2f}"

    @admin.display(description="Drained in")
    def drain_time(self, obj) -> str:
        queued = {kind: getattr(obj, f"queued_{kind}") for kind in DeliveryKind.values}
        return _duration(drain_seconds(obj, queued)) if obj.queued_count else "-"

    @admin.display(description="Paused until")
    def paused(self, obj) -> str:
        if obj.paused_until and obj.paused_until > timezone.now():
            return f"{obj.paused_until:%H:%M:%S} UTC"
        return "-"

    @admin.display(description="Queue")
    def queue_report(self, obj) -> str:
        now = timezone.now()
        stats = account_queue_stats(account=obj, now=now)
        misses = sum(1 for _ in unreachable_deliveries(obj, now))
        rows = [
            ("Queued", ", ".join(f"{k}: {v}" for k, v in stats.queued.items()) or "none"),
            ("Held until reconnected", stats.held),
            ("Handed to workers now", stats.in_flight),
            ("Sent in the last minute", stats.sent_last_minute),
            (
                "Budget per second",
                ", ".join(f"{k}: {v:.2f}" for k, v in stats.budget_per_second.items()),
            ),
            ("Estimated time to drain", _duration(stats.drain_seconds)),
            (
                "Will miss their window at this rate",
                f"{misses} (the sweeper ends them as window_expired, saying why)",
            ),
        ]
        return format_html_join(
            "", "<div><strong>{}:</strong> {}</div>", ((label, value) for label, value in rows)
        )

    def has_release_permission(self, request) -> bool:
        return is_agency_admin(request.user)

    @admin.action(description="Release held sends (after reconnecting)", permissions=["release"])
    def release_held(self, request, queryset) -> None:
        released = sum(
            account_release(account_id=pk) for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{released} held send(s) released to the pacer.")
