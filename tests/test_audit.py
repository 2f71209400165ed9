"""The audit trail written from the admin and by import_triggers: who, when, what changed."""

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, Role
from tests.editor_forms import trigger_editor_post
from tests.factories import (
    InstagramAccountFactory,
    MembershipFactory,
    TriggerFactory,
    UserFactory,
    WorkspaceFactory,
)
from triggers.models import Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return InstagramAccountFactory(
        username="acme.shop", workspace=WorkspaceFactory(name="Acme Studio")
    )


@pytest.fixture
def marketer(account):
    return MembershipFactory(
        user__username="mia", workspace=account.workspace, role=Role.MARKETER
    ).user


@pytest.fixture
def agency():
    return UserFactory(username="agency", is_superuser=True)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def trigger_post(trigger: Trigger, **overrides) -> dict:
    """The editor's post for the trigger, with ``overrides`` (trigger-file shape) typed over."""
    return trigger_editor_post(trigger, **overrides)


def test_changing_a_trigger_records_the_actor_and_the_diff(account, marketer):
    steps = {"link": [{"text": "Here is the old link"}]}
    trigger = TriggerFactory(
        account=account, name="Guide", keywords=["guide"], extra={"steps": steps}
    )
    new_steps = {"link": [{"text": "Here is the new link"}]}
    response = signed_in(marketer).post(
        reverse("admin:triggers_trigger_change", args=[trigger.pk]),
        trigger_post(trigger, keywords=["guide", "pdf"], steps=new_steps),
    )
    assert response.status_code == 302, response.content[:2000]

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.actor_label, entry.action) == (marketer, "mia", "changed")
    assert (entry.object_type, entry.object_id) == ("triggers.trigger", str(trigger.pk))
    assert entry.workspace == account.workspace
    assert entry.changes["keywords"] == [["guide"], ["guide", "pdf"]]
    assert entry.changes["extra"] == [{"steps": steps}, {"steps": new_steps}]
    assert set(entry.changes) == {"keywords", "extra"}  # nothing else, no updated_at


def test_saving_an_unchanged_trigger_records_nothing(account, marketer):
    trigger = TriggerFactory(account=account)
    signed_in(marketer).post(
        reverse("admin:triggers_trigger_change", args=[trigger.pk]), trigger_post(trigger)
    )
    assert not AuditEntry.objects.exists()


