"""Recording who writes: a person's first message is decided once, even under a race."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Contact
from accounts.services import contact_record_comment, contact_record_inbound
from tests.factories import InstagramAccountFactory

pytestmark = pytest.mark.django_db

PERSON = "1789000000000321"


@pytest.fixture
def commenter():
    """Someone who had only commented: a contact without a message yet."""
    account = InstagramAccountFactory()
    return contact_record_comment(
        account=account, igsid=PERSON, username="ana", commented_at=timezone.now()
    )


def test_the_first_message_of_a_commenter_is_first_once(commenter):
    now = timezone.now()
    _, first = contact_record_inbound(account=commenter.account, igsid=PERSON, interacted_at=now)
    _, second = contact_record_inbound(
        account=commenter.account, igsid=PERSON, interacted_at=now + timedelta(seconds=1)
    )
    assert (first, second) == (True, False)


def test_two_workers_reading_the_contact_at_once_give_one_welcome(commenter, monkeypatch):
    """Worker 2 read the contact before worker 1 wrote (a read-then-write raced): only the
    conditional UPDATE decides, so worker 2 is not told it is the first message too."""
    stale = Contact.objects.get(pk=commenter.pk)  # what worker 2 read: no message yet
    now = timezone.now()
    _, worker_1 = contact_record_inbound(account=commenter.account, igsid=PERSON, interacted_at=now)
    monkeypatch.setattr(Contact.objects, "get_or_create", lambda **kwargs: (stale, False))
    contact, worker_2 = contact_record_inbound(
        account=commenter.account, igsid=PERSON, interacted_at=now + timedelta(seconds=1)
    )
    assert (worker_1, worker_2) == (True, False)
    assert contact.last_interaction_at == now + timedelta(seconds=1)


def test_an_older_message_never_moves_the_window_back(commenter):
    now = timezone.now()
    contact_record_inbound(account=commenter.account, igsid=PERSON, interacted_at=now)
    contact, first = contact_record_inbound(
        account=commenter.account, igsid=PERSON, interacted_at=now - timedelta(hours=1)
    )
    assert not first
    assert contact.last_interaction_at == now


def test_a_brand_new_person_is_first():
    account = InstagramAccountFactory()
    contact, first = contact_record_inbound(
        account=account, igsid=PERSON, interacted_at=timezone.now()
    )
    assert first and contact.pk
