"""Whose problem is a refusal (meta-api.md section 6): the person's, or the whole account's.

Only account-level refusals (a dead token, a permission Meta names, code 230, policy 368)
hold the account; a refusal about one person ends that delivery; ambiguous code-10/200
refusals hold the account only when several different people are refused in a row.
Meta's error codes: https://developers.facebook.com/docs/messenger-platform/error-codes
"""

import pytest

from accounts.models import AccountStatus, InstagramAccount
from messaging.models import Delivery, DeliveryAttempt, DeliveryReason, DeliveryStatus
from messaging.refusals import BREAKER_RECIPIENTS
from messaging.selectors import delivery_as_record
from tests.factories import ContactFactory, InstagramAccountFactory
from tests.messaging.test_send import (
    answer,
    message,
    messages_url,
    meta_error,
    pacer_runs,  # noqa: F401  (autouse fixture)
    private_reply,
    send,
)

pytestmark = pytest.mark.django_db

NO_PERMISSION = "(#10) Application does not have permission for this action"


def _refuse_with(mocked_graph, account, code=10, subcode=None, message_text=NO_PERMISSION):
    answer(mocked_graph, account, status=400, body=meta_error(code, subcode, message=message_text))


def _people(account, n):
    return [ContactFactory(account=account) for _ in range(n)]


def _account_now(account) -> InstagramAccount:
    return InstagramAccount.objects.get(pk=account.pk)


# --- one person's refusal ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("subcode", "text", "reason"),
    [
        (
            2018108,
            "(#10) This person isn't receiving messages from you right now.",
            "conversation_closed",
        ),
        (2018300, "(#10) Another app is controlling this thread now.", "meta_error"),
        (2534022, "(#10) This message is sent outside of allowed window.", "window_expired"),
    ],
)
def test_a_refusal_about_one_person_ends_that_delivery_only(mocked_graph, subcode, text, reason):
    account = InstagramAccountFactory()
    (person,) = _people(account, 1)
    from accounts.services import contact_record_inbound

    contact_record_inbound(account=account, igsid=person.igsid, interacted_at=person.created_at)
    _refuse_with(mocked_graph, account, 10, subcode, text)

    delivery = send(message(person))

    assert (delivery.status, delivery.reason) == (DeliveryStatus.FAILED, reason)
    assert _account_now(account).status == AccountStatus.ACTIVE
    assert _account_now(account).refusal_streak == []  # not ambiguous: no breaker count


def test_one_ambiguous_refusal_does_not_hold_and_the_next_person_is_still_sent_to(mocked_graph):
    account = InstagramAccountFactory()
    _refuse_with(mocked_graph, account)
    send(private_reply(account))
    _next_answer(mocked_graph, account, ok=True)

    second = send(private_reply(account))

    assert second.status == DeliveryStatus.SENT
    assert _account_now(account).status == AccountStatus.ACTIVE
    # A send that went through clears the streak: the account can message.
    assert _account_now(account).refusal_streak == []


def test_the_same_person_refused_again_and_again_never_holds_the_account(mocked_graph):
    account = InstagramAccountFactory()
    (person,) = _people(account, 1)
    _refuse_with(mocked_graph, account)
    for _ in range(BREAKER_RECIPIENTS + 2):
        delivery = send(private_reply(account, contact=person))
        assert delivery.status == DeliveryStatus.FAILED
    assert _account_now(account).status == AccountStatus.ACTIVE


