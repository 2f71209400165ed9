"""The pre-send checklist: each check that stops a delivery, and what lets one go."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AccountStatus
from messaging.checks import run_checklist
from messaging.models import DeliveryKind, DeliveryReason
from tests.factories import ContactFactory, DeliveryFactory, InstagramAccountFactory

pytestmark = pytest.mark.django_db

BUTTONS = [{"type": "web_url", "url": "https://example.com/guide", "title": "Open"}]


def private_reply(**fields):
    return DeliveryFactory(kind=DeliveryKind.PRIVATE_REPLY, **fields)


def public_reply(text="Sent! Check your DMs", **fields):
    return DeliveryFactory(kind=DeliveryKind.PUBLIC_REPLY, payload={"text": text}, **fields)


def message(*, last_interaction_at, payload=None, **fields):
    contact = ContactFactory(last_interaction_at=last_interaction_at)
    return DeliveryFactory(
        kind=DeliveryKind.MESSAGE,
        account=contact.account,
        contact=contact,
        comment_id="",
        recipient=contact.igsid,
        dedupe_key=f"message:{contact.igsid}",
        payload=payload or {"text": "Here is the guide"},
        **fields,
    )


def reason(delivery, now=None):
    failure = run_checklist(delivery, now or timezone.now())
    return failure.reason if failure else None


# --- a delivery that may go ---------------------------------------------------------------------
def test_fresh_private_reply_passes():
    assert reason(private_reply()) is None


def test_public_reply_passes():
    assert reason(public_reply()) is None


def test_failure_names_what_to_do():
    account = InstagramAccountFactory(status=AccountStatus.DISABLED)

    failure = run_checklist(private_reply(account=account), timezone.now())

    assert failure.detail


# --- window -------------------------------------------------------------------------------------
def test_private_reply_to_a_comment_older_than_7_days_is_window_expired():
    now = timezone.now()
    delivery = private_reply(interaction_at=now - timedelta(days=7, minutes=1))

    assert reason(delivery, now) == DeliveryReason.WINDOW_EXPIRED


def test_private_reply_within_7_days_passes():
    now = timezone.now()
    delivery = private_reply(interaction_at=now - timedelta(days=6, hours=23))

    assert reason(delivery, now) is None


def test_private_reply_window_counts_from_the_comment_not_from_arrival():
    now = timezone.now()
    delivery = private_reply(
        interaction_at=now - timedelta(days=8), event_received_at=now - timedelta(minutes=1)
    )

    assert reason(delivery, now) == DeliveryReason.WINDOW_EXPIRED


def test_private_reply_to_a_live_comment_after_the_longest_broadcast_is_window_expired():
    now = timezone.now()
    delivery = private_reply(
        live_media_id="17900000000000042", interaction_at=now - timedelta(hours=5)
    )
    failure = run_checklist(delivery, now)
    assert failure.reason == DeliveryReason.WINDOW_EXPIRED
    assert "only while live" in failure.detail
    fresh = private_reply(
        live_media_id="17900000000000042", interaction_at=now - timedelta(hours=1)
    )
    assert reason(fresh, now) is None


def test_the_window_counts_from_the_comments_own_time_when_known():
    now = timezone.now()
    # The webhook came a day late (a redelivery): entry.time 6 days ago, comment 7 days + 1 h.
    delivery = private_reply(
        interaction_at=now - timedelta(days=6),
        comment_created_at=now - timedelta(days=7, hours=1),
    )
    assert reason(delivery, now) == DeliveryReason.WINDOW_EXPIRED


def test_private_reply_ignores_the_24_hour_message_window():
    now = timezone.now()
    delivery = private_reply(
        interaction_at=now - timedelta(days=2), contact__last_interaction_at=None
    )

    assert reason(delivery, now) is None


def test_public_reply_to_an_old_comment_passes():
    now = timezone.now()

    assert reason(public_reply(interaction_at=now - timedelta(days=30)), now) is None


def test_message_to_a_contact_who_wrote_more_than_24_hours_ago_is_window_expired():
    now = timezone.now()
    delivery = message(last_interaction_at=now - timedelta(hours=24, minutes=1))

    assert reason(delivery, now) == DeliveryReason.WINDOW_EXPIRED


def test_message_to_a_contact_who_never_wrote_is_window_expired():
    assert reason(message(last_interaction_at=None)) == DeliveryReason.WINDOW_EXPIRED


def test_message_to_a_contact_who_only_commented_is_window_expired():
    now = timezone.now()
    delivery = message(last_interaction_at=None)
    delivery.contact.last_comment_at = now - timedelta(minutes=1)
    delivery.contact.save()

    assert reason(delivery, now) == DeliveryReason.WINDOW_EXPIRED


def test_message_without_a_contact_is_window_expired():
    delivery = message(last_interaction_at=timezone.now())
    delivery.contact = None

    assert reason(delivery) == DeliveryReason.WINDOW_EXPIRED


def test_message_within_24_hours_passes():
    now = timezone.now()
    delivery = message(last_interaction_at=now - timedelta(hours=23, minutes=59))

    assert reason(delivery, now) is None


# --- account ------------------------------------------------------------------------------------
def test_account_that_needs_reconnecting_is_token_invalid():
    account = InstagramAccountFactory(status=AccountStatus.NEEDS_RECONNECT)

    assert reason(private_reply(account=account)) == DeliveryReason.TOKEN_INVALID


def test_account_that_needs_reconnecting_holds_the_delivery():
    account = InstagramAccountFactory(status=AccountStatus.NEEDS_RECONNECT)

    assert run_checklist(private_reply(account=account), timezone.now()).hold is True


def test_account_that_needs_reconnecting_for_a_permission_is_permission_missing():
    account = InstagramAccountFactory(
        status=AccountStatus.NEEDS_RECONNECT, reconnect_reason=DeliveryReason.PERMISSION_MISSING
    )

    assert reason(private_reply(account=account)) == DeliveryReason.PERMISSION_MISSING


def test_disabled_account_is_permission_missing():
    account = InstagramAccountFactory(status=AccountStatus.DISABLED)

    assert reason(private_reply(account=account)) == DeliveryReason.PERMISSION_MISSING


def test_disabled_account_skips_rather_than_holds():
    account = InstagramAccountFactory(status=AccountStatus.DISABLED)

    assert run_checklist(private_reply(account=account), timezone.now()).hold is False


def test_account_without_a_token_is_token_invalid():
    account = InstagramAccountFactory()
    account.access_token_encrypted = ""
    account.save()

    assert reason(private_reply(account=account)) == DeliveryReason.TOKEN_INVALID


def test_token_encrypted_with_a_key_no_longer_configured_is_token_invalid(settings):
    settings.TOKEN_ENCRYPTION_KEYS = ["retired key"]
    account = InstagramAccountFactory()
    settings.TOKEN_ENCRYPTION_KEYS = ["current key"]

    assert reason(private_reply(account=account)) == DeliveryReason.TOKEN_INVALID


def test_account_problems_are_reported_before_the_window():
    now = timezone.now()
    account = InstagramAccountFactory(status=AccountStatus.NEEDS_RECONNECT)
    delivery = private_reply(account=account, interaction_at=now - timedelta(days=30))

    assert reason(delivery, now) == DeliveryReason.TOKEN_INVALID


# --- permission ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("login_kind", "scopes", "kind"),
    [
        ("facebook", ["instagram_basic", "instagram_manage_comments"], DeliveryKind.PRIVATE_REPLY),
        ("facebook", ["instagram_basic", "instagram_manage_messages"], DeliveryKind.PUBLIC_REPLY),
        ("instagram", ["instagram_manage_messages"], DeliveryKind.PRIVATE_REPLY),
        ("instagram", ["instagram_business_manage_messages"], DeliveryKind.PUBLIC_REPLY),
    ],
)
def test_token_without_the_scope_the_send_needs_is_permission_missing(login_kind, scopes, kind):
    account = InstagramAccountFactory(login_kind=login_kind, scopes=scopes)
    delivery = DeliveryFactory(account=account, kind=kind)

    assert reason(delivery) == DeliveryReason.PERMISSION_MISSING


@pytest.mark.parametrize("login_kind", ["facebook", "instagram"])
def test_token_with_the_scopes_of_its_login_kind_passes(login_kind):
    account = InstagramAccountFactory(login_kind=login_kind)

    assert reason(private_reply(account=account)) is None
    assert reason(public_reply(account=account)) is None


@pytest.mark.parametrize("kind", [DeliveryKind.PRIVATE_REPLY, DeliveryKind.MESSAGE])
def test_a_page_token_without_pages_messaging_is_permission_missing_naming_it(kind):
    # Meta answers code 230 "Requires pages_messaging permission" to such a Page token
    # (https://developers.facebook.com/docs/messenger-platform/error-codes): never call it.
    scopes = ["instagram_basic", "instagram_manage_comments", "instagram_manage_messages"]
    account = InstagramAccountFactory(login_kind="facebook", scopes=scopes)
    contact = ContactFactory(account=account, last_interaction_at=timezone.now())
    delivery = DeliveryFactory(account=account, kind=kind, contact=contact)

    failure = run_checklist(delivery, timezone.now())

    assert failure.reason == DeliveryReason.PERMISSION_MISSING
    assert "pages_messaging" in failure.detail


def test_a_private_reply_needs_comment_moderation_too():
    scopes = ["instagram_basic", "instagram_manage_messages", "pages_messaging"]
    account = InstagramAccountFactory(login_kind="facebook", scopes=scopes)
    failure = run_checklist(private_reply(account=account), timezone.now())
    assert "instagram_manage_comments" in failure.detail


def test_token_whose_scopes_were_never_read_passes():
    account = InstagramAccountFactory(scopes=[])

    assert reason(private_reply(account=account)) is None


# --- one private reply per comment --------------------------------------------------------------
@pytest.mark.parametrize("status", ["sent", "sending", "unknown"])
def test_second_private_reply_to_a_comment_is_already_replied(status):
    first = private_reply(status=status)
    second = private_reply(
        account=first.account, comment_id=first.comment_id, dedupe_key="private_reply:again"
    )

    assert reason(second) == DeliveryReason.ALREADY_REPLIED


@pytest.mark.parametrize("status", ["failed", "skipped"])
def test_private_reply_after_one_that_did_not_go_passes(status):
    first = private_reply(status=status)
    second = private_reply(
        account=first.account, comment_id=first.comment_id, dedupe_key="private_reply:again"
    )

    assert reason(second) is None


def test_public_reply_does_not_use_up_the_private_reply():
    public = public_reply(status="sent")
    private = private_reply(account=public.account, comment_id=public.comment_id)

    assert reason(private) is None


# --- conversation closed ------------------------------------------------------------------------
def test_message_to_a_contact_who_closed_the_conversation_is_conversation_closed():
    now = timezone.now()
    delivery = message(last_interaction_at=now - timedelta(hours=2))
    delivery.contact.conversation_closed_at = now - timedelta(hours=1)
    delivery.contact.save()

    assert reason(delivery, now) == DeliveryReason.CONVERSATION_CLOSED


def test_message_to_a_contact_who_wrote_again_after_closing_passes():
    now = timezone.now()
    delivery = message(last_interaction_at=now - timedelta(minutes=5))
    delivery.contact.conversation_closed_at = now - timedelta(hours=1)
    delivery.contact.save()

    assert reason(delivery, now) is None


def test_private_reply_to_a_contact_who_closed_the_conversation_is_conversation_closed():
    delivery = private_reply(contact__conversation_closed_at=timezone.now())

    assert reason(delivery) == DeliveryReason.CONVERSATION_CLOSED


def test_public_reply_ignores_a_closed_conversation():
    delivery = public_reply(contact__conversation_closed_at=timezone.now())

    assert reason(delivery) is None


# --- content ------------------------------------------------------------------------------------
def test_private_reply_of_1000_characters_passes():
    assert reason(private_reply(payload={"text": "x" * 1000})) is None


def test_private_reply_over_1000_characters_is_content_rejected():
    delivery = private_reply(payload={"text": "x" * 1001})

    assert reason(delivery) == DeliveryReason.CONTENT_REJECTED


def test_text_is_counted_in_utf8_bytes_not_characters():
    # Send API: "UTF-8 and 1000 bytes or less"
    # (https://developers.facebook.com/docs/messenger-platform/instagram/features/send-message).
    emoji = private_reply(payload={"text": "🎁" * 251})  # 251 characters, 1,004 bytes
    failure = run_checklist(emoji, timezone.now())
    assert failure.reason == DeliveryReason.CONTENT_REJECTED
    assert "1,004 bytes in UTF-8, 4 over" in failure.detail
    assert reason(private_reply(payload={"text": "🎁" * 250})) is None  # 1,000 bytes
    cyrillic = private_reply(payload={"text": "д" * 501})  # 2 bytes each
    assert reason(cyrillic) == DeliveryReason.CONTENT_REJECTED


def test_message_over_1000_characters_is_content_rejected():
    delivery = message(last_interaction_at=timezone.now(), payload={"text": "x" * 1001})

    assert reason(delivery) == DeliveryReason.CONTENT_REJECTED


def test_text_with_buttons_of_640_characters_passes():
    payload = {
        "text": "x" * 640,
        "attachment": {"type": "template", "payload": {"buttons": BUTTONS}},
    }

    assert reason(private_reply(payload=payload)) is None


def test_text_with_buttons_over_640_characters_is_content_rejected():
    payload = {
        "text": "x" * 641,
        "attachment": {"type": "template", "payload": {"buttons": BUTTONS}},
    }

    assert reason(private_reply(payload=payload)) == DeliveryReason.CONTENT_REJECTED


def test_text_without_buttons_may_exceed_640_characters():
    assert reason(private_reply(payload={"text": "x" * 641})) is None


def test_button_template_text_over_640_characters_is_content_rejected():
    payload = {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "button", "text": "x" * 641, "buttons": BUTTONS},
        }
    }

    assert reason(private_reply(payload=payload)) == DeliveryReason.CONTENT_REJECTED


def test_attachment_without_text_passes():
    payload = {"attachment": {"type": "image", "payload": {"url": "https://example.com/a.png"}}}

    assert reason(private_reply(payload=payload)) is None


@pytest.mark.parametrize("payload", [{}, {"text": ""}], ids=["no text", "empty text"])
def test_empty_message_is_content_rejected(payload):
    assert reason(private_reply(payload=payload)) == DeliveryReason.CONTENT_REJECTED


@pytest.mark.parametrize("text", ["", "   "], ids=["empty", "blank"])
def test_empty_public_reply_is_content_rejected(text):
    assert reason(public_reply(text=text)) == DeliveryReason.CONTENT_REJECTED


def test_public_reply_of_2200_characters_passes():
    assert reason(public_reply(text="x" * 2200)) is None


def test_public_reply_over_2200_characters_is_content_rejected():
    assert reason(public_reply(text="x" * 2201)) == DeliveryReason.CONTENT_REJECTED


# --- workspace blocklists -----------------------------------------------------------------------
def blocking(*, words=(), domains=()):
    return InstagramAccountFactory(
        workspace__blocked_words=list(words), workspace__blocked_domains=list(domains)
    )


@pytest.mark.parametrize(
    ("blocked", "text"),
    [
        ("scam", "This is not a SCAM!"),
        ("cafe", "Meet me at the Café"),
        ("free money", "Get free   money now"),
    ],
)
def test_blocked_word_is_content_rejected(blocked, text):
    account = blocking(words=[blocked])

    assert reason(private_reply(account=account, payload={"text": text})) == (
        DeliveryReason.CONTENT_REJECTED
    )


@pytest.mark.parametrize(
    ("blocked", "text"), [("ass", "Join the class"), ("free money", "free tips, money back")]
)
def test_blocked_word_matches_whole_words_only(blocked, text):
    account = blocking(words=[blocked])

    assert reason(private_reply(account=account, payload={"text": text})) is None


def test_blocked_word_in_a_public_reply_is_content_rejected():
    account = blocking(words=["scam"])

    assert reason(public_reply(account=account, text="No scam here")) == (
        DeliveryReason.CONTENT_REJECTED
    )


def test_blocked_word_in_a_button_title_is_content_rejected():
    account = blocking(words=["scam"])
    buttons = [{"type": "web_url", "url": "https://example.com", "title": "Scam"}]
    payload = {
        "text": "Tap below",
        "attachment": {"type": "template", "payload": {"buttons": buttons}},
    }

    assert reason(private_reply(account=account, payload=payload)) == (
        DeliveryReason.CONTENT_REJECTED
    )


@pytest.mark.parametrize(
    "text",
    [
        "Guide: https://bit.ly/abc",
        "Guide: http://BIT.LY/abc",
        "Guide: bit.ly/abc",
        "Guide: https://www.bit.ly/abc",
    ],
)
def test_link_to_a_blocked_domain_is_content_rejected(text):
    account = blocking(domains=["bit.ly"])

    assert reason(private_reply(account=account, payload={"text": text})) == (
        DeliveryReason.CONTENT_REJECTED
    )


@pytest.mark.parametrize("text", ["Guide: https://notbit.ly/abc", "Guide: https://example.com"])
def test_link_to_another_domain_passes(text):
    account = blocking(domains=["bit.ly"])

    assert reason(private_reply(account=account, payload={"text": text})) is None


def test_blocked_domain_in_a_button_url_is_content_rejected():
    account = blocking(domains=["*.bit.ly"])
    buttons = [{"type": "web_url", "url": "https://go.bit.ly/x", "title": "Open"}]
    payload = {
        "text": "Tap below",
        "attachment": {"type": "template", "payload": {"buttons": buttons}},
    }

    assert reason(private_reply(account=account, payload=payload)) == (
        DeliveryReason.CONTENT_REJECTED
    )
