from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html

from accounts.admin_tools import CsvExportMixin, confirm_action
from accounts.audit import AuditedAdminMixin
from accounts.models import AccountStatus, Contact, InstagramAccount, Workspace
from accounts.permissions import (
    AGENCY_ONLY,
    MEMBER_ROLES,
    SUPPORT_ROLES,
    WorkspaceScopedAdmin,
    is_agency_admin,
)


def account_status_html(account: InstagramAccount) -> str:
    """The account's status as an operator should read it: a reconnect need in red, with why."""
    if account.status == AccountStatus.NEEDS_RECONNECT:
        reason = account.status_reason or account.reconnect_reason or "reconnect it"
        return format_html(
            "<strong style='color:#ba2121'>{}: {}</strong>", account.get_status_display(), reason
        )
    if account.status == AccountStatus.DISABLED:
        return format_html("<span style='color:#666'>{}</span>", account.get_status_display())
    return account.get_status_display()


def webhook_subscription_html(account: InstagramAccount) -> str:
    """What Meta listed when the subscription was last read back, in words."""
    if account.webhook_checked_at is None:
        return format_html("<span style='color:#666'>{}</span>", "not checked yet")
    when = f"{account.webhook_checked_at:%Y-%m-%d %H:%M:%S} UTC"
    if account.webhook_problem:
        return format_html(
            "<strong style='color:#ba2121'>{}</strong> (checked {})",
            account.webhook_problem,
            when,
        )
    fields = ", ".join(account.webhook_fields) or "(none)"
    return format_html("Subscribed: {} (checked {})", fields, when)


@admin.register(Workspace)
class WorkspaceAdmin(AuditedAdminMixin, WorkspaceScopedAdmin):
    workspace_path = ""
    view_roles = edit_roles = AGENCY_ONLY
    list_display = ["name", "created_at"]
    search_fields = ["name"]


class InstagramAccountForm(forms.ModelForm):
    new_access_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current token. Stored encrypted; never shown again.",
    )

    class Meta:
        model = InstagramAccount
        fields = [
            "workspace",
            "ig_user_id",
            "ig_alt_id",
            "username",
            "page_id",
            "login_kind",
            "token_expires_at",
            "scopes",
            "status",
            "status_reason",
        ]

    def save(self, commit: bool = True) -> InstagramAccount:
        account = super().save(commit=False)
        if self.cleaned_data.get("new_access_token"):
            account.access_token = self.cleaned_data["new_access_token"].strip()
        if commit:
            account.save()
        return account