def test_adding_and_deleting_a_trigger_are_recorded(account, marketer):
    client = signed_in(marketer)
    template = TriggerFactory.build(account=account, name="Spring sale")
    response = client.post(reverse("admin:triggers_trigger_add"), trigger_post(template))
    assert response.status_code == 302
    trigger = Trigger.objects.get(name="Spring sale")
    created = AuditEntry.objects.get(action="created")
    assert created.actor == marketer
    assert created.changes["name"] == [None, "Spring sale"]

    response = client.post(
        reverse("admin:triggers_trigger_delete", args=[trigger.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    deleted = AuditEntry.objects.get(action="deleted")
    assert (deleted.actor, deleted.object_id) == (marketer, str(trigger.pk))
    assert deleted.changes["name"] == ["Spring sale", None]


def test_bulk_delete_and_list_edits_are_recorded(account, marketer):
    first, second = TriggerFactory(account=account), TriggerFactory(account=account)
    client = signed_in(marketer)
    url = reverse("admin:triggers_trigger_changelist")
    client.post(
        url,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(first.pk),
            "form-0-priority": "5",
            "_save": "Save",
        },
    )
    edited = AuditEntry.objects.get(action="changed")
    assert edited.changes == {"enabled": [True, False], "priority": [0, 5]}
    client.post(
        url, {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"}
    )
    assert set(AuditEntry.objects.filter(action="deleted").values_list("object_id", flat=True)) == {
        str(first.pk),
        str(second.pk),
    }


def test_replacing_an_account_token_shows_changed_never_the_token(account, agency):
    response = signed_in(agency).post(
        reverse("admin:accounts_instagramaccount_change", args=[account.pk]),
        {
            "workspace": account.workspace_id,
            "ig_user_id": account.ig_user_id,
            "ig_alt_id": "",
            "username": account.username,
            "page_id": account.page_id,
            "login_kind": "facebook",
            "scopes": json.dumps(account.scopes),
            "status": "active",
            "status_reason": "",
            "new_access_token": "EAAGbrandnewsecret9876",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    entry = AuditEntry.objects.get()
    assert entry.changes == {"access_token_encrypted": ["(changed)", "(changed)"]}
    page = signed_in(agency).get(reverse("admin:accounts_auditentry_change", args=[entry.pk]))
    body = page.content.decode()
    assert "(changed)" in body
    assert "EAAGbrandnewsecret9876" not in body
    assert "9876" not in json.dumps(entry.changes)


def test_workspace_and_membership_changes_are_recorded(agency, account):
    client = signed_in(agency)
    client.post(
        reverse("admin:accounts_workspace_change", args=[account.workspace_id]),
        {
            "name": "Acme Studio Ltd",
            "blocked_words": "[]",
            "blocked_domains": "[]",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    person = UserFactory(username="sam")
    response = client.post(
        reverse("admin:accounts_membership_add"),
        {
            "user": person.pk,
            "workspace": account.workspace_id,
            "role": Role.SUPPORT,
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    entries = {entry.object_type: entry for entry in AuditEntry.objects.all()}
    assert entries["accounts.workspace"].changes["name"] == ["Acme Studio", "Acme Studio Ltd"]
    assert entries["accounts.membership"].changes["role"] == [None, "support"]
    assert entries["accounts.membership"].actor == agency


def test_membership_form_offers_no_agency_admin_role(agency):
    response = signed_in(agency).get(reverse("admin:accounts_membership_add"))
    roles = [value for value, _ in response.context["adminform"].form.fields["role"].choices]
    assert Role.AGENCY_ADMIN not in roles
    assert Role.MARKETER in roles


def test_audit_entry_page_shows_who_when_and_what(account, marketer, agency):
    trigger = TriggerFactory(account=account, name="Guide", keywords=["guide"])
    signed_in(marketer).post(
        reverse("admin:triggers_trigger_change", args=[trigger.pk]),
        trigger_post(trigger, keywords=["guide", "pdf"]),
    )
    entry = AuditEntry.objects.get()
    listing = signed_in(marketer).get(reverse("admin:accounts_auditentry_changelist"))
    assert listing.status_code == 200
    assert "mia" in listing.content.decode()
    page = signed_in(agency).get(reverse("admin:accounts_auditentry_change", args=[entry.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "<strong>keywords</strong>" in body
    assert "&#x27;pdf&#x27;" in body or "pdf" in body
    assert "mia" in body
    assert f"{entry.at:%Y}" in body


# --- import_triggers -----------------------------------------------------------------------------
def write_triggers(tmp_path, **fields) -> str:
    entry = {
        "account": "acme.shop",
        "name": "Guide giveaway",
        "event": "comment",
        "match": "contains",
        "keywords": ["guide"],
        "messages": [{"text": "Here is the guide: https://example.com"}],
        **fields,
    }
    path = tmp_path / "triggers.json"
    path.write_text(json.dumps({"triggers": [entry]}), encoding="utf-8")
    return str(path)


def import_triggers(*args: str) -> None:
    call_command("import_triggers", *args, stdout=io.StringIO(), stderr=io.StringIO())


def test_import_as_a_person_records_them_with_the_diff(tmp_path, account, marketer):
    import_triggers(write_triggers(tmp_path), "--as", "mia")
    created = AuditEntry.objects.get()
    assert (created.actor, created.action, created.note) == (marketer, "created", "import_triggers")
    assert created.changes["keywords"] == [None, ["guide"]]

    import_triggers(write_triggers(tmp_path), "--as", "mia")
    assert AuditEntry.objects.count() == 1  # nothing changed, nothing recorded

    import_triggers(write_triggers(tmp_path, keywords=["guide", "pdf"]), "--as", "mia")
    changed = AuditEntry.objects.get(action="changed")
    assert changed.actor == marketer
    assert changed.changes == {"keywords": [["guide"], ["guide", "pdf"]]}


def test_import_without_a_person_is_recorded_as_the_command(tmp_path, account):
    import_triggers(write_triggers(tmp_path))
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.actor_label) == (None, "import_triggers")
    assert entry.workspace == account.workspace
