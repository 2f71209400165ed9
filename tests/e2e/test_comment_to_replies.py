"""Signed webhook over HTTP -> live server -> real broker -> real worker -> stand-in over HTTP.

No mocks inside the product: only Meta is replaced, by the local stand-in.
"""

import pytest
import requests

from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from meta.samples import comment_body, signed
from tests.e2e.processes import wait_until
from tests.factories import InstagramAccountFactory, TriggerFactory
from webhooks.models import EventState, WebhookEvent

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _post(live_server, settings, body: dict) -> requests.Response:
    raw, headers = signed(body, settings.META_APP_SECRET)
    return requests.post(
        f"{live_server.url}/webhooks/instagram/", data=raw, headers=headers, timeout=10
    )


def _final_deliveries(count: int) -> list[Delivery]:
    def done():
        rows = list(Delivery.objects.order_by("kind"))
        finished = [row for row in rows if row.status not in ("queued", "sending")]
        return rows if len(rows) >= count and len(finished) == len(rows) else None

    return wait_until(done, 20, f"{count} finished deliveries")


def test_comment_webhook_becomes_public_reply_and_private_dm(
    live_server, settings, worker, standin_control
):
    account = InstagramAccountFactory(username="acme.studio")
    TriggerFactory(
        account=account,
        keywords=["guide"],
        public_replies=["Sent! Check your DMs"],
        messages=[{"text": "Here is the guide: https://example.com/guide"}],
    )
    body = comment_body(
        account_id=account.ig_user_id, text="guide please", comment_id="17867301270523379"
    )

    response = _post(live_server, settings, body)
    assert response.status_code == 200

    private = standin_control.wait_for("private_reply", 1, timeout=20)
    public = standin_control.wait_for("comment_reply", 1, timeout=20)
    assert private[0]["node"] == account.page_id
    assert private[0]["body"] == {
        "recipient": {"comment_id": "17867301270523379"},
        "message": {"text": "Here is the guide: https://example.com/guide"},
    }
    assert public[0]["node"] == "17867301270523379"
    assert public[0]["body"]["message"] == "Sent! Check your DMs"

    deliveries = _final_deliveries(2)
    by_kind = {delivery.kind: delivery for delivery in deliveries}
    assert by_kind[DeliveryKind.PRIVATE_REPLY].status == DeliveryStatus.SENT
    assert (
        by_kind[DeliveryKind.PRIVATE_REPLY].meta_response_id == private[0]["response"]["message_id"]
    )
    assert by_kind[DeliveryKind.PUBLIC_REPLY].status == DeliveryStatus.SENT
    assert by_kind[DeliveryKind.PUBLIC_REPLY].meta_response_id == public[0]["response"]["id"]
    assert WebhookEvent.objects.get().state == EventState.PROCESSED


def test_redelivered_comment_is_sent_once(live_server, settings, worker, standin_control):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"])
    body = comment_body(account_id=account.ig_user_id, text="GUIDE", comment_id="900001")
    # Meta redelivers the same bytes, and may batch the same comment with other updates.
    rebatched = dict(
        body, entry=[*body["entry"], comment_body(account_id="1", text="x")["entry"][0]]
    )

    for payload in (body, body, rebatched):
        assert _post(live_server, settings, payload).status_code == 200

    wait_until(
        lambda: (
            WebhookEvent.objects.filter(state=EventState.PENDING).count() == 0
            and WebhookEvent.objects.count() == 2
        ),
        20,
        "both stored events to be processed",
    )
    _final_deliveries(2)
    assert len(standin_control.requests(endpoint="private_reply")) == 1
    assert len(standin_control.requests(endpoint="comment_reply")) == 1
    assert Delivery.objects.count() == 2


def test_meta_refusal_is_recorded_with_its_reason(live_server, settings, worker, standin_control):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"], public_replies=[])
    standin_control.add_fault(
        "private_reply",
        status=400,
        error={
            "code": 10,
            "error_subcode": 2534022,
            "message": "(#10) This message is sent outside of allowed window.",
        },
    )
    assert (
        _post(
            live_server, settings, comment_body(account_id=account.ig_user_id, text="guide")
        ).status_code
        == 200
    )

    (delivery,) = _final_deliveries(1)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.reason == "window_expired"
    assert (delivery.meta_code, delivery.meta_subcode) == (10, 2534022)
    assert delivery.meta_trace_id


def test_comment_through_the_outbox_relay_gets_its_private_reply(tmp_path):
    """The product as deployed on PostgreSQL (WEBHOOK_DISPATCH=relay, its default): gunicorn
    only stores the event, the relay thread of the worker or of beat publishes it, and the
    private reply reaches Meta once."""
    from tests.e2e.stack import Database, RedisServer, Stack, manage, stack_env

    redis_server = RedisServer(tmp_path)  # a private one: nobody else's tasks, nobody else's
    database = Database(prefix="instadm_relay_e2e")
    stack = None
    try:
        redis_server.start()
        manage(
            stack_env(
                database_url=database.url,
                broker_url="memory://",
                redis_url="",
                var_dir=tmp_path / "migrate",
                standin_url="http://127.0.0.1:9",
            ),
            "migrate",
            "--noinput",
            "-v0",
        )
        stack = Stack(
            database,
            tmp_path,
            broker_url=f"{redis_server.url}/0",
            redis_url=f"{redis_server.url}/1",
        ).start()
        account = stack.connect_account("relay.e2e")
        comments = stack.comments(account, 3)
        assert [post.status for post in stack.post_all(comments)] == [200, 200, 200]
        rows = stack.wait_settled([account], expected=6, timeout=60)
        assert {(row["kind"], row["status"]) for row in rows} == {
            ("private_reply", "sent"),
            ("public_reply", "sent"),
        }, stack.report()
        handed_over = database.rows(
            "SELECT count(*) AS n FROM webhooks_webhookevent WHERE dispatched_at IS NOT NULL"
        )
        assert handed_over == [{"n": 3}], stack.report()
        # One relay active (the worker's or beat's), the other standing by.
        logs = stack.processes["worker"].output() + stack.processes["beat"].output()
        assert logs.count("is the active relay") == 1, stack.report()
        assert "another relay is active; standing by" in logs, stack.report()
        stack.assert_nobody_messaged_twice()
    finally:
        if stack is not None:
            stack.stop()
        redis_server.stop()
        database.drop()
