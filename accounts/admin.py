from django import forms
from django.contrib import admin

from accounts.models import Contact, InstagramAccount, Workspace


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
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
class InstagramAccountAdmin(admin.ModelAdmin):
    form = InstagramAccountForm
    list_display = ["username", "workspace", "ig_user_id", "login_kind", "status", "masked_token"]
    list_filter = ["status", "login_kind", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["username", "ig_user_id", "page_id"]
    readonly_fields = ["masked_token", "created_at", "updated_at"]

    @admin.display(description="Access token")
    def masked_token(self, obj: InstagramAccount) -> str:
        return obj.masked_token


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["__str__", "igsid", "account", "last_interaction_at", "last_comment_at"]
    list_filter = ["account"]
    list_select_related = ["account"]
    search_fields = ["igsid", "username"]
    raw_id_fields = ["account"]


from accounts import admin_people  # noqa: E402, F401  (people, audit trail)
