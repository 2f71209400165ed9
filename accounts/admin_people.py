"""Admin for people: invitations, memberships, the audit trail, data-deletion requests."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html_join

from accounts import invitations
from accounts.audit import AuditedAdminMixin
from accounts.models import AuditEntry, DataDeletionRequest, Invitation, Membership, Role
from accounts.permissions import AGENCY_ONLY, MARKETER_ROLES, WorkspaceScopedAdmin


class InvitationForm(forms.ModelForm):
    class Meta:
        model = Invitation
        fields = ["email", "role", "workspace"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("role") in (Role.MARKETER, Role.SUPPORT) and not cleaned.get("workspace"):
            self.add_error("workspace", "Marketers and support people are invited to a workspace.")
        return cleaned


@admin.register(Invitation)
class InvitationAdmin(WorkspaceScopedAdmin):
    view_roles = edit_roles = AGENCY_ONLY
    form = InvitationForm
    list_display = ["email", "role", "workspace", "invited_by", "created_at", "accepted_at"]
    list_filter = ["role", "workspace"]
    list_select_related = ["workspace", "invited_by"]
    search_fields = ["email"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # an invitation is sent as it is; invite again to change it

    def save_model(self, request, obj, form, change):
        invitation = invitations.invitation_create(
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            workspace=form.cleaned_data.get("workspace"),
            invited_by=request.user,
        )
        obj.pk = invitation.pk
        link = invitations.invitation_send(invitation, base_url=request.build_absolute_uri("/"))
        messages.info(request, f"Invitation sent to {invitation.email}. Link: {link}")


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "workspace", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Agency admins are superusers and need no membership; a membership grants one of these.
        self.fields["role"].choices = [
            (value, label) for value, label in Role.choices if value != Role.AGENCY_ADMIN
        ]


@admin.register(Membership)
class MembershipAdmin(AuditedAdminMixin, WorkspaceScopedAdmin):
    view_roles = edit_roles = AGENCY_ONLY
    form = MembershipForm
    raw_id_fields = ["user"]
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    list_select_related = ["user", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name"]


@admin.register(AuditEntry)
class AuditEntryAdmin(WorkspaceScopedAdmin):
    """Agency admins read the whole trail; marketers the trigger and flow entries of theirs."""

    view_roles = MARKETER_ROLES
    edit_roles = AGENCY_ONLY
    list_display = ["at", "actor_label", "action", "object_type", "object_repr", "workspace"]
    list_filter = ["action", "object_type", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["object_repr", "actor_label", "object_id"]
    readonly_fields = [
        "at",
        "actor",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "workspace",
        "change_table",
        "note",
    ]
    exclude = ["changes"]

    def limit_for_member(self, request, queryset):
        return queryset.filter(object_type__startswith="triggers.")

    @admin.display(description="What changed")
    def change_table(self, obj: AuditEntry) -> str:
        if not obj.changes:
            return "-"
        return format_html_join(
            "\n",
            "<div><strong>{}</strong>: {} &rarr; {}</div>",
            ((name, before, after) for name, (before, after) in obj.changes.items()),
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DataDeletionRequest)
class DataDeletionRequestAdmin(WorkspaceScopedAdmin):
    workspace_path = None  # Meta's requests name a person, not a workspace: agency admins only
    view_roles = edit_roles = AGENCY_ONLY
    list_display = ["confirmation_code", "source", "meta_user_id", "status", "requested_at"]
    list_filter = ["status", "source"]
    readonly_fields = [f.name for f in DataDeletionRequest._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
