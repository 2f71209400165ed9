import json
from contextvars import ContextVar

from django.contrib import admin, messages
from django.utils.html import format_html

from accounts.permissions import AGENCY_ONLY, SUPPORT_ROLES, WorkspaceScopedAdmin, is_agency_admin
from webhooks import selectors, services
from webhooks.models import WebhookEvent

HIDDEN_NOTE = (
    "This event also carries updates for accounts of other workspaces; they are not shown."
)
# Who is looking, for the columns and fields (Django passes them only the row): set for the
# duration of one page, rendering included. Unset means nobody, who sees nothing.
_viewer: ContextVar[tuple | None] = ContextVar("webhook_event_viewer", default=None)


@admin.register(WebhookEvent)
class WebhookEventAdmin(WorkspaceScopedAdmin):
    """Support reads the events linked to their workspaces' accounts; an unattributed event
    (unknown account, rejected body) is for agency admins only. Of a batched event naming
    several workspaces' accounts, a member sees only their accounts' part: body, results,
    summary and search all go through webhooks.selectors."""

    workspace_path = "accounts__workspace"
    view_roles = SUPPORT_ROLES
    edit_roles = AGENCY_ONLY
    list_display = ["id", "received_at", "state", "summary", "redeliveries", "processed_at"]
    list_filter = ["state", "received_at"]
    search_fields = ["raw_body", "dedupe_key"]
    date_hierarchy = "received_at"
    actions = ["reprocess"]
    readonly_fields = [
        "received_at",
        "state",
        "error_text",
        "pretty_body",
        "pretty_result",
        "named_accounts",
        "redeliveries",
        "processing_attempts",
        "processed_at",
        "dedupe_key",
    ]
    exclude = ["raw_body", "result", "error", "account_ids"]

    def has_add_permission(self, request) -> bool:
        return False

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
        return self._as_viewer(request, super().change_view, object_id, form_url, extra_context)

    def _view(self, obj: WebhookEvent) -> selectors.EventView:
        user, views = _viewer.get() or (None, {})
        if obj.pk not in views:
            views[obj.pk] = selectors.event_view_for(
                event=obj, user=user, roles=self.view_roles + self.edit_roles
            )
        return views[obj.pk]

    @admin.display(description="What happened")
    def summary(self, obj: WebhookEvent) -> str:
        view = self._view(obj)
        results = view.result
        parts = []
        for item in results[:3]:
            text = f"{item.get('type')}: {item.get('outcome')}"
            if item.get("trigger"):
                text += f" ({item['trigger']})"
            elif item.get("why"):
                text += f" ({item['why']})"
            parts.append(text)
        if len(results) > 3:
            parts.append(f"+{len(results) - 3} more")
        if not parts and view.whole:
            return obj.error[:120]
        return "; ".join(parts)

    @admin.display(description="Error")
    def error_text(self, obj: WebhookEvent) -> str:
        view = self._view(obj)
        return obj.error if view.whole else ""

    @admin.display(description="Accounts named")
    def named_accounts(self, obj: WebhookEvent) -> str:
        view = self._view(obj)
        if view.whole and not view.parts:
            return ", ".join(obj.account_ids or [])
        return ", ".join(view.instagram_ids)

    @admin.display(description="Body")
    def pretty_body(self, obj: WebhookEvent) -> str:
        view = self._view(obj)
        shown = view.body
        if view.raw_body:
            try:
                shown = json.loads(view.raw_body)
            except ValueError:
                shown = None
        text = view.raw_body if shown is None else json.dumps(shown, indent=2, ensure_ascii=False)
        note = "" if view.whole else HIDDEN_NOTE
        return format_html("<p>{}</p><pre style='white-space:pre-wrap'>{}</pre>", note, text)

    @admin.display(description="Result")
    def pretty_result(self, obj: WebhookEvent) -> str:
        view = self._view(obj)
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>",
            json.dumps(view.result, indent=2, ensure_ascii=False),
        )

    def has_reprocess_permission(self, request) -> bool:
        return is_agency_admin(request.user)

    @admin.action(description="Process again (sends stay deduplicated)", permissions=["reprocess"])
    def reprocess(self, request, queryset) -> None:
        for event_id in queryset.values_list("pk", flat=True):
            services.webhook_event_reprocess(event_id=event_id)
        self.message_user(request, f"{queryset.count()} event(s) queued again.", messages.SUCCESS)
