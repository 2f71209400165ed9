"""The trigger page validates every stored trigger with the trigger file's own validator.

What the form accepted before (any JSON) broke processing: `messages: ["x"]`,
`public_replies: [1]`, a naive `armed_at`. Each is now refused with a message under its field.
"""

import json

import pytest
from django.urls import reverse

from tests.factories import InstagramAccountFactory, TriggerFactory
from triggers.models import Trigger
from triggers.triggerfile import GATE_BEFORE_CONSENT

pytestmark = pytest.mark.django_db


def post_data(trigger: Trigger, **overrides) -> dict:
    data = {
        "account": trigger.account_id,
        "name": trigger.name,
        "event": trigger.event,
        "match": trigger.match,
        "keywords": json.dumps(trigger.keywords),
        "examples": json.dumps(trigger.examples),
        "media_ids": json.dumps(trigger.media_ids),
        "public_replies": json.dumps(trigger.public_replies),
        "messages": json.dumps(trigger.messages),
        "enabled": "on" if trigger.enabled else "",
        "priority": str(trigger.priority),
        "extra": json.dumps(trigger.extra),
    }
    data.update({key: json.dumps(value) for key, value in overrides.items()})
    return data


@pytest.fixture
def trigger():
    return TriggerFactory(account=InstagramAccountFactory(), name="Guide")


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was accepted"
    return {
        name: list(errors) for name, errors in response.context["adminform"].form.errors.items()
    }


def change(admin_client, trigger, **overrides):
    url = reverse("admin:triggers_trigger_change", args=[trigger.pk])
    return admin_client.post(url, post_data(trigger, **overrides))


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"messages": ["x"]}, "messages", 'messages[0]: must be an object like {"text": "..."}.'),
        ({"public_replies": [1]}, "public_replies", "public_replies: must be a list of strings."),
        (
            {"messages": [{"text": "x" * 1001}]},
            "messages",
            "messages[0].text: 1,001 bytes in UTF-8, 1 over Meta's limit of 1,000 bytes per "
            "message (emoji and non-Latin letters take 2 to 4 bytes each); shorten it.",
        ),
        (
            # Emoji count as Meta counts them: 4 bytes each in UTF-8.
            {"messages": [{"text": "🎁" * 300}]},
            "messages",
            "messages[0].text: 1,200 bytes in UTF-8, 200 over Meta's limit of 1,000 bytes per "
            "message (emoji and non-Latin letters take 2 to 4 bytes each); shorten it.",
        ),
        (
            # Whether someone follows is known only after they message or tap.
            {"messages": [{"text": "Here it is", "follow_gate": True}]},
            "messages",
            f"messages[0].follow_gate: {GATE_BEFORE_CONSENT}",
        ),
        ({"media_ids": ["abc"]}, "media_ids", "media_ids: Instagram media ids are numeric."),
        (
            {"extra": {"scope": "next_post", "armed_at": "2026-11-25T10:00:00"}},
            "extra",
            'armed_at: a date and time with its UTC offset, e.g. "2026-11-25T10:00:00+00:00".',
        ),
        (
            {"extra": {"steps": {"link": []}}},
            "extra",
            "steps.link: must be a non-empty list of messages.",
        ),
        (
            {"extra": {"cooldown_seconds": -5}},
            "extra",
            "cooldown_seconds: whole seconds, 0 or more.",
        ),
        (
            {"extra": ["not", "options"]},
            "extra",
            'Options are an object, e.g. {"cooldown_seconds": 3600}.',
        ),
        ({"extra": {"messages": []}}, "extra", "messages: set in their own field, not here."),
        ({"keywords": []}, "keywords", "keywords: match 'contains' needs at least one keyword."),
    ],
)
def test_malformed_triggers_are_refused_under_the_field_at_fault(
    admin_client, trigger, overrides, field, says
):
    before = Trigger.objects.values().get(pk=trigger.pk)
    errors = form_errors(change(admin_client, trigger, **overrides))
    assert says in errors[field], errors
    assert Trigger.objects.values().get(pk=trigger.pk) == before


def test_a_trigger_that_would_send_nothing_is_refused_as_a_whole(admin_client, trigger):
    errors = form_errors(change(admin_client, trigger, messages=[], public_replies=[]))
    assert "needs messages or public_replies, or it would send nothing." in errors["__all__"]


def test_a_valid_trigger_with_a_flow_is_saved(admin_client, trigger):
    messages = [{"text": "Want the link?", "quick_replies": [{"title": "Yes", "next": "link"}]}]
    extra = {
        "steps": {"link": [{"text": "Here: https://example.com"}]},
        "scope": "next_post",
        "armed_at": "2026-11-25T10:00:00+00:00",
    }
    response = change(admin_client, trigger, messages=messages, extra=extra)
    assert response.status_code == 302, form_errors(response)
    trigger.refresh_from_db()
    assert trigger.messages == messages
    assert trigger.extra == extra


def test_the_add_page_validates_too(admin_client, trigger):
    template = TriggerFactory.build(account=trigger.account, name="New one")
    response = admin_client.post(
        reverse("admin:triggers_trigger_add"), post_data(template, messages=["x"])
    )
    assert "messages" in form_errors(response)
    assert not Trigger.objects.filter(name="New one").exists()
