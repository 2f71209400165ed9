import json

from django.contrib import admin, messages
from django.utils.html import format_html

from accounts.permissions import AGENCY_ONLY, SUPPORT_ROLES, WorkspaceScopedAdmin, is_agency_admin
from webhooks import services
from webhooks.models import WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(WorkspaceScopedAdmin):
    """Support reads the events linked to their workspaces' accounts; an unattributed event
    (unknown account, rejected body) is for agency admins only."""

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
        "error",
        "pretty_body",
        "pretty_result",
        "account_ids",
        "redeliveries",
        "processing_attempts",
        "processed_at",
        "dedupe_key",
    ]
    exclude = ["raw_body", "result"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="What happened")
    def summary(self, obj: WebhookEvent) -> str:
        parts = []
        for item in obj.result[:3]:
            text = f"{item.get('type')}: {item.get('outcome')}"
            if item.get("trigger"):
                text += f" ({item['trigger']})"
            elif item.get("why"):
                text += f" ({item['why']})"
            parts.append(text)
        if len(obj.result) > 3:
            parts.append(f"+{len(obj.result) - 3} more")
        return "; ".join(parts) or obj.error[:120]

    @admin.display(description="Body")
    def pretty_body(self, obj: WebhookEvent) -> str:
        try:
            text = json.dumps(json.loads(obj.raw_body), indent=2, ensure_ascii=False)
        except ValueError:
            text = obj.raw_body
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)

    @admin.display(description="Result")
    def pretty_result(self, obj: WebhookEvent) -> str:
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(obj.result, indent=2)
        )

    def has_reprocess_permission(self, request) -> bool:
        return is_agency_admin(request.user)

    @admin.action(description="Process again (sends stay deduplicated)", permissions=["reprocess"])
    def reprocess(self, request, queryset) -> None:
        for event_id in queryset.values_list("pk", flat=True):
            services.webhook_event_reprocess(event_id=event_id)
        self.message_user(request, f"{queryset.count()} event(s) queued again.", messages.SUCCESS)
