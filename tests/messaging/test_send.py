"""Sending one delivery: claim, check, call Meta, record the attempt, then retry, hold or finish."""

import itertools
import json
import time
from datetime import timedelta

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone
from urllib3.exceptions import NewConnectionError

import messaging.tasks
from accounts.models import AccountStatus, InstagramAccount
from accounts.services import account_connect, contact_record_inbound
from messaging import services
from messaging.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryKind,
    DeliveryReason,
    DeliveryStatus,
)
from messaging.pacer import HEADROOM, budgets_for
from messaging.sharedstate import RedisState, shared_state
from tests.conftest import GRAPH
from tests.factories import ContactFactory, DeliveryFactory, InstagramAccountFactory
from tests.messaging.doubles import TaskRecorder

pytestmark = pytest.mark.django_db

_numbers = itertools.count()


@pytest.fixture(autouse=True)
def pacer_runs(monkeypatch):
    recorder = TaskRecorder()
    monkeypatch.setattr(messaging.tasks, "pace_account", recorder)
    return recorder


def private_reply(account=None, **fields):
    account = account or InstagramAccountFactory()
    return DeliveryFactory(account=account, kind=DeliveryKind.PRIVATE_REPLY, **fields)


def message(contact, **fields):
    n = next(_numbers)
    return DeliveryFactory(
        account=contact.account,
        contact=contact,
        kind=DeliveryKind.MESSAGE,
        comment_id="",
        recipient=contact.igsid,
        dedupe_key=f"message:{contact.igsid}:{n}",
        **fields,
    )


def messages_url(account) -> str:
    return f"{GRAPH}/{account.page_id}/messages"


def meta_error(code, subcode=None, message="(#100) Something went wrong", **extra) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AtRace1"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": {**error, **extra}}


def answer(mocked_graph, account, *, status=200, body=None, headers=None):
    mocked_graph.post(
        messages_url(account),
        status=status,
        json=body if body is not None else {"recipient_id": "848067418322071", "message_id": "m.1"},
        headers=headers,
    )


def fail_with(mocked_graph, account, exception):
    mocked_graph.post(messages_url(account), body=exception)


def send(delivery):
    """What the pacer does once the delivery's turn (and any retry wait) has come."""
    Delivery.objects.filter(pk=delivery.pk, status="queued").update(
        dispatched_at=timezone.now(), next_attempt_at=None
    )
    services.delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def buc_usage(account, *, percent, regain_minutes) -> dict:
    entry = {
        "type": "instagram",
        "call_count": percent,
        "total_cputime": 10,
        "total_time": 10,
        "estimated_time_to_regain_access": regain_minutes,
    }
    return {"X-Business-Use-Case-Usage": json.dumps({account.ig_user_id: [entry]})}


def within(value, start, end, *, slack=timedelta(seconds=2)):
    return start - slack <= value <= end + slack


# --- sent -----------------------------------------------------------------------------------------
def test_sent_delivery_records_the_attempt_and_metas_id(mocked_graph):
    delivery = private_reply()
    answer(mocked_graph, delivery.account)

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.SENT
    assert delivery.reason == ""
    assert delivery.attempts == 1
    assert delivery.meta_response_id == "m.1"
    assert delivery.sent_at is not None
    attempt = delivery.attempt_log.get()
    assert (attempt.number, attempt.outcome, attempt.http_status) == (1, "sent", 200)
    assert '"message_id": "m.1"' in attempt.response_excerpt
    assert attempt.request_summary == f"POST /{delivery.account.page_id}/messages"


def test_private_reply_goes_to_the_comment(mocked_graph):
    delivery = private_reply(payload={"text": "Here is the guide"})
    answer(mocked_graph, delivery.account)

    send(delivery)

    assert json.loads(mocked_graph.calls[0].request.body) == {
        "recipient": {"comment_id": delivery.comment_id},
        "message": {"text": "Here is the guide"},
    }


def test_usage_headers_update_the_accounts_usage(mocked_graph):
    delivery = private_reply()
    answer(
        mocked_graph,
        delivery.account,
        headers={
            "X-App-Usage": json.dumps({"call_count": 82, "total_cputime": 10, "total_time": 5})
        },
    )

    send(delivery)

    account = InstagramAccount.objects.get(pk=delivery.account_id)
    assert account.usage_percent == 82
    assert account.paused_until is None


