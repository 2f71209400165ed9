"""Support answers "why didn't @fay.films get the guide?" from one search and one page."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from messaging.models import DeliveryKind, DeliveryStatus
from meta import samples
from tests.factories import (
    ContactFactory,
    DeliveryFactory,
    InstagramAccountFactory,
    MembershipFactory,
    TriggerFactory,
    WorkspaceFactory,
)
from tests.triggers.conftest import PERSON
from webhooks.outcomes import outcome_words, state_words

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(graph, process, account):
    """@fay.films commented "guide please"; the private reply was refused (window closed)."""
    TriggerFactory(account=account, name="Guide giveaway", keywords=["guide"], public_replies=[])
    body = samples.comment_body(
        account_id=account.ig_user_id, text="guide please", from_id=PERSON,
        from_username="fay.films", comment_id="17900000000000777",
    )  # fmt: skip
    event = process(body)
    delivery = account.deliveries.get()
    delivery.status, delivery.reason = DeliveryStatus.FAILED, "window_expired"
    delivery.meta_code, delivery.meta_subcode = 10, 2534022
    delivery.meta_message = "This message is sent outside of allowed window."
    delivery.meta_trace_id = "TRACE-fay-1"
    delivery.finished_at = timezone.now()
    delivery.save()
    delivery.attempt_log.update(outcome="failed")  # Meta refused it: it never arrived
    return event, delivery


def support_of(workspace) -> Client:
    client = Client()
    client.force_login(MembershipFactory(workspace=workspace, role=Role.SUPPORT).user)
    return client


@pytest.mark.parametrize(
    "term", ["@fay.films", "fay.films", "guide please", "17900000000000777", PERSON]
)
def test_one_search_finds_the_persons_sends(story, account, term):
    _, delivery = story
    listing = support_of(account.workspace).get(
        reverse("admin:messaging_delivery_changelist"), {"q": term}
    )
    assert [row.pk for row in listing.context["cl"].result_list] == [delivery.pk]


def test_the_contacts_list_finds_them_by_what_they_wrote(story, account):
    listing = support_of(account.workspace).get(
        reverse("admin:accounts_contact_changelist"), {"q": "guide please"}
    )
    assert [c.igsid for c in listing.context["cl"].result_list] == [PERSON]


def test_another_workspaces_words_find_nothing(story, account):
    other = WorkspaceFactory(name="Other")
    elsewhere = InstagramAccountFactory(workspace=other)
    DeliveryFactory(account=elsewhere, contact=ContactFactory(account=elsewhere))
    listing = support_of(other).get(
        reverse("admin:messaging_delivery_changelist"), {"q": "guide please"}
    )
    assert list(listing.context["cl"].result_list) == []


def test_the_timeline_says_what_they_wrote_and_why_nothing_arrived(story, account):
    _, delivery = story
    client = support_of(account.workspace)
    page = client.get(reverse("admin:accounts_contact_change", args=[delivery.contact_id]))
    body = page.content.decode()
    assert page.status_code == 200
    said = body.index("guide please")
    queued = body.index(f"Send #{delivery.pk}")
    assert said < queued  # in time order
    assert "matched Guide giveaway" in body
    assert "failed: messaging window expired" in body
    assert "Meta&#x27;s code 10, subcode 2534022" in body and "TRACE-fay-1" in body
    assert "What to do:" in body and "24-hour messaging window has closed" in body
    assert f"{delivery.created_at:%Y-%m-%d %H:%M:%S}" in body  # to the second
    assert f'id="retry-{delivery.pk}"' in body


def test_delivery_and_event_pages_are_read_only_records_in_words(story, account):
    event, delivery = story
    client = support_of(account.workspace)
    page = client.get(reverse("admin:messaging_delivery_change", args=[delivery.pk]))
    body = page.content.decode()
    assert 'name="_save"' not in body and "Save" not in body
    assert "Messaging window expired" in body and "What to do:" in body
    assert reverse("admin:accounts_contact_change", args=[delivery.contact_id]) in body
    event_page = client.get(reverse("admin:webhooks_webhookevent_change", args=[event.pk]))
    text = event_page.content.decode()
    assert "guide please" in text and "@fay.films" in text
    assert "Matched Guide giveaway" in text
    assert (
        client.post(reverse("admin:webhooks_webhookevent_change", args=[event.pk])).status_code
        == 403
    )


def test_dm_only_people_get_their_username_from_meta(account, mocked_graph):
    import re

    from messaging.profiles import contacts_fill_profiles
    from tests.conftest import GRAPH

    person = ContactFactory(account=account, username="", last_interaction_at=timezone.now())
    silent = ContactFactory(account=account, username="")  # never wrote: Meta would not say
    mocked_graph.add(
        "GET", re.compile(rf"{GRAPH}/{person.igsid}"), json={"username": "dm.only", "name": "Dee"}
    )
    assert contacts_fill_profiles() == 1
    person.refresh_from_db()
    silent.refresh_from_db()
    assert (person.username, person.name) == ("dm.only", "Dee")
    assert silent.profile_checked_at is None


@pytest.mark.parametrize(
    ("result", "words"),
    [
        (
            {
                "outcome": "cooled_down",
                "trigger": "Guide giveaway",
                "until": "2026-11-20T14:02:00+00:00",
            },
            "matched Guide giveaway; nothing sent: cooling down for this person until "
            "2026-11-20 14:02:00 UTC",
        ),
        (
            {"outcome": "matched", "trigger": "Guide", "deliveries": [1, 2]},
            "matched Guide; 2 sends queued",
        ),
        ({"outcome": "no_match"}, "no trigger matched"),
        (
            {"outcome": "ignored", "why": "the account's own comment"},
            "ignored: the account's own comment",
        ),
        ({"outcome": "recorded", "seen": 1}, "marked 1 of our message as seen"),
    ],
)
def test_event_outcomes_are_said_in_words(result, words):
    assert outcome_words(result) == words


def test_an_event_whose_trigger_was_cooling_down_does_not_say_answered():
    assert state_words("processed", [{"outcome": "cooled_down"}]) == (
        "Matched, nothing sent (cooling down)"
    )
    assert state_words("processed", [{"outcome": "matched"}]) == "Answered"


def test_a_cooled_down_event_records_until_when(graph, process, account):
    TriggerFactory(
        account=account, name="Guide", keywords=["guide"], extra={"cooldown_seconds": 3600}
    )
    process(samples.comment_body(account_id=account.ig_user_id, text="guide", from_id=PERSON))
    second = process(
        samples.comment_body(account_id=account.ig_user_id, text="guide", from_id=PERSON)
    )
    result = second.result[0]
    assert result["outcome"] == "cooled_down"
    assert "until" in result
    assert "cooling down for this person until" in outcome_words(result)
    assert DeliveryKind.PRIVATE_REPLY  # the first got its reply
