import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin_tools import CsvExportMixin, confirm_action
from accounts.audit import AuditedAdminMixin
from accounts.models import InstagramAccount
from accounts.permissions import AGENCY_ONLY, MARKETER_ROLES, WorkspaceScopedAdmin, accounts_for
from messaging.models import Delivery, DeliveryStatus
from meta import messages as meta_messages
from triggers import editor
from triggers.models import FlowRun, Trigger, TriggerEvent, TriggerFiring
from triggers.previews import screens_for_flow
from triggers.selectors import triggers_preview
from triggers.testing import text_test
from triggers.triggerfile import CHOICE_TITLE_LIMIT, KNOWN_FIELDS


def _as_initial(data) -> dict:
    """A posted editor's basic fields as the initial values of a fresh (unchecked) form."""
    initial = {name: data.get(name, "") for name in editor.TriggerBasicsForm.base_fields}
    for name, form_field in editor.TriggerBasicsForm.base_fields.items():
        if isinstance(form_field, forms.BooleanField):
            initial[name] = bool(data.get(name))
    return initial


def _screens(page: editor.Editor):
    messages_spec = [editor._message_spec(block) for block in page.steps[0].messages]
    steps_spec = {
        step.name or f"(step {index})": [editor._message_spec(block) for block in step.messages]
        for index, step in enumerate(page.steps[1:], start=1)
    }
    return screens_for_flow(messages_spec, steps_spec)


def _who(page: editor.Editor, trigger: Trigger | None) -> str:
    account = trigger.account if trigger else None
    form = page.form
    if form.is_bound and hasattr(form, "cleaned_data") and form.cleaned_data.get("account"):
        account = form.cleaned_data["account"]
    return f"{account} on Instagram" if account else "Instagram"


def _recent_problems(trigger: Trigger | None) -> list[Delivery]:
    """The trigger's latest sends that did not go, for the person who can fix the flow."""
    if trigger is None:
        return []
    return list(
        Delivery.objects.filter(
            trigger=trigger,
            status__in=[DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.UNKNOWN],
        )
        .select_related("contact")
        .order_by("-created_at")[:5]
    )


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


def _trigger_csv_fields():
    from triggers.triggerfile import trigger_as_dict

    def column(name):
        return lambda trigger: json.dumps(trigger_as_dict(trigger).get(name), ensure_ascii=False)

    return [
        ("account", lambda t: t.account.username),
        ("name", lambda t: t.name),
        ("event", lambda t: t.event),
        ("match", lambda t: t.match),
        ("keywords", lambda t: ", ".join(t.keywords or [])),
        ("enabled", lambda t: t.enabled),
        ("paused", lambda t: bool(t.paused_at)),
        ("priority", lambda t: t.priority),
        ("messages", column("messages")),
        ("options", lambda t: json.dumps(t.extra or {}, ensure_ascii=False)),
    ]


