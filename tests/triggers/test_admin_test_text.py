"""The admin page where a marketer types a text and sees which trigger would fire."""

import re

import pytest
from django.urls import reverse

from tests.factories import InstagramAccountFactory, TriggerFactory

pytestmark = pytest.mark.django_db
URL = reverse("admin:triggers_trigger_test_text")


def winners(html: str) -> dict[str, str]:
    found = re.findall(
        r'data-account="([^"]+)">\s*<h3>@[^:]+:\s*(?:<strong class="winner">([^<]+)</strong>'
        r'|<span class="no-match">)',
        html,
    )
    return dict(found)


def test_shows_the_winner_per_account_with_mode_and_score(admin_client):
    shop = InstagramAccountFactory(username="shop")
    blog = InstagramAccountFactory(username="blog")
    TriggerFactory(account=shop, name="Price", keywords=["price"], match="fuzzy")
    TriggerFactory(account=shop, name="Anything", match="any", keywords=[])
    TriggerFactory(account=blog, name="Guide", keywords=["guide"])

    response = admin_client.get(URL, {"event": "comment", "text": "whats the prcie?"})

    html = response.content.decode()
    assert response.status_code == 200
    assert winners(html) == {"blog": "", "shop": "Price"}
    assert "fuzzy" in html
    assert "also matches" in html  # the any-text trigger lost to the more specific one


def test_one_account_and_dm_fallback(admin_client):
    shop = InstagramAccountFactory(username="shop")
    TriggerFactory(
        account=shop, name="Default", event="dm", match="any", keywords=[], public_replies=[],
        extra={"fires_on": "no_match"},
    )  # fmt: skip
    response = admin_client.get(URL, {"account": shop.pk, "event": "dm", "text": "hello"})
    html = response.content.decode()
    assert winners(html) == {"shop": "Default"}
    assert "default reply" in html


def test_changelist_links_to_the_page(admin_client):
    response = admin_client.get(reverse("admin:triggers_trigger_changelist"))
    assert URL in response.content.decode()


def test_an_invalid_form_shows_errors_not_a_crash(admin_client):
    response = admin_client.get(URL, {"event": "like", "text": "x"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_near_misses_say_what_nearly_answered(admin_client):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, name="Exact guide", match="exact", keywords=["guide"])
    TriggerFactory(account=account, name="Off", keywords=["guide"], enabled=False)
    response = admin_client.get(
        URL, {"account": account.pk, "event": "comment", "text": "the guide please"}
    )
    body = response.content.decode()
    assert "Exact guide</a>: would match in contains mode" in body
    assert "Off</a>: matches, but is switched off" in body