def test_a_finished_send_paces_the_next_waiting_one_of_its_account(
    mocked_graph, pacer_runs, monkeypatch
):
    delivery = private_reply()
    waiting = private_reply(account=delivery.account)
    dispatched = TaskRecorder()
    monkeypatch.setattr(messaging.tasks, "send_delivery", dispatched)
    # A fresh budget (Redis outlives the test database, whose ids start over).
    state = shared_state()
    if isinstance(state, RedisState):
        for budget in ("send", "private_reply"):
            state.client.delete(f"budget:{delivery.account_id}:{budget}")
    answer(mocked_graph, delivery.account)

    send(delivery)

    waiting.refresh_from_db()
    assert waiting.dispatched_at is not None
    assert dispatched.ids == [waiting.pk]


def test_a_finished_send_with_nothing_waiting_queues_no_pacer_run(mocked_graph, pacer_runs):
    delivery = private_reply()
    shared_state().flag_clear(f"pacer:{delivery.account_id}")
    answer(mocked_graph, delivery.account)

    send(delivery)

    assert pacer_runs.calls == []


# --- transient errors: retried with backoff, bounded by attempts and the window -------------------
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, meta_error(2, message="An unexpected error has occurred.", is_transient=True)),
        (503, {}),
    ],
    ids=["graph-error", "bare-503"],
)
def test_transient_error_queues_the_delivery_again_with_backoff(mocked_graph, status, body):
    delivery = private_reply()
    answer(mocked_graph, delivery.account, status=status, body=body)
    before = timezone.now()

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.attempts == 1
    assert delivery.dispatched_at is None
    # The first retry waits RETRY_BASE_SECONDS (2 s), give or take half of it for jitter.
    assert before + timedelta(seconds=1) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= timezone.now() + timedelta(seconds=3)
    attempt = delivery.attempt_log.get()
    assert (attempt.outcome, attempt.http_status) == ("failed", status)


def test_transient_errors_fail_after_max_attempts(mocked_graph):
    delivery = private_reply()
    answer(mocked_graph, delivery.account, status=500, body=meta_error(2, is_transient=True))

    for _ in range(services.MAX_ATTEMPTS):
        delivery = send(delivery)

    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.reason == DeliveryReason.META_ERROR
    assert delivery.attempts == services.MAX_ATTEMPTS
    assert delivery.detail.startswith(f"Gave up after {services.MAX_ATTEMPTS} attempts")
    assert delivery.attempt_log.count() == services.MAX_ATTEMPTS
    assert len(mocked_graph.calls) == services.MAX_ATTEMPTS


def test_a_retry_that_would_land_after_the_window_fails_window_expired(mocked_graph):
    almost_7_days_ago = timezone.now() - timedelta(days=7) + timedelta(seconds=1)
    delivery = private_reply(interaction_at=almost_7_days_ago)
    # Near the edge the comment's own time is read first (it agrees with the webhook here).
    mocked_graph.get(
        f"{GRAPH}/{delivery.comment_id}",
        json={"id": delivery.comment_id, "timestamp": almost_7_days_ago.isoformat()},
    )
    answer(mocked_graph, delivery.account, status=500, body=meta_error(2, is_transient=True))

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.reason == DeliveryReason.WINDOW_EXPIRED
    assert "would fall after the window closes" in delivery.detail
    assert [call.request.method for call in mocked_graph.calls] == ["GET", "POST"]


def test_connection_refused_is_retried(mocked_graph):
    delivery = private_reply()
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    fail_with(mocked_graph, delivery.account, requests.exceptions.ConnectionError(refused))

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.next_attempt_at > timezone.now()
    assert delivery.attempt_log.get().outcome == "failed"


