"""No call to Meta while a transaction or row lock is held, on the hot paths.

Processing an event holds the event's row lock; a Graph call made there (up to 10 s) would
hold it, and every worker waiting on it, for as long. These tests run processing, sending,
flows, the sweepers and token upkeep for real (transactions committed, on-commit work run as
it happens) with the guard of tests/network_guard.py on the one HTTP session every call to
Meta uses. The last test is the grep: no network function is called lexically inside
``transaction.atomic``.
"""

import ast
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from accounts import tokens
from messaging import services as messaging_services
from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from meta import samples
from meta.client import GraphClient
from tests.conftest import GRAPH
from tests.factories import (
    ContactFactory,
    DeliveryFactory,
    InstagramAccountFactory,
    InstagramLoginAccountFactory,
    TriggerFactory,
)
from tests.network_guard import NetworkCallInTransaction
from triggers import flows
from triggers.models import FlowRun, FlowStatus, MediaPublishTime, Trigger
from webhooks import services as webhook_services
from webhooks.models import EventState, WebhookEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_network_in_transactions"),
]

PERSON = "1789000000000001"
POST = "18000000000000042"


@pytest.fixture
def account():
    return InstagramAccountFactory()


@pytest.fixture
def meta(mocked_graph, account):
    """Meta accepting every send."""
    mocked_graph.add(
        "POST",
        re.compile(rf"{GRAPH}/\d+/messages"),
        json={"recipient_id": PERSON, "message_id": "m.ok"},
    )
    mocked_graph.add("POST", re.compile(rf"{GRAPH}/\d+/replies"), json={"id": "17900000000000001"})
    return mocked_graph


def receive(body: dict) -> WebhookEvent:
    """The webhook view's intake; outside a transaction, processing runs as committed work."""
    event = webhook_services.webhook_event_receive(raw_body=json.dumps(body).encode()).event
    event.refresh_from_db()
    return event


def test_the_guard_fails_a_call_made_inside_a_transaction(no_network_in_transactions):
    client = GraphClient(GRAPH, "token")
    with pytest.raises(NetworkCallInTransaction), transaction.atomic():
        client.get("/me")
    assert len(no_network_in_transactions) == 1
    no_network_in_transactions.clear()  # caught on purpose here


def test_a_comment_under_a_next_post_trigger_reads_the_post_once_outside_the_lock(account, meta):
    trigger = TriggerFactory(account=account, keywords=["guide"], extra={"scope": "next_post"})
    published = trigger.updated_at + timedelta(minutes=5)
    meta.get(
        f"{GRAPH}/{POST}",
        json={"id": POST, "timestamp": published.strftime("%Y-%m-%dT%H:%M:%S+0000")},
    )
    first = receive(
        samples.comment_body(account_id=account.ig_user_id, text="guide", media_id=POST)
    )
    assert first.state == EventState.PROCESSED, first.result
    trigger.refresh_from_db()
    assert trigger.media_ids == [POST]
    assert MediaPublishTime.objects.get(media_id=POST).published_at == published.replace(
        microsecond=0
    )
    reads = [call for call in meta.calls if call.request.method == "GET"]
    assert len(reads) == 1
    sent = Delivery.objects.filter(status=DeliveryStatus.SENT)
    assert {d.kind for d in sent} == {DeliveryKind.PUBLIC_REPLY, DeliveryKind.PRIVATE_REPLY}


def test_comments_on_an_older_post_read_it_once_while_the_trigger_waits(account, meta):
    trigger = TriggerFactory(account=account, keywords=["guide"], extra={"scope": "next_post"})
    published = trigger.updated_at - timedelta(days=3)
    meta.get(
        f"{GRAPH}/{POST}",
        json={"id": POST, "timestamp": published.strftime("%Y-%m-%dT%H:%M:%S+0000")},
    )
    for text in ("guide", "nice", "guide pls"):
        event = receive(
            samples.comment_body(account_id=account.ig_user_id, text=text, media_id=POST)
        )
        assert event.state == EventState.NO_MATCH
    assert len([call for call in meta.calls if call.request.method == "GET"]) == 1
    trigger.refresh_from_db()
    assert trigger.media_ids == []


def test_the_post_read_counts_against_the_accounts_budget(account, meta, settings):
    settings.COMMENT_REPLY_LIMIT_PER_SECOND = 1
    TriggerFactory(account=account, keywords=["guide"], extra={"scope": "next_post"})
    from messaging.pacer import budgets_for
    from messaging.sharedstate import shared_state

    (budget,) = budgets_for(account, DeliveryKind.PUBLIC_REPLY)
    for _ in range(3):  # the budget is spent for a while
        shared_state().try_acquire([budget])
    assert messaging_services.media_published_at(account=account, media_id=POST) is None
    assert not [call for call in meta.calls if call.request.method == "GET"]


def test_a_dm_is_answered_and_sent(account, meta):
    TriggerFactory(
        account=account, event="dm", keywords=["price"], public_replies=[],
        messages=[{"text": "It is 20 EUR"}],
    )  # fmt: skip
    event = receive(
        samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="price?")
    )
    assert event.state == EventState.PROCESSED
    assert Delivery.objects.get().status == DeliveryStatus.SENT


def test_a_follow_gate_checks_outside_the_runs_lock(account, meta):
    TriggerFactory(
        account=account, event="dm", keywords=["link"], public_replies=[],
        messages=[{"text": "Here: https://example.com", "follow_gate": True}],
    )  # fmt: skip
    meta.get(f"{GRAPH}/{PERSON}", json={"is_user_follow_business": True})
    receive(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="link"))
    run = FlowRun.objects.get()
    assert run.status in (FlowStatus.RUNNING, FlowStatus.DONE)
    assert Delivery.objects.get().payload == {"text": "Here: https://example.com"}


