import json
from contextvars import ContextVar
from datetime import date

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin_tools import CsvExportMixin, confirm_action
from accounts.audit import audit_record
from accounts.permissions import AGENCY_ONLY, SUPPORT_ROLES, WorkspaceScopedAdmin, is_agency_admin
from webhooks import outcomes, selectors, services
from webhooks.interactions import TAP_KINDS
from webhooks.models import Interaction, WebhookEvent


class TapsSinceFilter(admin.SimpleListFilter):
    """Taps on a trigger's choices since a day (``taps=<date>``; the dashboard's funnel)."""

    title = "taps"
    parameter_name = "taps"

    def lookups(self, request, model_admin):
        return [("all", "Taps on a flow's choices")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        taps = queryset.filter(kind__in=TAP_KINDS, outcome="matched")
        if value == "all":
            return taps
        try:
            return taps.filter(occurred_at__date__gte=date.fromisoformat(value))
        except ValueError:
            return queryset.none()


HIDDEN_NOTE = (
    "This event also carries updates for accounts of other workspaces; they are not shown."
)
# Who is looking, for the columns and fields (Django passes them only the row): set for the
# duration of one page, rendering included. Unset means nobody, who sees nothing.
_viewer: ContextVar[tuple | None] = ContextVar("webhook_event_viewer", default=None)


@admin.register(WebhookEvent)
class WebhookEventAdmin(CsvExportMixin, WorkspaceScopedAdmin):
    """Support reads the events linked to their workspaces' accounts; an unattributed event
    (unknown account, rejected body) is for agency admins only. Of a batched event naming
    several workspaces' accounts, a member sees only their accounts' part: body, results,
    summary and search all go through webhooks.selectors. Pages are read-only records."""

    workspace_path = "accounts__workspace"
    view_roles = SUPPORT_ROLES
    edit_roles = AGENCY_ONLY
    list_display = ["id", "received", "state_display", "summary", "redeliveries", "processed"]
    list_filter = ["state", "received_at"]
    search_fields = ["raw_body", "dedupe_key"]
    date_hierarchy = "received_at"
    show_full_result_count = False  # no count of every event on each page
    actions = ["reprocess"]
    csv_fields = [
        ("id", lambda e: e.pk),
        ("received_at", lambda e: e.received_at),
        ("state", lambda e: e.state),
        ("processed_at", lambda e: e.processed_at),
        ("redeliveries", lambda e: e.redeliveries),
        ("what_happened", lambda e: e.csv_summary),
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a record of what Meta sent and what became of it

    def get_queryset(self, request):
        return selectors.event_list_queryset(super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        if is_agency_admin(request.user) or not search_term.strip():
            return super().get_search_results(request, queryset, search_term)
        # Members search their accounts' parts only, never another workspace's messages.
        matching = selectors.event_ids_matching_for(
            user=request.user, text=search_term, roles=self.view_roles + self.edit_roles
        )
        return queryset.filter(pk__in=matching), False

    def _as_viewer(self, request, view, *args):
        token = _viewer.set((request.user, {}))
        try:
            response = view(request, *args)
            if hasattr(response, "render") and not response.is_rendered:
                response.render()
            return response
        finally:
            _viewer.reset(token)

    def changelist_view(self, request, extra_context=None):
        return self._as_viewer(request, super().changelist_view, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, obj) or request.method != "GET":
            raise PermissionDenied  # a read-only record: nothing to post here
        view = selectors.event_view_for(
            event=obj, user=request.user, roles=self.view_roles + self.edit_roles
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Webhook event #{obj.pk}",
            "subtitle": None,
            "event": obj,
            "view": view,
            "state_words": outcomes.state_words(obj.state, view.result),
            "updates": selectors.event_updates_for(view=view, user=request.user),
            "pretty_body": self._pretty_body(view),
            "hidden_note": "" if view.whole else HIDDEN_NOTE,
            "may_reprocess": self.has_reprocess_permission(request),
            "has_delete_permission": self.has_delete_permission(request, obj),
        }
        return TemplateResponse(request, "admin/webhooks/webhookevent/record.html", context)

    def csv_rows(self, queryset, user):
        # What the person may see of each event, as on its page (webhooks.selectors).
        for event in queryset.iterator(chunk_size=500):  # parts prefetched by get_queryset
            view = selectors.event_view_for(
                event=event, user=user, roles=self.view_roles + self.edit_roles
            )
            event.csv_summary = "; ".join(outcomes.update_words(item) for item in view.result)
            yield event

    def export_view(self, request):
        token = _viewer.set((request.user, {}))
        try:
            return super().export_view(request)
        finally:
            _viewer.reset(token)

    def _view(self, obj: WebhookEvent) -> selectors.EventView:
        user, views = _viewer.get() or (None, {})
        if obj.pk not in views:
            views[obj.pk] = selectors.event_view_for(
                event=obj, user=user, roles=self.view_roles + self.edit_roles
            )
        return views[obj.pk]

    @admin.display(description="Received (UTC)", ordering="received_at")
    def received(self, obj: WebhookEvent) -> str:
        return f"{obj.received_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="Processed (UTC)", ordering="processed_at")
    def processed(self, obj: WebhookEvent) -> str:
        return f"{obj.processed_at:%Y-%m-%d %H:%M:%S}" if obj.processed_at else "-"

    @admin.display(description="State", ordering="state")
    def state_display(self, obj: WebhookEvent) -> str:
        return outcomes.state_words(obj.state, self._view(obj).result)

    @admin.display(description="What happened")
    def summary(self, obj: WebhookEvent) -> str:
        view = self._view(obj)
        results = view.result
        parts = [outcomes.update_words(item) for item in results[:3]]
        if len(results) > 3:
            parts.append(f"+{len(results) - 3} more")
        if not parts and view.whole:
            return obj.error[:120]
        return "; ".join(parts)

    def _pretty_body(self, view: selectors.EventView) -> str:
        shown = view.body
        if view.raw_body:
            try:
                shown = json.loads(view.raw_body)
            except ValueError:
                shown = None
        return view.raw_body if shown is None else json.dumps(shown, indent=2, ensure_ascii=False)

    def has_reprocess_permission(self, request) -> bool:
        return is_agency_admin(request.user)

    @admin.action(description="Process again (sends stay deduplicated)", permissions=["reprocess"])
    def reprocess(self, request, queryset):
        events = list(queryset.order_by("pk"))

        def run(items):
            for event in items:
                services.webhook_event_reprocess(event_id=event.pk)
                audit_record(
                    action="replayed",
                    obj=event,
                    actor=request.user,
                    note="Processed again from the console.",
                )
            return f"{len(items)} event(s) queued again."

        return confirm_action(
            self,
            request,
            action="reprocess",
            title="Process events again",
            will=f"Process {len(events)} event(s) again, as if they had just arrived. Whatever "
            "was already answered is not sent twice (sends are deduplicated); what was not "
            "answered may be now, by today's triggers.",
            ready=events,
            describe=lambda event: (
                f"#{event.pk} received {event.received_at:%Y-%m-%d %H:%M:%S}"
                f" UTC ({outcomes.STATE_WORDS.get(event.state, event.state).lower()})"
            ),
            button=f"Yes, process {len(events)} again",
            run=run,
        )


@admin.register(Interaction)
class InteractionAdmin(CsvExportMixin, WorkspaceScopedAdmin):
    """What people did (comments, DMs, story replies and mentions, taps, reads), read from the
    events: support finds a person by what they wrote. Read-only."""

    workspace_path = "account__workspace"
    view_roles = SUPPORT_ROLES
    edit_roles = AGENCY_ONLY
    list_display = ["when", "person", "account", "kind", "said", "what_happened"]
    list_filter = ["kind", "outcome", TapsSinceFilter, "account"]
    list_select_related = ["account", "contact"]
    search_fields = ["text", "igsid", "username", "comment_id"]
    search_help_text = "Find by what they wrote, @username, comment id or IGSID."
    show_full_result_count = False
    csv_fields = [
        ("occurred_at", lambda i: i.occurred_at),
        ("account", lambda i: i.account.username),
        ("igsid", lambda i: i.igsid),
        ("username", lambda i: i.username),
        ("kind", lambda i: i.kind),
        ("text", lambda i: i.text),
        ("comment_id", lambda i: i.comment_id),
        ("media_id", lambda i: i.media_id),
        ("what_happened", lambda i: outcomes.outcome_words(i.result)),
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lstrip("@")
        return super().get_search_results(request, queryset, term)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if obj.contact_id:
            return HttpResponseRedirect(
                reverse("admin:accounts_contact_change", args=[obj.contact_id])
                + f"#interaction-{obj.pk}"
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="When (UTC)", ordering="occurred_at")
    def when(self, obj: Interaction) -> str:
        return f"{obj.occurred_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="Who")
    def person(self, obj: Interaction) -> str:
        name = f"@{obj.username}" if obj.username else str(obj.contact or obj.igsid)
        if obj.contact_id:
            url = reverse("admin:accounts_contact_change", args=[obj.contact_id])
            return format_html('<a href="{}">{}</a>', url, name)
        return name

    @admin.display(description="What they wrote")
    def said(self, obj: Interaction) -> str:
        return obj.text[:120] + ("…" if len(obj.text) > 120 else "")

    @admin.display(description="What happened")
    def what_happened(self, obj: Interaction) -> str:
        return outcomes.outcome_words(obj.result or {"outcome": obj.outcome})