# --- unknown outcome: never retried ---------------------------------------------------------------
def test_read_timeout_is_unknown_and_not_retried(mocked_graph, settings):
    settings.UNKNOWN_MAX_CHECKS = 0  # Meta is never asked (messaging/resolve.py)
    delivery = private_reply()
    fail_with(mocked_graph, delivery.account, requests.exceptions.ReadTimeout("Read timed out."))

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.UNKNOWN
    assert delivery.next_attempt_at is None
    assert "not retried" in delivery.detail
    assert delivery.attempt_log.get().outcome == "unknown"


def test_read_timeout_is_unknown_and_meta_is_asked_later(mocked_graph, settings):
    settings.UNKNOWN_CHECK_AFTER_SECONDS = 30.0
    delivery = private_reply()
    fail_with(mocked_graph, delivery.account, requests.exceptions.ReadTimeout("Read timed out."))

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.UNKNOWN
    # Not sent again blindly: a check with Meta is due once Meta has had time to finish.
    assert delivery.next_attempt_at == delivery.call_started_at + timedelta(seconds=30)
    assert "not retried blindly: Meta is asked" in delivery.detail
    assert len(mocked_graph.calls) == 1


def test_an_unknown_delivery_is_not_sent_again(mocked_graph):
    delivery = private_reply()
    fail_with(mocked_graph, delivery.account, requests.exceptions.ReadTimeout("Read timed out."))
    send(delivery)

    assert services.delivery_send(delivery_id=delivery.pk) is None
    assert len(mocked_graph.calls) == 1


# --- throttling: the account pauses, the delivery waits for it ------------------------------------
@pytest.mark.parametrize("code", [613, 80002])
def test_throttle_pauses_the_account_and_requeues_at_the_stated_time(mocked_graph, code):
    delivery = private_reply()
    account = delivery.account
    answer(
        mocked_graph,
        account,
        status=400,
        body=meta_error(code, message="(#613) Calls to this api have exceeded the rate limit."),
        headers=buc_usage(account, percent=100, regain_minutes=5),
    )
    before = timezone.now()

    delivery = send(delivery)

    account.refresh_from_db()
    five_minutes = timedelta(minutes=5)
    assert within(account.paused_until, before + five_minutes, timezone.now() + five_minutes)
    assert account.usage_percent == 100
    assert delivery.status == DeliveryStatus.QUEUED
    assert abs(delivery.next_attempt_at - account.paused_until) < timedelta(seconds=2)
    assert delivery.meta_code == code


def test_throttle_without_a_stated_wait_pauses_for_the_default(mocked_graph, settings):
    delivery = private_reply()
    answer(mocked_graph, delivery.account, status=400, body=meta_error(4))
    before = timezone.now()

    delivery = send(delivery)

    account = InstagramAccount.objects.get(pk=delivery.account_id)
    pause = timedelta(seconds=settings.RATE_LIMIT_PAUSE_SECONDS)
    assert within(account.paused_until, before + pause, timezone.now() + pause)
    assert "rate-limited" in account.pause_reason


def test_throttle_on_the_last_attempt_fails_rate_limited(mocked_graph):
    delivery = private_reply(attempts=services.MAX_ATTEMPTS - 1)
    answer(mocked_graph, delivery.account, status=400, body=meta_error(613))

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.reason == DeliveryReason.RATE_LIMITED


def test_a_delivery_dispatched_before_a_pause_does_not_call_meta_during_it(mocked_graph):
    account = InstagramAccountFactory(paused_until=timezone.now() + timedelta(minutes=5))
    delivery = private_reply(account, dispatched_at=timezone.now() - timedelta(seconds=1))
    answer(mocked_graph, account)

    delivery = send(delivery)

    assert len(mocked_graph.calls) == 0
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.next_attempt_at == account.paused_until


def test_the_budget_is_taken_right_before_the_call_and_a_spent_one_waits(mocked_graph, settings):
    settings.SEND_LIMIT_PER_SECOND = 1  # one send per 1.03 s
    first = private_reply()
    second = private_reply(first.account)
    state = shared_state()
    if isinstance(state, RedisState):
        for budget in ("send", "private_reply"):
            state.client.delete(f"budget:{first.account_id}:{budget}")
    answer(mocked_graph, first.account)

    first = send(first)
    second = send(second)

    assert first.status == DeliveryStatus.SENT
    assert len(mocked_graph.calls) == 1
    assert second.status == DeliveryStatus.QUEUED
    assert second.attempts == 0
    assert second.dispatched_at is None
    assert timezone.now() < second.next_attempt_at <= timezone.now() + timedelta(seconds=1.04)


