"""Tracked links: unguessable tokens, redirects only to the stored URL, clicks counted after the
person has been sent on, per delivery, switchable per workspace."""

import base64

import pytest
from django.test import Client

from messaging import links
from messaging.models import DeliveryKind, LinkClick
from meta import messages as meta_messages
from tests.factories import DeliveryFactory, TriggerFactory

pytestmark = pytest.mark.django_db
BUTTONS = meta_messages.button_message(
    "Here it is",
    [
        meta_messages.LinkButton("Open the guide", "https://example.com/guide"),
        meta_messages.Choice("More", "flow:1:more"),
        meta_messages.LinkButton("Shop", "https://shop.example.com/"),
    ],
)


@pytest.fixture
def delivery():
    trigger = TriggerFactory()
    return DeliveryFactory(
        account=trigger.account, trigger=trigger, kind=DeliveryKind.MESSAGE, payload=BUTTONS
    )


@pytest.fixture
def tracking(settings):
    settings.PUBLIC_BASE_URL = "https://dm.example.com/"
    return settings


def test_a_token_names_its_delivery_and_link_and_cannot_be_altered():
    token = links.link_token(1234, 1)
    assert links.parse_link_token(token) == (1234, 1)
    assert len(token) < 30
    # Another delivery's id with this token's seal: refused.
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[8] ^= 1
    altered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert links.parse_link_token(altered) is None
    assert links.parse_link_token("not-a-token") is None


def test_link_buttons_go_through_the_app_when_tracking_is_on(delivery, tracking):
    sent = links.payload_to_send(delivery)
    buttons = sent["attachment"]["payload"]["buttons"]
    assert buttons[0]["url"] == f"https://dm.example.com/l/{links.link_token(delivery.pk, 0)}"
    assert buttons[1] == BUTTONS["attachment"]["payload"]["buttons"][1]  # postback untouched
    assert buttons[2]["url"].endswith(links.link_token(delivery.pk, 1))
    # What the delivery stores is the link as written.
    assert delivery.payload == BUTTONS


def test_nothing_is_rewritten_without_a_public_address_or_with_tracking_off(delivery, tracking):
    delivery.workspace.track_link_clicks = False
    assert links.payload_to_send(delivery) == BUTTONS
    delivery.workspace.track_link_clicks = True
    tracking.PUBLIC_BASE_URL = ""
    assert links.payload_to_send(delivery) == BUTTONS


def test_the_redirect_goes_to_the_stored_url_and_counts_the_click(delivery):
    token = links.link_token(delivery.pk, 1)
    response = Client().get(f"/l/{token}")
    assert (response.status_code, response["Location"]) == (302, "https://shop.example.com/")
    click = LinkClick.objects.get()
    assert (click.delivery, click.trigger_id, click.link_index) == (
        delivery,
        delivery.trigger_id,
        1,
    )


def test_no_open_redirect(delivery):
    assert Client().get("/l/AAAA?next=https://evil.example").status_code == 404
    tampered = links.link_token(delivery.pk, 5)  # a genuine token for a link that is not there
    assert Client().get(f"/l/{tampered}").status_code == 404
    delivery.payload = meta_messages.button_message(
        "x", [meta_messages.LinkButton("Bad", "javascript:alert(1)")]
    )
    delivery.save()
    assert Client().get(f"/l/{links.link_token(delivery.pk, 0)}").status_code == 404
    assert not LinkClick.objects.exists()


def test_link_previews_and_switched_off_workspaces_are_not_counted(delivery):
    token = links.link_token(delivery.pk, 0)
    preview = Client(HTTP_USER_AGENT="facebookexternalhit/1.1")
    assert preview.get(f"/l/{token}").status_code == 302
    assert not LinkClick.objects.exists()
    delivery.workspace.track_link_clicks = False
    delivery.workspace.save()
    assert Client().get(f"/l/{token}").status_code == 302
    assert not LinkClick.objects.exists()


def test_the_send_carries_the_tracked_link(tracking, mocked_graph, delivery):
    import json
    import re

    from messaging import graph
    from tests.conftest import GRAPH

    mocked_graph.add(
        "POST", re.compile(rf"{GRAPH}/\d+/messages"), json={"recipient_id": "1", "message_id": "m"}
    )
    graph.send(delivery)
    sent = json.loads(mocked_graph.calls[0].request.body)
    url = sent["message"]["attachment"]["payload"]["buttons"][0]["url"]
    assert url.startswith("https://dm.example.com/l/")
