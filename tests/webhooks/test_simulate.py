"""simulate_comment / simulate_message post to the demo bin/demo runs (DEMO_PORT, STANDIN_PORT),
not always to 8000/8001: a second demo on the machine must not get another's comments."""

import io

import pytest
import responses
from django.core.management import call_command

from triggers.management.commands.load_demo import DEMO_TRIGGERS

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings):
    settings.DEBUG = True  # load_demo makes its admin login only in development
    settings.DEMO_PORT, settings.STANDIN_PORT = 8123, 8124
    call_command("load_demo", stdout=io.StringIO())


def _posted(mock, url: str) -> list:
    return [call for call in mock.calls if call.request.url == url]


@pytest.mark.parametrize(
    ("command", "args", "told"),
    [
        ("simulate_comment", ["guide please"], "/_standin/comments"),
        # A person writing gives Meta their consent and starts the conversation.
        ("simulate_message", ["hello"], "/_standin/conversations/messages"),
    ],
)
def test_simulations_post_to_the_demo_on_demo_port(demo, command, args, told):
    out = io.StringIO()
    with responses.RequestsMock() as mock:
        mock.post("http://127.0.0.1:8123/webhooks/instagram/", body="ok")
        mock.post(f"http://127.0.0.1:8124{told}", json={})
        call_command(command, *args, stdout=out)
        assert len(_posted(mock, "http://127.0.0.1:8123/webhooks/instagram/")) == 1
        # The demo's stand-in learns what Meta would know, so it answers as strictly.
        assert len(_posted(mock, f"http://127.0.0.1:8124{told}")) == 1
    assert "http://127.0.0.1:8124/_standin/" in out.getvalue()


def test_without_a_stand_in_the_simulation_still_posts(demo):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post("http://127.0.0.1:8123/webhooks/instagram/", body="ok")
        call_command("simulate_message", "hello", stdout=io.StringIO())
        assert len(_posted(mock, "http://127.0.0.1:8123/webhooks/instagram/")) == 1


def test_an_explicit_url_still_wins(demo):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post("http://127.0.0.1:9999/webhooks/instagram/", body="ok")
        call_command("simulate_comment", "--url", "http://127.0.0.1:9999/webhooks/instagram/")
        assert len(_posted(mock, "http://127.0.0.1:9999/webhooks/instagram/")) == 1


def test_load_demo_lists_the_demo_triggers_and_how_to_try_them(settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    text = out.getvalue()
    for trigger in DEMO_TRIGGERS["triggers"]:
        assert f"  - {trigger['name']}: " in text
    assert 'simulate_message "Send me the link"' in text