def test_a_send_a_moment_early_for_its_place_waits_for_it_and_sends(mocked_graph, settings):
    settings.SEND_LIMIT_PER_SECOND = 1
    delivery = private_reply()
    state = shared_state()
    if isinstance(state, RedisState):
        for budget in ("send", "private_reply"):
            state.client.delete(f"budget:{delivery.account_id}:{budget}")
    budgets = budgets_for(delivery.account, delivery.kind)
    # The one place per 1.03 s frees 20 ms from now.
    assert state.try_acquire(budgets, now=time.time() - 1 / HEADROOM + 0.02) == 0
    answer(mocked_graph, delivery.account)

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.SENT
    assert len(mocked_graph.calls) == 1


def test_usage_headers_never_shorten_a_longer_pause(mocked_graph):
    delivery = private_reply()
    account = delivery.account
    policy_pause_ends = timezone.now() + timedelta(hours=1)

    def meta_answers_while_another_worker_pauses_the_account(request):
        # Another send of the account got code 368 while this request was on its way.
        InstagramAccount.objects.filter(pk=account.pk).update(paused_until=policy_pause_ends)
        body = {"recipient_id": "848067418322071", "message_id": "m.1"}
        return 200, buc_usage(account, percent=60, regain_minutes=1), json.dumps(body)

    mocked_graph.add_callback(
        "POST", messages_url(account), callback=meta_answers_while_another_worker_pauses_the_account
    )

    send(delivery)

    account.refresh_from_db()
    assert account.paused_until >= policy_pause_ends