@admin.register(InstagramAccount)
class InstagramAccountAdmin(AuditedAdminMixin, WorkspaceScopedAdmin):
    """Agency admins manage accounts; marketers and support read them (status, reconnect)."""

    workspace_path = "workspace"
    view_roles = MEMBER_ROLES
    edit_roles = AGENCY_ONLY
    form = InstagramAccountForm
    list_display = [
        "username",
        "status_display",
        "workspace",
        "webhooks_display",
        "last_webhook_at",
        "sending",
    ]
    list_filter = ["status", "login_kind", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["username", "ig_user_id", "page_id"]
    readonly_fields = [
        "masked_token",
        "webhooks_display",
        "webhook_fields",
        "webhook_checked_at",
        "last_webhook_at",
        "created_at",
        "updated_at",
    ]
    actions = ["replay_disconnected", "pause_sending", "resume_sending"]

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: InstagramAccount) -> str:
        return account_status_html(obj)

    @admin.display(description="Access token")
    def masked_token(self, obj: InstagramAccount) -> str:
        return obj.masked_token

    @admin.display(description="Webhook subscription")
    def webhooks_display(self, obj: InstagramAccount) -> str:
        return webhook_subscription_html(obj)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.has_change_permission(request, obj):
            # Read-only pages show no token field at all, not even an empty one.
            fields = [name for name in fields if name != "new_access_token"]
        return fields

    def has_replay_permission(self, request) -> bool:
        return is_agency_admin(request.user)

    @admin.display(description="Sending")
    def sending(self, obj: InstagramAccount) -> str:
        from messaging.actions import account_is_paused_by_operator

        if account_is_paused_by_operator(obj):
            return format_html("<strong class='warn'>paused</strong>: {}", obj.pause_reason)
        return "on"

    def has_pause_permission(self, request) -> bool:
        return is_agency_admin(request.user)

    @admin.action(description="Pause sending (sends wait until resumed)", permissions=["pause"])
    def pause_sending(self, request, queryset):
        from messaging.actions import account_is_paused_by_operator, account_sending_pause

        accounts = list(queryset)
        ready = [a for a in accounts if not account_is_paused_by_operator(a)]
        already = len(accounts) - len(ready)

        def run(items):
            for account in items:
                account_sending_pause(account=account, actor=request.user)
            return f"Sending paused for {len(items)} account(s); their sends wait."

        return confirm_action(
            self,
            request,
            action="pause_sending",
            title="Pause sending",
            will=f"Pause sending for {len(ready)} account(s). Comments and messages are still "
            "answered and recorded, but every send waits in the account's queue, marked as "
            "waiting, until you resume it.",
            warning="Sends already handed to a worker (at most a few per account) still go.",
            ready=ready,
            describe=lambda a: f"{a} ({a.workspace})",
            refused={"Already paused.": already} if already else None,
            button=f"Yes, pause {len(ready)}",
            run=run,
        )

    @admin.action(description="Resume sending", permissions=["pause"])
    def resume_sending(self, request, queryset):
        from messaging.actions import account_is_paused_by_operator, account_sending_resume

        accounts = list(queryset)
        ready = [a for a in accounts if account_is_paused_by_operator(a)]
        not_paused = len(accounts) - len(ready)

        def run(items):
            released = sum(
                max(0, account_sending_resume(account=account, actor=request.user))
                for account in items
            )
            return f"Sending resumed for {len(items)} account(s); {released} send(s) go now."

        return confirm_action(
            self,
            request,
            action="resume_sending",
            title="Resume sending",
            will=f"Resume sending for {len(ready)} account(s): their waiting sends go out at "
            "the account's pace, each checked against its window first.",
            ready=ready,
            describe=lambda a: f"{a} ({a.workspace}): {a.pause_reason}",
            refused={"Not paused by an operator.": not_paused} if not_paused else None,
            button=f"Yes, resume {len(ready)}",
            run=run,
        )

    @admin.action(description="Replay events received while disconnected", permissions=["replay"])
    def replay_disconnected(self, request, queryset) -> None:
        # Imported here: webhooks builds on accounts, never the other way round at import time.
        from webhooks.replay import ReplayError, account_replay_disconnected

        for account in queryset:
            try:
                counts = account_replay_disconnected(account=account, actor=request.user)
            except ReplayError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            summary = ", ".join(
                f"{name.replace('_', ' ')}: {value}" for name, value in counts.items()
            )
            self.message_user(request, f"{account}: {summary}.", messages.SUCCESS)


@admin.register(Contact)
class ContactAdmin(CsvExportMixin, WorkspaceScopedAdmin):
    """Support finds a person (by @username, name, what they wrote, comment id or IGSID) and
    reads their timeline: everything they did and everything sent to them, in order."""

    workspace_path = "account__workspace"
    view_roles = SUPPORT_ROLES
    edit_roles = AGENCY_ONLY
    list_display = ["__str__", "name", "igsid", "account", "last_interaction_at", "last_comment_at"]
    list_filter = ["account"]
    list_select_related = ["account"]
    search_fields = ["igsid", "username"]
    search_help_text = "Find by @username, name, what they wrote, comment id or IGSID."
    csv_fields = [
        ("igsid", lambda c: c.igsid),
        ("username", lambda c: c.username),
        ("name", lambda c: c.name),
        ("account", lambda c: c.account.username),
        ("last_interaction_at", lambda c: c.last_interaction_at),
        ("last_comment_at", lambda c: c.last_comment_at),
        ("created_at", lambda c: c.created_at),
    ]

    def has_add_permission(self, request) -> bool:
        return False  # people arrive by writing to an account

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # what Meta told us about a person is not edited by hand

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        # Imported here: the console reads every app; accounts is the base they build on.
        from config.console.search import contacts_matching

        roles = self.view_roles + self.edit_roles
        return contacts_matching(queryset, user=request.user, roles=roles, text=search_term), False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from config.console.views import contact_page

        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, obj) or request.method != "GET":
            raise PermissionDenied  # a read-only record: nothing to post here
        return contact_page(self, request, obj)


from accounts import admin_people  # noqa: E402, F401  (people, audit trail)
