"""The trigger editor: real fields, no JSON, and the importer's own validator beside each field.

Whatever the importer refuses, the editor refuses with the same words (and the reverse), next
to the field at fault; blocks are added and removed with plain form buttons; the test box and
the preview never save.
"""

import json

import pytest
from django.urls import reverse
from django.utils.html import escape

from accounts.models import AuditEntry
from tests.factories import InstagramAccountFactory, TriggerFactory
from triggers.models import Trigger
from triggers.triggerfile import GATE_BEFORE_CONSENT, TriggerFileError, parse_trigger_file

pytestmark = pytest.mark.django_db
ADD = reverse("admin:triggers_trigger_add")


def form(account, **overrides) -> dict:
    """What the editor posts for a comment trigger with one message (fields as typed)."""
    data = {
        "account": account.pk,
        "name": "Freebie",
        "event": "comment",
        "fires_on": "match",
        "match": "contains",
        "keywords": "freebie, free pdf",
        "examples": "",
        "post_scope": "all",
        "media_ids": "",
        "public_replies": "Sent! Check your DMs",
        "cooldown_value": "",
        "cooldown_unit": "hours",
        "fuzzy_threshold": "",
        "intent_threshold": "",
        "follow_gate_text": "",
        "follow_gate_button": "",
        "enabled": "on",
        "priority": "0",
        "steps-count": "1",
        "s0-count": "1",
        "s0m0-text": "Here is the PDF: https://example.com/free.pdf",
        "s0m0-image": "",
        "s0m0-delay": "",
        "s0m0-delay_unit": "minutes",
        "s0m0-count": "0",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def with_flow(account, title="Send me the link", next_step="link", **overrides) -> dict:
    """A two-step flow: a quick reply on the first message leads to the step "link"."""
    return form(
        account,
        **{
            "steps-count": "2",
            "s0m0-text": "Want the PDF?",
            "s0m0-count": "1",
            "s0m0c0-kind": "quick_reply",
            "s0m0c0-title": title,
            "s0m0c0-url": "",
            "s0m0c0-next": next_step,
            "s1-name": "link",
            "s1-count": "1",
            "s1m0-text": "Here it is: https://example.com/free.pdf",
            "s1m0-delay": "",
            "s1m0-delay_unit": "minutes",
            "s1m0-count": "0",
            **overrides,
        },
    )


@pytest.fixture
def account():
    return InstagramAccountFactory(username="acme.studio")


def errors_of(response) -> str:
    assert response.status_code == 200, "the editor saved"
    return response.content.decode()


def importer_errors(item: dict) -> list[str]:
    with pytest.raises(TriggerFileError) as refused:
        parse_trigger_file({"triggers": [item]})
    return refused.value.errors


def test_keywords_typed_with_commas_or_lines_save_without_json(admin_client, account):
    response = admin_client.post(ADD, form(account, keywords="freebie, free pdf\nguide"))
    assert response.status_code == 302, response.content.decode()[:3000]
    trigger = Trigger.objects.get(name="Freebie")
    assert trigger.keywords == ["freebie", "free pdf", "guide"]
    assert trigger.public_replies == ["Sent! Check your DMs"]
    assert trigger.messages == [{"text": "Here is the PDF: https://example.com/free.pdf"}]
    entry = AuditEntry.objects.get(object_type="triggers.trigger", action="created")
    assert entry.actor.username == "admin"


def test_a_two_step_flow_is_built_from_blocks(admin_client, account):
    response = admin_client.post(
        ADD, with_flow(account, **{"s1m0-delay": "2", "s1m0-delay_unit": "hours"})
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    trigger = Trigger.objects.get(name="Freebie")
    assert trigger.messages == [
        {"text": "Want the PDF?", "quick_replies": [{"title": "Send me the link", "next": "link"}]}
    ]
    assert trigger.extra["steps"] == {
        "link": [{"text": "Here it is: https://example.com/free.pdf", "delay_seconds": 7200}]
    }


@pytest.mark.parametrize(
    ("overrides", "field_id", "importer_path"),
    [
        # A 21-character quick-reply title (Meta shows 20).
        ({"s0m0c0-title": "Send me the link now!"}, "s0m0c0", "messages[0].quick_replies[0].title"),
        # A choice leading to a step that does not exist.
        ({"s0m0c0-next": "bonus"}, "s0m0c0", "messages[0].quick_replies[0].next"),
        # UTF-8 bytes, as Meta counts: 300 emoji are 1,200 bytes.
        ({"s1m0-text": "🎁" * 300}, "s1m0", "steps.link[0].text"),
        # Whether someone follows is known only after they message or tap.
        ({"s0m0-follow_gate": "on"}, "s0m0", "messages[0].follow_gate"),
    ],
)
def test_the_editor_and_the_importer_refuse_alike_beside_the_field(
    admin_client, account, overrides, field_id, importer_path
):
    data = with_flow(account, **overrides)
    body = errors_of(admin_client.post(ADD, data))
    assert not Trigger.objects.exists()
    item = {
        "account": "acme.studio",
        "name": "Freebie",
        "event": "comment",
        "keywords": ["freebie"],
        "public_replies": ["Sent!"],
        "messages": [
            {
                "text": "Want the PDF?",
                "quick_replies": [{"title": data["s0m0c0-title"], "next": data["s0m0c0-next"]}],
                **({"follow_gate": True} if "s0m0-follow_gate" in data else {}),
            }
        ],
        "steps": {"link": [{"text": data["s1m0-text"]}]},
    }
    (problem,) = [e for e in importer_errors(item) if importer_path in e]
    said = problem.split(f"{importer_path}: ", 1)[1]
    # The same words, inside the block of the field at fault (before the next block starts).
    block = body[body.index(f'id="{field_id}"') :]
    block = block[: block.find('class="block', 20) if 'class="block' in block[20:] else None]
    assert escape(said) in block


def test_a_21_character_title_is_refused_with_meta_limit(admin_client, account):
    body = errors_of(admin_client.post(ADD, with_flow(account, title="Send me the link now!")))
    assert "21 characters; Meta shows at most 20." in body


def test_a_next_naming_no_step_is_refused(admin_client, account):
    body = errors_of(admin_client.post(ADD, with_flow(account, next_step="bonus")))
    assert "no step &#x27;bonus&#x27; in this trigger&#x27;s steps (link)." in body


def test_follow_gate_on_a_comment_private_reply_is_refused(admin_client, account):
    body = errors_of(admin_client.post(ADD, with_flow(account, **{"s0m0-follow_gate": "on"})))
    assert GATE_BEFORE_CONSENT[:80].replace("'", "&#x27;") in body


def test_a_trigger_that_would_send_nothing_is_refused_as_a_whole(admin_client, account):
    body = errors_of(admin_client.post(ADD, form(account, public_replies="", **{"s0m0-text": ""})))
    assert "needs messages or public_replies, or it would send nothing." in body


def test_a_name_taken_on_the_account_is_refused(admin_client, account):
    TriggerFactory(account=account, name="Freebie")
    body = errors_of(admin_client.post(ADD, form(account)))
    assert "Another trigger of this account has this name" in body


def test_editing_keeps_options_the_editor_has_no_field_for(admin_client, account):
    trigger = TriggerFactory(account=account, name="Guide", extra={"custom": {"a": 1}})
    page = admin_client.get(reverse("admin:triggers_trigger_change", args=[trigger.pk]))
    assert page.status_code == 200
    assert "guide" in page.content.decode()  # keywords shown as text, one per line
    response = admin_client.post(
        reverse("admin:triggers_trigger_change", args=[trigger.pk]),
        form(account, name="Guide", keywords="guide"),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    trigger.refresh_from_db()
    assert trigger.extra == {"custom": {"a": 1}}
    assert AuditEntry.objects.filter(action="changed", object_id=str(trigger.pk)).exists()


def test_adding_and_removing_blocks_needs_no_javascript(admin_client, account):
    data = form(account, _editor="add-step")
    page = admin_client.post(ADD, data)
    body = page.content.decode()
    assert page.status_code == 200
    assert 'name="s1-name"' in body and not Trigger.objects.exists()
    data = with_flow(account, _editor="add-choice:0:0")
    body = admin_client.post(ADD, data).content.decode()
    assert 'name="s0m0c1-title"' in body
    data = with_flow(account, _editor="remove-step:1")
    body = admin_client.post(ADD, data).content.decode()
    assert 'name="s1-name"' not in body


def test_the_preview_and_the_test_box_never_save(admin_client, account):
    TriggerFactory(account=account, name="Price", keywords=["price"], event="comment")
    data = with_flow(account, _test="1", test_text="free pdf please", test_event="comment")
    body = errors_of(admin_client.post(ADD, data))
    assert not Trigger.objects.filter(name="Freebie").exists()
    assert 'id="test-winner">Freebie</strong> (this trigger)' in body
    preview = admin_client.post(ADD + "?fragment=preview", with_flow(account, _preview="1"))
    html = preview.content.decode()
    assert "Want the PDF?" in html and "Send me the link" in html and "Here it is" in html
    assert not Trigger.objects.filter(name="Freebie").exists()


def test_near_misses_say_which_mode_would_match(admin_client, account):
    TriggerFactory(account=account, name="Guide", match="exact", keywords=["guide"])
    data = form(account, _test="1", test_text="the guide please", test_event="comment")
    body = errors_of(admin_client.post(ADD, data))
    assert "Guide: would match in contains mode" in body


def test_json_is_typed_nowhere(admin_client, account):
    trigger = TriggerFactory(
        account=account,
        messages=[{"text": "Want it?", "quick_replies": [{"title": "Yes", "next": "link"}]}],
        extra={"steps": {"link": [{"text": "Here"}]}, "cooldown_seconds": 3600},
    )
    body = admin_client.get(
        reverse("admin:triggers_trigger_change", args=[trigger.pk])
    ).content.decode()
    editor = body[body.index('id="trigger-editor"') :]
    for raw in ('[{"', '{"text"', "[&quot;", "{&quot;"):
        assert raw not in editor
    assert 'value="link"' in editor and 'name="cooldown_value"' in editor
    assert json.dumps(trigger.keywords) not in editor
