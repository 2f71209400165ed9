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
