"""Events of accounts with an enabled intent trigger are processed on the `intent` queue."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.sharedstate import RedisState, shared_state
from tests.factories import InstagramAccountFactory, TriggerFactory, WebhookEventFactory
from triggers.models import MatchMode, Trigger
from triggers.selectors import intent_account_ids, intent_account_ids_forget
from webhooks import services
from webhooks.tasks import process_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_routing():
    intent_account_ids_forget()
    yield
    intent_account_ids_forget()


def intent_trigger(account, **kwargs) -> Trigger:
    return TriggerFactory(
        account=account, match=MatchMode.INTENT, keywords=[], examples=["price"], **kwargs
    )


def test_an_account_with_an_intent_trigger_routes_to_intent_and_others_to_events():
    uses_intent = InstagramAccountFactory(ig_alt_id="alt-1")
    plain = InstagramAccountFactory()
    intent_trigger(uses_intent)
    TriggerFactory(account=plain)
    assert services.intake_queue_for([uses_intent.ig_user_id]) == "intent"
    assert services.intake_queue_for(["alt-1"]) == "intent"  # either id Meta names it by
    assert services.intake_queue_for([plain.ig_user_id]) == "events"
    # A body batching both goes where the one that needs the model can be answered.
    assert services.intake_queue_for([plain.ig_user_id, uses_intent.ig_user_id]) == "intent"
    assert services.intake_queue_for([]) == "events"


def test_a_disabled_intent_trigger_does_not_route_to_intent():
    account = InstagramAccountFactory()
    intent_trigger(account, enabled=False)
    assert services.intake_queue_for([account.ig_user_id]) == "events"


def test_the_lookup_is_cached_and_notices_a_trigger_saved_in_this_process():
    account = InstagramAccountFactory()
    trigger = TriggerFactory(account=account)
    assert services.intake_queue_for([account.ig_user_id]) == "events"
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert account.ig_user_id not in intent_account_ids()
    assert len(queries) == 0  # no query per webhook
    trigger.match = MatchMode.INTENT
    trigger.examples = ["price"]
    trigger.save()  # a marketer switches it to intent
    assert services.intake_queue_for([account.ig_user_id]) == "intent"
    trigger.delete()
    assert services.intake_queue_for([account.ig_user_id]) == "events"


def test_a_change_made_elsewhere_is_seen_after_the_refresh_interval(settings):
    account = InstagramAccountFactory()
    trigger = TriggerFactory(account=account)
    assert intent_account_ids() == frozenset()
    # Another process (or a bulk update, which sends no signal) switches it to intent.
    Trigger.objects.filter(pk=trigger.pk).update(match=MatchMode.INTENT)
    assert services.intake_queue_for([account.ig_user_id]) == "events"  # still cached
    settings.INTENT_ROUTING_REFRESH_SECONDS = 0
    assert services.intake_queue_for([account.ig_user_id]) == "intent"


def test_a_flooded_account_needing_intent_stays_on_intent_and_others_go_to_bulk(settings):
    if not isinstance(shared_state(), RedisState):
        pytest.skip("flood detection needs Redis (REDIS_URL)")
    settings.HOT_ACCOUNT_EVENTS_PER_WINDOW = 2
    uses_intent, plain = InstagramAccountFactory(), InstagramAccountFactory()
    intent_trigger(uses_intent)
    for account in (uses_intent, plain):
        shared_state().client.delete(f"count:intake:{account.ig_user_id}")
    assert [services.intake_queue_for([plain.ig_user_id]) for _ in range(4)][-1] == "events_bulk"
    assert {services.intake_queue_for([uses_intent.ig_user_id]) for _ in range(4)} == {"intent"}


def test_the_lookup_failing_falls_back_to_the_usual_routing(monkeypatch):
    def broken():
        raise ConnectionError("database away")

    monkeypatch.setattr(services, "intent_account_ids", broken)
    assert services.intake_queue_for(["17841400000000001"]) == "events"


def _queued(monkeypatch) -> list[tuple[int, str]]:
    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(
        process_event, "apply_async", lambda args, queue, **_: sent.append((args[0], queue))
    )
    return sent


def test_received_and_requeued_events_follow_the_routing(monkeypatch):
    account = InstagramAccountFactory()
    intent_trigger(account)
    sent = _queued(monkeypatch)
    services.webhook_event_schedule(event_id=1, account_ids=[account.ig_user_id])
    assert sent == [(1, "intent")]
    # beat's sweeper re-queues a pending event through the same function.
    event = WebhookEventFactory(account_ids=[account.ig_user_id])
    sent.clear()
    monkeypatch.setattr(services, "intake_backlog", lambda: None)
    assert services.webhook_events_requeue_pending(older_than_seconds=0) == 1
    assert sent == [(event.pk, "intent")]


@pytest.mark.filterwarnings("ignore:task_always_eager has no effect on send_task")
def test_the_sweepers_backlog_counts_the_intent_queue(settings):
    # The sweeper re-queues only what the queues do not hold: a backlog of intent accounts'
    # events must count, or each sweep would queue them all again.
    from config.celery import app

    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("needs a broker that counts messages (Redis)")
    before = services.intake_backlog()
    app.send_task("webhooks.process_event", (0,), queue="intent")
    try:
        assert services.intake_backlog() == before + 1
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge("intent")