@admin.register(Trigger)
class TriggerAdmin(AuditedAdminMixin, CsvExportMixin, WorkspaceScopedAdmin):
    """Marketers manage their workspaces' triggers and flows through the editor (real fields,
    no JSON; triggers.editor), test a text against them and pause or resume them."""

    workspace_path = "account__workspace"
    view_roles = edit_roles = MARKETER_ROLES
    list_display = [
        "name",
        "account",
        "event",
        "match",
        "keyword_list",
        "priority",
        "enabled",
        "state",
    ]
    list_filter = ["enabled", "event", "match", "account"]
    list_select_related = ["account"]
    list_editable = ["enabled", "priority"]
    search_fields = ["name", "keywords"]
    actions = ["pause_selected", "resume_selected"]
    csv_fields = []
    change_list_template = "admin/triggers/trigger/change_list.html"

    @admin.display(description="Keywords")
    def keyword_list(self, obj: Trigger) -> str:
        return ", ".join(obj.keywords)

    @admin.display(description="Sending")
    def state(self, obj: Trigger) -> str:
        if obj.paused_at:
            return format_html('<strong class="warn">paused</strong> by {}', obj.paused_by or "?")
        return "on" if obj.enabled else "off"

    def export_view(self, request):
        if not self.csv_fields:
            type(self).csv_fields = _trigger_csv_fields()
        return super().export_view(request)

    # --- the editor ------------------------------------------------------------------------
    def _editable_accounts(self, request):
        return (
            accounts_for(request.user, MARKETER_ROLES)
            .select_related("workspace")
            .order_by("username")
        )

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return self._editor(request, None)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return self._editor(request, obj)

    def _editor(self, request, trigger: Trigger | None):
        accounts = self._editable_accounts(request)
        may_save = (
            self.has_add_permission(request)
            if trigger is None
            else self.has_change_permission(request, trigger)
        )
        initial, steps, kept = editor.initial_for(trigger)
        posted = request.method == "POST"
        if posted and not may_save:
            raise PermissionDenied
        action = request.POST.get("_editor", "") if posted else ""
        trying = posted and ("_test" in request.POST or "_preview" in request.POST)
        if not posted:
            page = editor.Editor(
                editor.TriggerBasicsForm(initial=initial, accounts=accounts), steps, kept
            )
        elif action:
            # Adding or removing a block: the page again, as typed, nothing checked yet.
            page = editor.Editor(
                editor.TriggerBasicsForm(initial=_as_initial(request.POST), accounts=accounts),
                editor.steps_from_post(request.POST),
                kept,
            )
            editor.apply_editor_action(page.steps, action)
        else:
            page = editor.editor_from_post(request.POST, accounts=accounts, kept_options=kept)
            editor.editor_validate(page)
            self._check_name_free(page, trigger)
            if page.is_valid and not trying:
                saved = editor.trigger_save(
                    trigger=trigger,
                    item=page.item,
                    account=page.form.cleaned_data["account"],
                    actor=request.user,
                )
                verb = "added" if trigger is None else "saved"
                self.message_user(
                    request, f"The trigger “{saved.name}” was {verb}.", messages.SUCCESS
                )
                if "_list" in request.POST:
                    return HttpResponseRedirect(reverse("admin:triggers_trigger_changelist"))
                return HttpResponseRedirect(
                    reverse("admin:triggers_trigger_change", args=[saved.pk])
                )
        if request.GET.get("fragment") == "preview":
            return TemplateResponse(
                request,
                "console/phone.html",
                {"screens": _screens(page), "who": _who(page, trigger)},
            )
        test = (
            self._test_box(request, page, trigger) if posted and "_test" in request.POST else None
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Trigger “{trigger.name}”" if trigger else "Add a trigger",
            "subtitle": None,
            "trigger": trigger,
            "editor": page,
            "form": page.form,
            "may_save": may_save,
            "screens": _screens(page),
            "who": _who(page, trigger),
            "test": test,
            "test_events": TriggerEvent.choices,
            "test_text": request.POST.get("test_text", "") if posted else "",
            "test_event": request.POST.get("test_event", "")
            if posted
            else (trigger.event if trigger else TriggerEvent.COMMENT),
            "test_media": request.POST.get("test_media", "") if posted else "",
            "choice_kinds": editor.CHOICE_KINDS,
            "units": editor.UNIT_CHOICES,
            "text_limit": meta_messages.TEXT_MAX_BYTES,
            "button_text_limit": meta_messages.BUTTON_TEXT_MAX_CHARS,
            "title_limit": CHOICE_TITLE_LIMIT,
            "deliveries_url": f"{reverse('admin:messaging_delivery_changelist')}?trigger="
            f"{trigger.pk}"
            if trigger
            else "",
            "failed_url": f"{reverse('admin:messaging_delivery_changelist')}?trigger="
            f"{trigger.pk}&status__in=failed,skipped,unknown"
            if trigger
            else "",
            "recent_problems": _recent_problems(trigger),
            "has_delete_permission": trigger is not None
            and self.has_delete_permission(request, trigger),
        }
        return TemplateResponse(request, "admin/triggers/trigger/editor.html", context)

    def _check_name_free(self, page: editor.Editor, trigger: Trigger | None) -> None:
        if page.item is None or page.form.errors:
            return
        taken = Trigger.objects.filter(
            account=page.form.cleaned_data["account"], name=page.item["name"].strip()
        )
        if trigger is not None:
            taken = taken.exclude(pk=trigger.pk)
        if taken.exists():
            page.form.add_error(
                "name", "Another trigger of this account has this name: choose another."
            )

    def _test_box(self, request, page: editor.Editor, trigger: Trigger | None):
        """The test box: the trigger as typed (when it reads), against the account's others."""
        account = None
        draft = None
        if page.item is not None and page.form.is_valid():
            account = page.form.cleaned_data["account"]
            draft = Trigger(
                pk=trigger.pk if trigger else None,
                account=account,
                **{k: page.item[k] for k in KNOWN_FIELDS if k not in ("account",)},
                extra={k: v for k, v in page.item.items() if k not in KNOWN_FIELDS},
            )
        elif trigger is not None:
            account = trigger.account
        if account is None:
            return {"problem": "Choose the account first."}
        event = request.POST.get("test_event") or (draft or trigger).event
        if event not in TriggerEvent.values:
            event = TriggerEvent.COMMENT
        return {
            "result": text_test(
                account=account,
                event=event,
                text=request.POST.get("test_text", ""),
                media_id=request.POST.get("test_media", "").strip(),
                draft=draft,
            ),
            "draft_pk": draft.pk if draft is not None else None,
        }

    # --- pause and resume --------------------------------------------------------------------
    @admin.action(description="Pause the selected triggers (their sends wait)")
    def pause_selected(self, request, queryset):
        from triggers.actions import trigger_pause

        triggers = list(queryset.select_related("account"))
        ready = [t for t in triggers if t.paused_at is None]
        already = len(triggers) - len(ready)

        def run(items):
            held = sum(max(0, trigger_pause(trigger=t, actor=request.user)) for t in items)
            return f"{len(items)} trigger(s) paused; {held} queued send(s) now wait."

        return confirm_action(
            self,
            request,
            action="pause_selected",
            title="Pause triggers",
            will=f"Pause {len(ready)} trigger(s). They still answer comments and messages, but "
            "what they send waits in the queue, marked as waiting, until you resume them.",
            warning="Sends already handed to a worker go out; everything else waits.",
            ready=ready,
            describe=lambda t: f"{t.name} ({t.account})",
            refused={"Already paused.": already} if already else None,
            button=f"Yes, pause {len(ready)}",
            run=run,
        )

    @admin.action(description="Resume the selected paused triggers")
    def resume_selected(self, request, queryset):
        from triggers.actions import trigger_resume

        triggers = list(queryset.select_related("account"))
        ready = [t for t in triggers if t.paused_at is not None]
        not_paused = len(triggers) - len(ready)

        def run(items):
            released = sum(max(0, trigger_resume(trigger=t, actor=request.user)) for t in items)
            return f"{len(items)} trigger(s) resumed; {released} waiting send(s) go out now."

        return confirm_action(
            self,
            request,
            action="resume_selected",
            title="Resume triggers",
            will=f"Resume {len(ready)} trigger(s): the sends they kept waiting go out now, "
            "each checked against its window first (a DM whose 24 hours have passed is "
            "skipped, saying so).",
            ready=ready,
            describe=lambda t: f"{t.name} ({t.account}), paused by {t.paused_by or '?'}",
            refused={"Not paused.": not_paused} if not_paused else None,
            button=f"Yes, resume {len(ready)}",
            run=run,
        )

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
            for preview in previews:
                # What nearly answered: another mode, a switched-off trigger, another post.
                preview.near_misses = text_test(
                    account=preview.account,
                    event=form.cleaned_data["event"],
                    text=form.cleaned_data["text"],
                    media_id=form.cleaned_data["media_id"].strip(),
                    first_message=form.cleaned_data["first_message"],
                ).near_misses
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