# --- token and permission errors: the account needs reconnecting, its sends are held --------------
def test_token_error_marks_the_account_and_holds_the_delivery(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    delivery = private_reply(account)
    answer(
        mocked_graph,
        account,
        status=400,
        body=meta_error(190, 463, "Error validating access token: Session has expired."),
    )

    delivery = send(delivery)

    account.refresh_from_db()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.reconnect_reason == DeliveryReason.TOKEN_INVALID
    assert account.status_reason.startswith("Reconnect @acme.studio:")
    assert "Session has expired" in account.status_reason
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.held_since is not None
    assert delivery.next_attempt_at is None
    assert delivery.meta_code == 190
    assert len(mocked_graph.calls) == 1


def test_permission_error_without_subcode_fails_only_this_delivery(mocked_graph):
    # meta-api.md 6, "Whose problem is a refusal?": code 10 naming no permission may be about
    # this one person; one such refusal never holds the whole account.
    delivery = private_reply()
    answer(
        mocked_graph,
        delivery.account,
        status=403,
        body=meta_error(10, message="(#10) Application does not have permission for this action"),
    )

    delivery = send(delivery)

    account = InstagramAccount.objects.get(pk=delivery.account_id)
    assert account.status == AccountStatus.ACTIVE
    assert (delivery.status, delivery.reason) == (
        DeliveryStatus.FAILED,
        DeliveryReason.PERMISSION_MISSING,
    )
    assert "Application does not have permission" in delivery.detail
    assert len(account.refusal_streak) == 1


def test_the_next_delivery_of_that_account_is_held_without_calling_meta(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    first, second = private_reply(account), private_reply(account)
    answer(mocked_graph, account, status=400, body=meta_error(190, message="Token expired."))
    send(first)

    second = send(second)

    assert second.status == DeliveryStatus.QUEUED
    assert second.held_since is not None
    assert "Held until @acme.studio is reconnected" in second.detail
    assert len(mocked_graph.calls) == 1


def _hold_two(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    first, second = private_reply(account), private_reply(account)
    answer(mocked_graph, account, status=400, body=meta_error(190, message="Token expired."))
    send(first)
    send(second)
    return account, first, second


def test_account_connect_releases_held_deliveries(mocked_graph, django_capture_on_commit_callbacks):
    account, first, second = _hold_two(mocked_graph)

    with django_capture_on_commit_callbacks(execute=True):
        account_connect(
            workspace_name=account.workspace.name,
            ig_user_id=account.ig_user_id,
            username=account.username,
            access_token="fresh-token",
            page_id=account.page_id,
        )

    for delivery in (first, second):
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.QUEUED
        assert delivery.held_since is None


def test_connect_account_command_releases_held_deliveries(
    mocked_graph, django_capture_on_commit_callbacks
):
    account, first, _ = _hold_two(mocked_graph)

    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "connect_account",
            "--workspace", account.workspace.name,
            "--ig-user-id", account.ig_user_id,
            "--username", account.username,
            "--access-token", "fresh-token",
            "--page-id", account.page_id,
        )  # fmt: skip

    first.refresh_from_db()
    assert first.held_since is None


def test_a_released_delivery_is_sent_with_the_new_token(
    mocked_graph, django_capture_on_commit_callbacks
):
    account, first, _ = _hold_two(mocked_graph)
    with django_capture_on_commit_callbacks(execute=True):
        account_connect(
            workspace_name=account.workspace.name,
            ig_user_id=account.ig_user_id,
            username=account.username,
            access_token="fresh-token",
            page_id=account.page_id,
        )
    answer(mocked_graph, account)

    first = send(first)

    assert first.status == DeliveryStatus.SENT
    assert mocked_graph.calls[-1].request.headers["Authorization"] == "Bearer fresh-token"


# --- refusals that end the delivery ---------------------------------------------------------------
def test_conversation_closed_fails_and_marks_the_contact(mocked_graph):
    contact = ContactFactory(last_interaction_at=timezone.now() - timedelta(hours=1))
    delivery = message(contact)
    answer(
        mocked_graph,
        contact.account,
        status=400,
        body=meta_error(551, message="This person isn't available right now."),
    )

    delivery = send(delivery)

    contact.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.reason == DeliveryReason.CONVERSATION_CLOSED
    assert contact.conversation_closed_at is not None
    assert "isn't available" in contact.conversation_closed_reason


def _closed_contact(mocked_graph):
    contact = ContactFactory(last_interaction_at=timezone.now() - timedelta(hours=1))
    answer(mocked_graph, contact.account, status=400, body=meta_error(551))
    send(message(contact))
    return contact


def test_the_next_message_to_a_closed_conversation_is_skipped_without_calling_meta(mocked_graph):
    contact = _closed_contact(mocked_graph)

    delivery = send(message(contact))

    assert delivery.status == DeliveryStatus.SKIPPED
    assert delivery.reason == DeliveryReason.CONVERSATION_CLOSED
    assert len(mocked_graph.calls) == 1


def test_a_closed_conversation_opens_again_when_the_person_writes(mocked_graph):
    contact = _closed_contact(mocked_graph)
    contact_record_inbound(
        account=contact.account, igsid=contact.igsid, interacted_at=timezone.now()
    )
    answer(mocked_graph, contact.account)

    delivery = send(message(contact))

    assert delivery.status == DeliveryStatus.SENT
    assert len(mocked_graph.calls) == 2


def test_policy_block_fails_content_rejected_and_pauses_the_account(mocked_graph):
    delivery = private_reply()
    answer(
        mocked_graph,
        delivery.account,
        status=400,
        body=meta_error(368, message="The action attempted has been deemed abusive."),
    )
    before = timezone.now()

    delivery = send(delivery)

    account = InstagramAccount.objects.get(pk=delivery.account_id)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.reason == DeliveryReason.CONTENT_REJECTED
    pause = services.POLICY_PAUSE
    assert within(account.paused_until, before + pause, timezone.now() + pause)
    assert "policy" in account.pause_reason


def test_private_reply_already_used_fails_already_replied(mocked_graph):
    delivery = private_reply()
    answer(mocked_graph, delivery.account, status=400, body=meta_error(10, 2534025))

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.reason == DeliveryReason.ALREADY_REPLIED
    assert delivery.meta_subcode == 2534025
    assert delivery.meta_trace_id == "AtRace1"
    assert len(mocked_graph.calls) == 1


# --- claiming: one worker sends ------------------------------------------------------------------
def test_a_delivery_sent_twice_calls_meta_once(mocked_graph):
    delivery = private_reply()
    answer(mocked_graph, delivery.account)
    Delivery.objects.filter(pk=delivery.pk).update(dispatched_at=timezone.now())

    services.delivery_send(delivery_id=delivery.pk)
    second = services.delivery_send(delivery_id=delivery.pk)

    assert second is None
    assert len(mocked_graph.calls) == 1
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1


def test_a_delivery_another_worker_is_sending_is_left_alone(mocked_graph):
    delivery = private_reply(status=DeliveryStatus.SENDING)
    answer(mocked_graph, delivery.account)

    assert services.delivery_send(delivery_id=delivery.pk) is None
    assert len(mocked_graph.calls) == 0


def test_a_duplicate_send_task_does_not_send_a_delivery_waiting_to_retry(mocked_graph):
    delivery = private_reply()
    answer(mocked_graph, delivery.account, status=500, body=meta_error(2, is_transient=True))
    answer(mocked_graph, delivery.account)

    services.delivery_send(delivery_id=delivery.pk)
    delivery = send(delivery)  # the duplicate task of the same dispatch

    assert len(mocked_graph.calls) == 1
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.next_attempt_at > timezone.now()


# --- recovering a send whose worker died ----------------------------------------------------------
def test_recovering_a_send_with_a_request_in_flight_marks_it_unknown():
    delivery = private_reply(status=DeliveryStatus.SENDING, attempts=1)
    attempt = DeliveryAttempt.objects.create(delivery=delivery, number=1, outcome="in_flight")

    assert services.delivery_recover(delivery_id=delivery.pk) == DeliveryStatus.UNKNOWN

    delivery.refresh_from_db()
    attempt.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNKNOWN
    assert delivery.finished_at is not None
    assert attempt.outcome == "lost"


def test_recovering_a_send_that_never_called_meta_queues_it_again():
    delivery = private_reply(
        status=DeliveryStatus.SENDING, attempts=1, dispatched_at=timezone.now()
    )

    assert services.delivery_recover(delivery_id=delivery.pk) == DeliveryStatus.QUEUED

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.dispatched_at is None


def test_recovering_a_finished_delivery_changes_nothing():
    delivery = private_reply(status=DeliveryStatus.SENT)

    assert services.delivery_recover(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT


def test_a_worker_whose_claim_the_sweeper_settled_never_calls_meta(mocked_graph, monkeypatch):
    delivery = private_reply(dispatched_at=timezone.now())
    answer(mocked_graph, delivery.account)
    checklist = services.run_checklist

    def slow_checks_meanwhile_the_sweeper_takes_the_send_back(claimed, now):
        assert services.delivery_recover(delivery_id=claimed.pk) == DeliveryStatus.QUEUED
        return checklist(claimed, now)

    monkeypatch.setattr(
        services, "run_checklist", slow_checks_meanwhile_the_sweeper_takes_the_send_back
    )
    monkeypatch.setattr(messaging.tasks, "send_delivery", TaskRecorder())  # no re-dispatch here

    services.delivery_send(delivery_id=delivery.pk)

    assert len(mocked_graph.calls) == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.QUEUED, 0)
    assert not DeliveryAttempt.objects.filter(delivery=delivery).exists()


# --- the lease a sending worker holds (issue 12: recovery in seconds) ----------------------------
@pytest.mark.django_db(transaction=True)
def test_the_sending_worker_renews_its_lease_while_meta_is_slow(mocked_graph, settings):
    settings.SEND_LEASE_SECONDS = 0.6
    delivery = private_reply()
    seen = {}

    def slow_meta(request):
        claimed = Delivery.objects.get(pk=delivery.pk).lease_expires_at
        time.sleep(0.8)  # longer than the lease: only renewals keep it valid
        seen.update(
            claimed=claimed,
            renewed=Delivery.objects.get(pk=delivery.pk).lease_expires_at,
            now=timezone.now(),
        )
        return 200, {}, json.dumps({"recipient_id": "848067418322071", "message_id": "m.1"})

    mocked_graph.add_callback("POST", messages_url(delivery.account), callback=slow_meta)

    delivery = send(delivery)

    assert delivery.status == DeliveryStatus.SENT
    assert seen["renewed"] > seen["claimed"]
    assert seen["renewed"] > seen["now"]  # a sweep at the end of the call finds it alive


# --- an unknown private reply is repeated: Meta's "already replied" proves the first went out ----
def unknown_private_reply(mocked_graph):
    delivery = private_reply()
    fail_with(mocked_graph, delivery.account, requests.exceptions.ReadTimeout("Read timed out."))
    delivery = send(delivery)
    assert delivery.status == DeliveryStatus.UNKNOWN
    mocked_graph.reset()
    return delivery


def check_now(delivery):
    from messaging import resolve

    assert resolve.delivery_resolve(delivery_id=delivery.pk) == "repeat queued"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED
    return send(delivery)


def test_a_repeat_refused_as_already_replied_proves_the_first_went_out(mocked_graph):
    delivery = unknown_private_reply(mocked_graph)
    answer(
        mocked_graph,
        delivery.account,
        status=400,
        body=meta_error(10, 2534025, message="(#10) This comment's private reply was already used"),
    )

    delivery = check_now(delivery)

    assert delivery.status == DeliveryStatus.SENT
    assert delivery.reason == ""
    assert "already replied" in delivery.detail and "10/2534025" in delivery.detail
    first, repeat = delivery.attempt_log.order_by("number")
    assert (first.outcome, repeat.outcome) == ("unknown", "confirmed")
    # The evidence is Meta's own answer, kept on the repeat's attempt.
    assert (repeat.meta_code, repeat.meta_subcode) == (10, 2534025)
    assert "already used" in repeat.response_excerpt
    assert delivery.sent_at == first.started_at


def test_a_repeat_that_goes_out_means_the_first_never_did(mocked_graph):
    delivery = unknown_private_reply(mocked_graph)
    answer(mocked_graph, delivery.account)

    delivery = check_now(delivery)

    assert delivery.status == DeliveryStatus.SENT
    assert delivery.meta_response_id == "m.1"
    assert [a.outcome for a in delivery.attempt_log.order_by("number")] == ["unknown", "sent"]


def test_a_repeat_that_times_out_again_stays_unknown_with_a_later_check(mocked_graph):
    delivery = unknown_private_reply(mocked_graph)
    fail_with(mocked_graph, delivery.account, requests.exceptions.ReadTimeout("Read timed out."))

    delivery = check_now(delivery)

    assert delivery.status == DeliveryStatus.UNKNOWN
    assert delivery.resolution_checks == 1
    assert delivery.next_attempt_at > timezone.now()


def test_a_repeat_refused_otherwise_cannot_tell_and_stays_unknown(mocked_graph):
    delivery = unknown_private_reply(mocked_graph)
    answer(mocked_graph, delivery.account, status=400, body=meta_error(551, message="(#551) gone"))

    delivery = check_now(delivery)

    # The first may still have gone out: never recorded as failed on a guess.
    assert delivery.status == DeliveryStatus.UNKNOWN
    assert "could not tell" in delivery.detail


def test_a_repeat_the_checklist_stops_stays_unknown(mocked_graph):
    delivery = unknown_private_reply(mocked_graph)
    Delivery.objects.filter(pk=delivery.pk).update(
        interaction_at=timezone.now() - timedelta(days=8)
    )

    delivery = check_now(delivery)

    assert delivery.status == DeliveryStatus.UNKNOWN
    assert "could not be checked" in delivery.detail
    assert len(mocked_graph.calls) == 0


def test_a_repeat_held_for_a_reconnect_is_checked_again_later(mocked_graph):
    delivery = unknown_private_reply(mocked_graph)
    InstagramAccount.objects.filter(pk=delivery.account_id).update(
        status=AccountStatus.NEEDS_RECONNECT
    )

    delivery = check_now(delivery)

    assert delivery.status == DeliveryStatus.UNKNOWN
    assert delivery.next_attempt_at is not None  # asked again once the account may send
    assert len(mocked_graph.calls) == 0
