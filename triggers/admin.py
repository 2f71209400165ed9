from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from accounts.audit import AuditedAdminMixin
from accounts.models import InstagramAccount
from accounts.permissions import AGENCY_ONLY, MARKETER_ROLES, WorkspaceScopedAdmin, accounts_for
from triggers.models import FlowRun, Trigger, TriggerEvent, TriggerFiring
from triggers.selectors import triggers_preview
from triggers.triggerfile import KNOWN_FIELDS, trigger_errors

# Fields of the trigger file that are list-valued JSON on the form (empty means none).
_LIST_FIELDS = ("keywords", "examples", "media_ids", "public_replies", "messages")


class TriggerAdminForm(forms.ModelForm):
    """The trigger page: whatever is typed into it must be a trigger the trigger file could
    load, checked by the importer's own validator (triggers.triggerfile.trigger_errors), so a
    malformed message or option can never reach processing. Each problem is shown under its
    field; the options beyond the file's main fields are checked in "Extra"."""

    class Meta:
        model = Trigger
        fields = [*KNOWN_FIELDS, "extra"]

    def clean(self):
        cleaned = super().clean()
        for name in _LIST_FIELDS:
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = []
        if cleaned.get("extra") is None and "extra" in self.fields:
            cleaned["extra"] = {}
        if self.errors or cleaned.get("account") is None:
            return cleaned  # unreadable JSON or a missing account: already said
        extra = cleaned.get("extra", self.instance.extra)
        if not isinstance(extra, dict):
            self.add_error("extra", 'Options are an object, e.g. {"cooldown_seconds": 3600}.')
            return cleaned
        clashing = sorted(set(extra) & set(KNOWN_FIELDS))
        if clashing:
            self.add_error("extra", f"{', '.join(clashing)}: set in their own field, not here.")
            return cleaned
        item = dict(extra)
        for name in KNOWN_FIELDS:
            item[name] = cleaned.get(name, getattr(self.instance, name, None))
        item["account"] = cleaned["account"].ig_user_id
        for field_name, problems in trigger_errors(item).items():
            target = field_name if field_name in self.fields else None
            if field_name and field_name not in KNOWN_FIELDS and "extra" in self.fields:
                target = "extra"
            for problem in problems:
                self.add_error(target, problem)
        return cleaned


class TestTextForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=InstagramAccount.objects.none(),
        required=False,
        empty_label="Every account",
    )
    event = forms.ChoiceField(choices=TriggerEvent.choices, initial=TriggerEvent.COMMENT)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False)
    media_id = forms.CharField(
        required=False, help_text="Comment triggers: the post the comment is under (optional)."
    )
    first_message = forms.BooleanField(
        required=False, help_text="DMs: the person's first message (welcome replies)."
    )

    def __init__(self, *args, accounts=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts


@admin.register(Trigger)
class TriggerAdmin(AuditedAdminMixin, WorkspaceScopedAdmin):
    """Marketers manage their workspaces' triggers and flows (messages, steps, options)."""

    workspace_path = "account__workspace"
    view_roles = edit_roles = MARKETER_ROLES
    form = TriggerAdminForm
    list_display = ["name", "account", "event", "match", "keyword_list", "priority", "enabled"]
    list_filter = ["enabled", "event", "match", "account"]
    list_select_related = ["account"]
    list_editable = ["enabled", "priority"]
    search_fields = ["name", "keywords"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="Keywords")
    def keyword_list(self, obj: Trigger) -> str:
        return ", ".join(obj.keywords)

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Flow runs and firings are the trigger's own history, read-only on their own pages but
        # removed with it: whoever may delete the trigger may take them along.
        perms_needed -= {FlowRun._meta.verbose_name, TriggerFiring._meta.verbose_name}
        return deleted, model_count, perms_needed, protected

    def get_urls(self):
        return [
            path(
                "test-text/",
                self.admin_site.admin_view(self.test_text_view),
                name="triggers_trigger_test_text",
            ),
            *super().get_urls(),
        ]

    def test_text_view(self, request):
        """A marketer types a text and sees which trigger would fire, where, and why."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        # Only accounts whose triggers the person manages: another workspace's id is an
        # invalid choice, and "every account" means every one of theirs.
        accounts = accounts_for(request.user, MARKETER_ROLES).order_by("username")
        form = TestTextForm(request.GET or None, accounts=accounts)
        previews = None
        if form.is_bound and form.is_valid():
            chosen = form.cleaned_data["account"]
            previews = triggers_preview(
                accounts=[chosen] if chosen else list(accounts),
                event=form.cleaned_data["event"],
                text=form.cleaned_data["text"],
                media_id=form.cleaned_data["media_id"].strip(),
                first_message=form.cleaned_data["first_message"],
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Test a text against the triggers",
            "form": form,
            "previews": previews,
        }
        return TemplateResponse(request, "admin/triggers/trigger/test_text.html", context)


@admin.register(FlowRun)
class FlowRunAdmin(WorkspaceScopedAdmin):
    workspace_path = "account__workspace"
    view_roles = MARKETER_ROLES
    edit_roles = AGENCY_ONLY
    list_display = ["trigger", "contact", "account", "status", "step", "position", "updated_at"]
    list_filter = ["status", "account"]
    list_select_related = ["trigger", "contact", "account"]
    search_fields = ["contact__igsid", "contact__username", "trigger__name", "origin_key"]
    readonly_fields = [field.name for field in FlowRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TriggerFiring)
class TriggerFiringAdmin(WorkspaceScopedAdmin):
    workspace_path = "trigger__account__workspace"
    view_roles = MARKETER_ROLES
    edit_roles = AGENCY_ONLY
    list_display = ["trigger", "contact", "fired_at", "origin_key"]
    list_select_related = ["trigger", "contact"]
    list_filter = ["trigger__account"]
    search_fields = ["contact__igsid", "trigger__name"]
    readonly_fields = ["trigger", "contact", "fired_at", "origin_key"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