def test_the_flow_sweeper_rechecks_follows_outside_any_lock(account, meta):
    trigger = TriggerFactory(
        account=account, event="dm", keywords=["link"], public_replies=[],
        messages=[{"text": "Here: https://example.com", "follow_gate": True}],
    )  # fmt: skip
    contact = ContactFactory(account=account, igsid=PERSON, last_interaction_at=timezone.now())
    run = FlowRun.objects.create(
        account=account, trigger=trigger, contact=contact, origin_key="mid:1",
        segment_key="mid:1", status=FlowStatus.CHECKING_FOLLOW,
    )  # fmt: skip
    FlowRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    meta.get(f"{GRAPH}/{PERSON}", json={"is_user_follow_business": True})
    flows.flows_sweep()
    assert Delivery.objects.filter(trigger=trigger).exists()


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ({"json": {"recipient_id": PERSON, "message_id": "m.1"}}, DeliveryStatus.SENT),
        (
            {"status": 500, "json": {"error": {"code": 2, "is_transient": True}}},
            DeliveryStatus.QUEUED,
        ),
        (
            {"status": 400, "json": {"error": {"code": 190, "message": "Token expired"}}},
            DeliveryStatus.QUEUED,  # held until the account is reconnected
        ),
        (
            {"status": 400, "json": {"error": {"code": 100, "message": "Bad"}}},
            DeliveryStatus.FAILED,
        ),
    ],
)
def test_sending_calls_meta_outside_any_transaction(mocked_graph, account, answer, status):
    mocked_graph.post(f"{GRAPH}/{account.page_id}/messages", **answer)
    delivery = DeliveryFactory(account=account)
    Delivery.objects.filter(pk=delivery.pk).update(dispatched_at=timezone.now())
    messaging_services.delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == status


def test_token_refresh_and_check_call_meta_outside_any_transaction(mocked_graph):
    now = timezone.now()
    account = InstagramLoginAccountFactory(
        token="IGold", token_refreshed_at=now - timedelta(days=51),
        token_expires_at=now + timedelta(days=9),
    )  # fmt: skip
    mocked_graph.get(
        "https://graph-ig.test/refresh_access_token",
        json={"access_token": "IGnew", "expires_in": 5184000},
    )
    assert tokens.account_token_refresh(account_id=account.pk).result == tokens.REFRESHED
    mocked_graph.get(
        "https://graph-ig.test/v24.0/me",
        json={"user_id": account.ig_user_id, "id": account.ig_alt_id, "username": "x"},
    )
    tokens.account_token_check(account_id=account.pk)


# --- The grep: network functions are never called inside `transaction.atomic` ------------------
APP_DIRS = ("accounts", "config", "messaging", "triggers", "webhooks")
# Every way our code reaches Meta (docs/architecture.md, "No network call while a transaction or
# row lock is held"): the Graph client's bridge, the reads built on it, OAuth and subscriptions.
NETWORK_CALLS = {
    "client_for",
    "media_published_at",
    "contact_follows_account",
    "account_subscribe",
    "subscribe_webhooks",
}
# Any function of these modules: meta.oauth, requests, messaging.graph (send, client_for).
NETWORK_MODULES = {"oauth", "requests", "graph"}


def _is_network(owner: str, name: str) -> bool:
    return owner in NETWORK_MODULES or (name in NETWORK_CALLS and owner not in {"self", "cls"})


def _called_name(call: ast.Call) -> tuple[str, str]:
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return owner, func.attr
    if isinstance(func, ast.Name):
        return "", func.id
    return "", ""


def _is_atomic(node: ast.AST) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return isinstance(target, ast.Attribute) and target.attr == "atomic"


def _network_calls_inside_atomic(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        bodies = []
        if isinstance(node, ast.With) and any(_is_atomic(i.context_expr) for i in node.items):
            bodies = node.body
        if isinstance(node, ast.FunctionDef) and any(_is_atomic(d) for d in node.decorator_list):
            bodies = node.body
        for statement in bodies:
            for inner in ast.walk(statement):
                if not isinstance(inner, ast.Call):
                    continue
                owner, name = _called_name(inner)
                if _is_network(owner, name):
                    found.append((inner.lineno, f"{owner}.{name}".lstrip(".")))
    return found


def test_no_network_function_is_called_inside_transaction_atomic():
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in APP_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for line, name in _network_calls_inside_atomic(ast.parse(path.read_text())):
                offenders.append(f"{path.relative_to(root)}:{line} calls {name}")
    assert offenders == []


def test_the_grep_finds_a_call_inside_atomic():
    source = (
        "from django.db import transaction\n"
        "def f(account):\n"
        "    with transaction.atomic():\n"
        "        graph.client_for(account).get('/x')\n"
    )
    assert _network_calls_inside_atomic(ast.parse(source)) == [(4, "graph.client_for")]


def test_processing_trigger_changes_leave_the_cache_consistent(account, meta):
    """A trigger armed after its post's time was cached binds on a later comment."""
    trigger = TriggerFactory(account=account, keywords=["guide"], extra={"scope": "next_post"})
    Trigger.objects.filter(pk=trigger.pk).update(
        extra={"scope": "next_post", "armed_at": (timezone.now() - timedelta(hours=1)).isoformat()}
    )
    MediaPublishTime.objects.create(account=account, media_id=POST, published_at=timezone.now())
    event = receive(
        samples.comment_body(account_id=account.ig_user_id, text="guide", media_id=POST)
    )
    assert event.state == EventState.PROCESSED
    assert not [call for call in meta.calls if call.request.method == "GET"]
