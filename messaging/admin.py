from collections import Counter
from datetime import date, timedelta

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.admin import account_status_html
from accounts.admin_tools import CsvExportMixin, confirm_action, duration_words
from accounts.permissions import (
    AGENCY_ONLY,
    MARKETER_ROLES,
    SUPPORT_ROLES,
    WorkspaceScopedAdmin,
    is_agency_admin,
    member_workspace_ids,
    restrict,
    workspaces_for,
)
from messaging.models import (
    AccountQueue,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    LinkClick,
)
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


class ClickedFilter(admin.SimpleListFilter):
    """Sends whose tracked link was opened (``clicked=yes``, or ``clicked=<date>``: since)."""

    title = "link opened"
    parameter_name = "clicked"

    def lookups(self, request, model_admin):
        return [("yes", "A link was opened"), ("no", "No link opened")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        clicks = LinkClick.objects.filter(delivery=OuterRef("pk"))
        if value == "no":
            return queryset.exclude(Exists(clicks))
        if value != "yes":
            try:
                since = date.fromisoformat(value)
            except ValueError:
                return queryset.none()
            clicks = clicks.filter(clicked_at__date__gte=since)
        return queryset.filter(Exists(clicks))


class WorkspaceFilter(admin.SimpleListFilter):
    """The person's workspaces, listed from their memberships: a relation filter would scan
    every delivery for the workspaces it names."""

    title = "workspace"
    parameter_name = "workspace"

    def lookups(self, request, model_admin):
        workspaces = workspaces_for(request.user, model_admin.view_roles + model_admin.edit_roles)
        return [(str(pk), name) for pk, name in workspaces.values_list("pk", "name")]

    def queryset(self, request, queryset):
        if self.value():
            try:
                return queryset.filter(workspace_id=int(self.value()))
            except ValueError:
                return queryset.none()
        return queryset


class SeenFilter(admin.SimpleListFilter):
    title = "seen"
    parameter_name = "seen"

    def lookups(self, request, model_admin):
        return [("yes", "Seen by the person"), ("no", "Not seen (yet)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(seen_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(seen_at__isnull=True)
        return queryset


def _delivery_csv_fields():
    from messaging.selectors import EXPORT_FIELDS, delivery_as_record

    return [
        (name, (lambda obj, name=name: delivery_as_record(obj)[name])) for name in EXPORT_FIELDS
    ]


@admin.register(Delivery)
class DeliveryAdmin(CsvExportMixin, WorkspaceScopedAdmin):
    """Support reads their workspaces' delivery records and acts on them (retry, cancel);
    marketers read the sends of their workspaces' triggers. Every page is read-only: a
    record says what happened, it is not edited."""

    workspace_path = "workspace"
    view_roles = SUPPORT_ROLES + MARKETER_ROLES
    edit_roles = AGENCY_ONLY
    list_display = [
        "created",
        "to_whom",
        "account",
        "trigger",
        "outcome",
        "detail_excerpt",
        "tries",
    ]
    list_display_links = ["created"]
    list_filter = [
        FailedRecentlyFilter,
        "status",
        "reason",
        "kind",
        SeenFilter,
        ClickedFilter,
        WorkspaceFilter,
    ]
    list_select_related = ["account", "trigger", "contact"]
    search_fields = ["comment_id", "recipient", "meta_response_id", "meta_trace_id"]
    search_help_text = "Find by @username, name, what they wrote, comment id or IGSID."
    date_hierarchy = "created_at"
    # Counting every delivery for "N total" costs a scan of the table: the list says
    # "Show all" instead, and counts only what the filters leave.
    show_full_result_count = False
    actions = ["retry_selected", "cancel_selected"]
    csv_fields = []  # filled on first use (messaging.selectors.EXPORT_FIELDS)

    def limit_for_member(self, request, queryset):
        # Marketers read the sends of their triggers; support reads every send.
        support = member_workspace_ids(request.user, SUPPORT_ROLES)
        marketing = member_workspace_ids(request.user, MARKETER_ROLES) - support
        if not marketing:
            return queryset
        return queryset.filter(
            Q(workspace_id__in=support) | Q(workspace_id__in=marketing, trigger__isnull=False)
        )

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        from config.console.search import deliveries_matching

        found = deliveries_matching(
            queryset,
            user=request.user,
            roles=self.view_roles + self.edit_roles,
            text=search_term,
        )
        return found, False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a record of what happened; actions act on it, nobody edits it

    def csv_rows(self, queryset, user):
        if not self.csv_fields:
            type(self).csv_fields = _delivery_csv_fields()
        return queryset.select_related("workspace", "account", "trigger", "contact").iterator(
            chunk_size=2000
        )

    def export_view(self, request):
        if not self.csv_fields:
            type(self).csv_fields = _delivery_csv_fields()
        return super().export_view(request)

    @admin.display(description="Queued (UTC)", ordering="created_at")
    def created(self, obj: Delivery) -> str:
        return f"#{obj.pk} {obj.created_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="To")
    def to_whom(self, obj: Delivery) -> str:
        return str(obj.contact) if obj.contact_id else obj.recipient

    @admin.display(description="Kind", ordering="kind")
    def kind_short(self, obj: Delivery) -> str:
        return {
            DeliveryKind.PUBLIC_REPLY: "public reply",
            DeliveryKind.PRIVATE_REPLY: "private reply",
            DeliveryKind.MESSAGE: "DM",
        }.get(obj.kind, obj.kind)

    @admin.display(description="What", ordering="status")
    def outcome(self, obj: Delivery) -> str:
        reason = f": {obj.get_reason_display().lower()}" if obj.reason else ""
        return format_html(
            '{}<br><span class="status-{}">{}</span>{}',
            self.kind_short(obj),
            obj.status,
            obj.status,
            reason,
        )

    @admin.display(description="Tries · time")
    def tries(self, obj: Delivery) -> str:
        return f"{obj.attempts} · {self.latency(obj)}"

    @admin.display(description="Why")
    def detail_excerpt(self, obj: Delivery) -> str:
        return obj.detail[:90] + ("…" if len(obj.detail) > 90 else "")

    @admin.display(description="Arrival to sent")
    def latency(self, obj: Delivery) -> str:
        value = obj.latency_ms
        return duration_words(value / 1000) if value is not None else "-"

    # --- the record's page ---------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        from config.console.views import delivery_page

        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, obj) or request.method != "GET":
            raise PermissionDenied  # a read-only record: nothing to post here
        return delivery_page(self, request, obj)

    # --- actions -------------------------------------------------------------------------
    def has_act_permission(self, request) -> bool:
        return is_agency_admin(request.user) or bool(
            member_workspace_ids(request.user, SUPPORT_ROLES)
        )

    def _actionable(self, request, queryset):
        """Only sends of workspaces where the person is support (or all, for agency admins)."""
        return restrict(queryset, request.user, SUPPORT_ROLES, "workspace")

    @admin.action(
        description="Retry the selected sends (where Meta still allows it)", permissions=["act"]
    )
    def retry_selected(self, request, queryset):
        from messaging import actions

        chosen = list(self._actionable(request, queryset).select_related("account", "contact"))
        now = timezone.now()
        ready, refused = [], Counter()
        for delivery in chosen:
            problem = actions.delivery_retry_problem(delivery, now)
            if problem:
                refused[problem] += 1
            else:
                ready.append(delivery)
        refused["Not yours to act on (support of its workspace can)."] += queryset.count() - len(
            chosen
        )
        refused = +refused

        def run(items):
            summary = actions.deliveries_retry(
                delivery_ids=[d.pk for d in items], actor=request.user
            )
            return (
                f"{len(summary.done)} send(s) queued again; each is checked again before it "
                "goes." + _refusals(summary.refused)
            )

        return confirm_action(
            self,
            request,
            action="retry_selected",
            title="Retry sends",
            will=f"Queue {len(ready)} send(s) again. Each goes through the pre-send checks "
            "again, and nothing already sent is sent twice.",
            ready=ready,
            describe=_item,
            refused=refused,
            button=f"Yes, retry {len(ready)}",
            run=run,
        )

    @admin.action(description="Cancel the selected queued sends", permissions=["act"])
    def cancel_selected(self, request, queryset):
        from messaging import actions

        chosen = list(self._actionable(request, queryset))
        ready, refused = [], Counter()
        for delivery in chosen:
            problem = actions.delivery_cancel_problem(delivery)
            if problem:
                refused[problem] += 1
            else:
                ready.append(delivery)
        refused["Not yours to act on (support of its workspace can)."] += queryset.count() - len(
            chosen
        )
        refused = +refused

        def run(items):
            summary = actions.deliveries_cancel(
                delivery_ids=[d.pk for d in items], actor=request.user
            )
            return f"{len(summary.done)} send(s) cancelled." + _refusals(summary.refused)

        return confirm_action(
            self,
            request,
            action="cancel_selected",
            title="Cancel queued sends",
            will=f"Cancel {len(ready)} queued send(s): they are not sent, and end as skipped "
            "saying you cancelled them. A flow waiting for one of them stops.",
            ready=ready,
            describe=_item,
            refused=refused,
            button=f"Yes, cancel {len(ready)}",
            run=run,
        )


def _item(delivery: Delivery) -> str:
    reason = f", {delivery.get_reason_display().lower()}" if delivery.reason else ""
    to = f" to {delivery.contact}" if delivery.contact_id else ""
    return f"#{delivery.pk}: {delivery.get_kind_display().lower()}{to} ({delivery.status}{reason})"


def _refusals(refused: Counter) -> str:
    if not refused:
        return ""
    return " Left alone: " + "; ".join(f"{n}: {why}" for why, n in refused.items())


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
        from messaging.actions import account_is_paused_by_operator

        if account_is_paused_by_operator(obj):
            return "until resumed"
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