def test_different_people_refused_in_a_row_hold_the_account_with_the_reason(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    people = _people(account, BREAKER_RECIPIENTS)
    _refuse_with(mocked_graph, account)
    results = [send(private_reply(account, contact=person)) for person in people]

    assert [d.status for d in results[:-1]] == [DeliveryStatus.FAILED] * (BREAKER_RECIPIENTS - 1)
    tripped = results[-1]
    # The one that trips the breaker waits for the account, held with its reason.
    assert tripped.status == DeliveryStatus.QUEUED and tripped.held_since is not None
    assert tripped.reason == DeliveryReason.PERMISSION_MISSING
    now = _account_now(account)
    assert now.status == AccountStatus.NEEDS_RECONNECT
    assert now.reconnect_reason == DeliveryReason.PERMISSION_MISSING
    assert f"{BREAKER_RECIPIENTS} different people in a row" in now.status_reason
    assert "Allow access to messages" in now.status_reason
    assert NO_PERMISSION in now.status_reason
    # Later sends are held before calling Meta, carrying the reason.
    later = send(private_reply(account))
    assert later.status == DeliveryStatus.QUEUED
    assert later.reason == DeliveryReason.PERMISSION_MISSING
    assert "Held until" in later.detail
    assert len(mocked_graph.calls) == BREAKER_RECIPIENTS


def _next_answer(mocked_graph, account, *, ok: bool) -> None:
    if ok:
        mocked_graph.upsert(
            "POST", messages_url(account), json={"recipient_id": "1", "message_id": "m"}
        )
    else:
        mocked_graph.upsert(
            "POST", messages_url(account), status=400, json=meta_error(10, message=NO_PERMISSION)
        )


def test_a_success_between_refusals_restarts_the_count(mocked_graph):
    account = InstagramAccountFactory()
    people = _people(account, BREAKER_RECIPIENTS)
    _next_answer(mocked_graph, account, ok=False)
    for person in people[:-1]:
        send(private_reply(account, contact=person))
    _next_answer(mocked_graph, account, ok=True)
    send(private_reply(account, contact=people[-1]))
    _next_answer(mocked_graph, account, ok=False)
    for person in people[:-1]:
        send(private_reply(account, contact=person))
    # Refused, sent, refused: never BREAKER_RECIPIENTS different people in a row.
    assert _account_now(account).status == AccountStatus.ACTIVE
    # One more different person in the current run trips it.
    send(private_reply(account, contact=people[-1]))
    assert _account_now(account).status == AccountStatus.NEEDS_RECONNECT


# --- the account's own refusals -------------------------------------------------------------
def test_code_230_holds_the_account_naming_pages_messaging(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    first, second = private_reply(account), private_reply(account)
    _refuse_with(
        mocked_graph,
        account,
        230,
        None,
        "(#230) Requires pages_messaging permission to manage the object",
    )

    first = send(first)
    second = send(second)

    now = _account_now(account)
    assert now.status == AccountStatus.NEEDS_RECONNECT
    assert now.reconnect_reason == DeliveryReason.PERMISSION_MISSING
    assert "pages_messaging" in now.status_reason
    for held in (first, second):
        assert held.status == DeliveryStatus.QUEUED and held.held_since is not None
        assert held.reason == DeliveryReason.PERMISSION_MISSING
        assert "pages_messaging" in held.detail
    assert len(mocked_graph.calls) == 1


def test_a_held_delivery_exports_its_reason_and_detail(mocked_graph):
    account = InstagramAccountFactory()
    answer(mocked_graph, account, status=400, body=meta_error(190, message="Token expired."))
    held = send(private_reply(account))
    record = delivery_as_record(held)
    assert record["status"] == "queued"
    assert record["reason"] == "token_invalid"
    assert "Held until" in record["detail"]


def test_release_after_reconnect_clears_the_held_reason(mocked_graph):
    from messaging.services import account_release

    account = InstagramAccountFactory()
    answer(mocked_graph, account, status=400, body=meta_error(190, message="Token expired."))
    held = send(private_reply(account))
    InstagramAccount.objects.filter(pk=account.pk).update(status=AccountStatus.ACTIVE)
    account_release(account_id=account.pk)
    held.refresh_from_db()
    assert held.held_since is None and held.reason == ""


# --- private replies with choices ------------------------------------------------------------
WITH_CHOICES = {
    "text": "Want the guide?",
    "quick_replies": [{"content_type": "text", "title": "Send it", "payload": "flow:1:link"}],
}


def test_choices_refused_on_a_private_reply_are_dropped_and_it_goes_once_more(mocked_graph):
    # meta-api.md 4: quick replies on a reply addressed by comment_id are not documented; a
    # parameter error did not use up the comment's one reply, so it goes again as plain text.
    account = InstagramAccountFactory()
    delivery = private_reply(account, payload=WITH_CHOICES)
    mocked_graph.post(
        messages_url(account),
        status=400,
        json=meta_error(100, message="(#100) Invalid parameter: quick_replies"),
    )
    mocked_graph.post(messages_url(account), json={"recipient_id": "1", "message_id": "m.9"})

    # Refused with the choices: queued again without them, and paced again at once.
    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.SENT
    assert delivery.payload == {"text": "Want the guide?"}
    bodies = [call.request.body for call in mocked_graph.calls]
    assert b"quick_replies" in bodies[0] and b"quick_replies" not in bodies[1]
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.outcome, a.meta_code) for a in attempts] == [
        (1, "failed", 100),
        (2, "sent", None),
    ]


def test_a_plain_private_reply_refused_with_100_is_not_sent_again(mocked_graph):
    account = InstagramAccountFactory()
    delivery = private_reply(account, payload={"text": "plain"})
    mocked_graph.post(
        messages_url(account), status=400, json=meta_error(100, message="(#100) Invalid")
    )
    delivery = send(delivery)
    assert (delivery.status, delivery.reason) == (DeliveryStatus.FAILED, "meta_error")
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1
