"""A flow end to end: comment -> private reply with a quick reply -> tap -> link DM.

Live server, real broker and worker, and the Graph API stand-in over HTTP; the follow gate
reads the person's profile from the stand-in.
"""

import pytest
import requests

from meta import samples
from tests.e2e.processes import wait_until
from tests.factories import InstagramAccountFactory, TriggerFactory
from triggers.models import FlowRun, FlowStatus

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PERSON = "1789000000004242"


def _post(live_server, settings, body: dict) -> None:
    raw, headers = samples.signed(body, settings.META_APP_SECRET)
    response = requests.post(
        f"{live_server.url}/webhooks/instagram/", data=raw, headers=headers, timeout=10
    )
    assert response.status_code == 200


def _run_in(status: str) -> FlowRun:
    return wait_until(
        lambda: FlowRun.objects.filter(status=status).first(), 20, f"a flow run {status}"
    )


def test_quick_reply_tap_opens_the_window_and_the_gated_link_follows(
    live_server, settings, worker, standin_control
):
    account = InstagramAccountFactory(username="acme.flows")
    standin_control.register_comment("17800000000000777", PERSON)
    standin_control.set_profile(PERSON, is_user_follow_business=False)
    TriggerFactory(
        account=account,
        keywords=["guide"],
        public_replies=["Sent! Check your DMs"],
        messages=[
            {
                "text": "Want the guide?",
                "quick_replies": [{"title": "Send me the link", "next": "link"}],
            }
        ],
        extra={
            "steps": {"link": [{"text": "Here: https://example.com/guide", "follow_gate": True}]},
            "follow_gate": {"text": "Follow @{username} first, then tap", "button": "I follow"},
        },
    )

    _post(
        live_server,
        settings,
        samples.comment_body(
            account_id=account.ig_user_id,
            text="guide please",
            comment_id="17800000000000777",
            from_id=PERSON,
        ),
    )
    (private,) = standin_control.wait_for("private_reply", 1, timeout=20)
    run = _run_in(FlowStatus.WAITING_TAP)
    quick = private["body"]["message"]["quick_replies"][0]
    assert quick["payload"] == f"flow:{run.pk}:link"

    # The person taps "Send me the link": Meta now has their consent (a tap), so the profile
    # can be read (User Profile API); not following yet, so they are asked to follow.
    standin_control.record_consent(PERSON)
    tap = samples.quick_reply_body(
        account_id=account.ig_user_id,
        sender_id=PERSON,
        title=quick["title"],
        payload=quick["payload"],
    )
    _post(live_server, settings, tap)
    (ask,) = standin_control.wait_for("send_message", 1, timeout=20)
    assert ask["body"]["recipient"] == {"id": PERSON}
    assert ask["body"]["message"]["text"] == "Follow @acme.flows first, then tap"
    recheck = ask["body"]["message"]["quick_replies"][0]
    _run_in(FlowStatus.WAITING_FOLLOW)

    # They follow and tap again: the link goes out.
    standin_control.set_profile(PERSON, is_user_follow_business=True)
    _post(
        live_server,
        settings,
        samples.quick_reply_body(
            account_id=account.ig_user_id,
            sender_id=PERSON,
            title=recheck["title"],
            payload=recheck["payload"],
        ),
    )
    sent = standin_control.wait_for("send_message", 2, timeout=20)
    assert sent[-1]["body"]["message"] == {"text": "Here: https://example.com/guide"}
    _run_in(FlowStatus.DONE)
    profile_reads = standin_control.requests(endpoint="profile")
    assert len(profile_reads) == 2
