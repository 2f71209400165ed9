import pytest
import responses as responses_lib
from django.conf import settings
from django.test import override_settings

from config.celery import app as celery_app
from meta.samples import signed
from meta.standin import StandIn
from tests.network_guard import no_network_in_transactions  # noqa: F401 (a fixture)

GRAPH = "https://graph.test/v24.0"
INSTAGRAM_GRAPH = "https://graph-ig.test/v24.0"


@pytest.fixture(autouse=True)
def _celery_eager(request):
    """Unit tests run tasks inline; end-to-end tests use a real worker and broker.

    Events stored in this process are published by it (WEBHOOK_DISPATCH=request): inline tasks
    need that, and so does the end-to-end tests' worker on this database, which runs no outbox
    relay (tests/e2e/processes.py). Tests of the relay turn it back on; tests.e2e.stack runs
    the whole product, relay included, in processes of its own.
    """
    with override_settings(WEBHOOK_DISPATCH="request"):
        if request.node.get_closest_marker("e2e"):
            yield
            return
        celery_app.conf.task_always_eager = True
        yield
        celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _fresh_cache(request):
    """The cache is shared (Redis here): sign-in rate limits counted by one test, or by an
    earlier run minutes ago, must not refuse another's sign-in. End-to-end processes keep theirs."""
    if not request.node.get_closest_marker("e2e"):
        from django.core.cache import cache

        cache.clear()
    yield


@pytest.fixture(autouse=True)
def _fresh_intent_routing():
    """Intake routing keeps the accounts using intent triggers per process for a few seconds:
    a test's rolled-back triggers must not route the next test's events."""
    from triggers.selectors import intent_account_ids_forget

    intent_account_ids_forget()
    yield


@pytest.fixture
def graph_urls(settings):
    settings.META_GRAPH_URL = GRAPH
    settings.META_INSTAGRAM_GRAPH_URL = INSTAGRAM_GRAPH
    return settings


@pytest.fixture
def mocked_graph(graph_urls):
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sign():
    """Serialise and sign a webhook body with the configured app secret."""

    def _sign(body: dict, secret: str | None = None):
        return signed(body, secret or settings.META_APP_SECRET)

    return _sign


@pytest.fixture(scope="module")
def standin():
    """The Graph API stand-in in this process, one per test module (control it per test)."""
    server = StandIn(host="127.0.0.1", port=0).start()
    yield server
    server.stop()
