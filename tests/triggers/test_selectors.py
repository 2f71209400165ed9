"""Which trigger answers an event, and which public reply variant it sends."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import InstagramAccountFactory, TriggerFactory
from triggers.models import Trigger
from triggers.selectors import trigger_choose
from triggers.services import public_reply_pick

pytestmark = pytest.mark.django_db


def choose(account, text, *, event="comment", media_id=""):
    decision = trigger_choose(account=account, event=event, text=text, media_id=media_id)
    return decision.trigger if decision else None


# --- trigger_choose -----------------------------------------------------------------------------
def test_chooses_the_matching_trigger_and_reports_the_keyword():
    trigger = TriggerFactory(match="contains", keywords=["guide"])

    decision = trigger_choose(
        account=trigger.account, event="comment", text="Guide please!", media_id="1"
    )

    assert decision.trigger == trigger
    assert decision.match.keyword == "guide"
    assert decision.mode == "contains"


def test_no_matching_trigger_chooses_nothing():
    trigger = TriggerFactory(keywords=["guide"])

    assert choose(trigger.account, "nice photo") is None


def test_an_account_without_triggers_chooses_nothing():
    assert choose(InstagramAccountFactory(), "guide") is None


def test_disabled_trigger_is_ignored():
    trigger = TriggerFactory(keywords=["guide"], enabled=False)

    assert choose(trigger.account, "guide") is None


def test_disabled_trigger_is_ignored_even_with_a_higher_priority():
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"], enabled=False, priority=10)
    enabled = TriggerFactory(account=account, keywords=["guide"], priority=0)

    assert choose(account, "guide") == enabled


@pytest.mark.parametrize("other_event", ["dm", "story_reply", "story_mention"])
def test_triggers_of_another_event_type_are_ignored(other_event):
    trigger = TriggerFactory(event=other_event, keywords=["guide"], public_replies=[])

    assert choose(trigger.account, "guide", event="comment") is None


def test_event_type_selects_among_triggers_with_the_same_keyword():
    account = InstagramAccountFactory()
    comment = TriggerFactory(account=account, event="comment", keywords=["guide"])
    dm = TriggerFactory(account=account, event="dm", keywords=["guide"], public_replies=[])

    assert choose(account, "guide", event="comment") == comment
    assert choose(account, "guide", event="dm") == dm


def test_post_scoped_trigger_answers_on_its_posts():
    trigger = TriggerFactory(keywords=["guide"], media_ids=["111", "222"])

    assert choose(trigger.account, "guide", media_id="111") == trigger
    assert choose(trigger.account, "guide", media_id="222") == trigger


@pytest.mark.parametrize("media_id", ["333", ""])
def test_post_scoped_trigger_ignores_other_posts(media_id):
    trigger = TriggerFactory(keywords=["guide"], media_ids=["111"])

    assert choose(trigger.account, "guide", media_id=media_id) is None


def test_any_post_trigger_answers_on_every_post():
    trigger = TriggerFactory(keywords=["guide"], media_ids=[])

    assert choose(trigger.account, "guide", media_id="999") == trigger


def test_other_accounts_triggers_never_match():
    account = InstagramAccountFactory()
    TriggerFactory(keywords=["guide"], priority=100)  # another account
    TriggerFactory(account=InstagramAccountFactory(workspace=account.workspace), keywords=["guide"])

    assert choose(account, "guide") is None


def test_highest_priority_wins_over_a_more_specific_match():
    account = InstagramAccountFactory()
    TriggerFactory(account=account, match="exact", keywords=["guide"], media_ids=["111"])
    catch_all = TriggerFactory(account=account, match="any", keywords=[], priority=5)

    assert choose(account, "guide", media_id="111") == catch_all


def test_negative_priority_loses_to_the_default():
    account = InstagramAccountFactory()
    TriggerFactory(account=account, match="exact", keywords=["guide"], priority=-1)
    default = TriggerFactory(account=account, match="any", keywords=[])

    assert choose(account, "guide") == default


def test_post_scoped_trigger_wins_over_any_post_at_equal_priority():
    account = InstagramAccountFactory()
    TriggerFactory(account=account, match="exact", keywords=["guide"])
    scoped = TriggerFactory(account=account, match="contains", keywords=["guide"], media_ids=["1"])

    assert choose(account, "guide", media_id="1") == scoped


@pytest.mark.parametrize(
    ("specific", "general"),
    [("exact", "contains"), ("contains", "fuzzy"), ("fuzzy", "any"), ("exact", "any")],
)
def test_more_specific_mode_wins_at_equal_priority(specific, general):
    account = InstagramAccountFactory()
    # Create the general one first so the creation order cannot be what decides.
    TriggerFactory(account=account, match=general, keywords=["guide"])
    winner = TriggerFactory(account=account, match=specific, keywords=["guide"])

    assert choose(account, "guide") == winner


def test_longer_keyword_wins_at_equal_priority_and_mode():
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"])
    longer = TriggerFactory(account=account, keywords=["send guide"])

    assert choose(account, "please send guide") == longer


def test_closer_fuzzy_match_wins():
    account = InstagramAccountFactory()
    TriggerFactory(account=account, match="fuzzy", keywords=["prize"])
    closer = TriggerFactory(account=account, match="fuzzy", keywords=["price"])

    assert choose(account, "the price?") == closer


def test_a_full_tie_is_decided_the_same_way_every_time():
    account = InstagramAccountFactory()
    first = TriggerFactory(account=account, keywords=["guide"])
    TriggerFactory(account=account, keywords=["guide"])

    assert {choose(account, "guide") for _ in range(5)} == {first}


def test_fuzzy_threshold_from_the_trigger_file_is_respected():
    strict = TriggerFactory(match="fuzzy", keywords=["price"], extra={"fuzzy_threshold": 95})

    assert choose(strict.account, "prcie") is None
    assert choose(strict.account, "price") == strict


# --- public_reply_pick --------------------------------------------------------------------------
def test_public_reply_pick_never_repeats_the_last_variant():
    trigger = TriggerFactory(public_replies=["one", "two", "three"])

    picks = []
    for _ in range(200):
        # A fresh row each time, as each comment loads the trigger anew.
        picks.append(public_reply_pick(Trigger.objects.get(pk=trigger.pk)))

    assert all(a != b for a, b in itertools.pairwise(picks))
    assert set(picks) == {"one", "two", "three"}


def test_public_reply_pick_reads_and_stores_in_one_statement():
    trigger = TriggerFactory(public_replies=["one", "two", "three"])
    Trigger.objects.filter(pk=trigger.pk).update(last_public_reply_index=7)  # variants removed

    with CaptureQueriesContext(connection) as captured:
        picked = public_reply_pick(trigger)

    assert len(captured.captured_queries) == 1
    stored = Trigger.objects.get(pk=trigger.pk).last_public_reply_index
    assert picked == ["one", "two", "three"][stored] and trigger.last_public_reply_index == stored


def test_public_reply_pick_alternates_two_variants():
    trigger = TriggerFactory(public_replies=["one", "two"])

    picks = [public_reply_pick(trigger) for _ in range(20)]

    assert picks[::2] == [picks[0]] * 10
    assert picks[1::2] == [picks[1]] * 10
    assert {picks[0], picks[1]} == {"one", "two"}


def test_public_reply_pick_repeats_a_single_variant():
    trigger = TriggerFactory(public_replies=["Sent! Check your DMs"])

    assert [public_reply_pick(trigger) for _ in range(5)] == ["Sent! Check your DMs"] * 5


def test_public_reply_pick_without_variants_is_empty():
    trigger = TriggerFactory(public_replies=[])

    assert public_reply_pick(trigger) == ""
    assert public_reply_pick(trigger) == ""


def test_public_reply_pick_skips_blank_variants():
    trigger = TriggerFactory(public_replies=["  ", "only one", ""])

    assert {public_reply_pick(trigger) for _ in range(10)} == {"only one"}
