"""The bridge from a delivery to the one Graph API client in `meta`."""

from django.conf import settings

from accounts.models import InstagramAccount, LoginKind
from messaging import links
from messaging.models import Delivery, DeliveryKind
from meta.client import GraphClient, GraphResult


def graph_base_url(account: InstagramAccount) -> str:
    if account.login_kind == LoginKind.INSTAGRAM:
        return settings.META_INSTAGRAM_GRAPH_URL
    return settings.META_GRAPH_URL


def client_for(account: InstagramAccount) -> GraphClient:
    return GraphClient(
        graph_base_url(account), account.access_token, timeout=settings.META_HTTP_TIMEOUT
    )


def send(delivery: Delivery) -> GraphResult:
    account = delivery.account
    client = client_for(account)
    if delivery.kind == DeliveryKind.PUBLIC_REPLY:
        # The recipient is the top-level comment: a reply to a reply goes under its thread.
        return client.reply_to_comment(
            delivery.recipient or delivery.comment_id, delivery.payload["text"]
        )
    # Link buttons go through /l/ when the workspace counts clicks (messaging.links).
    payload = links.payload_to_send(delivery)
    if delivery.kind == DeliveryKind.PRIVATE_REPLY:
        return client.send_private_reply(account.sender_id, delivery.comment_id, payload)
    return client.send_message(account.sender_id, delivery.recipient, payload)
