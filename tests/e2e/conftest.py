import os

import pytest
from django.conf import settings

from meta.standin import StandIn, StandInControl
from tests.e2e.processes import current_database_url, start_worker


def _purge_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis"):
        import redis

        redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="session")
def standin():
    with StandIn(host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def standin_control(standin):
    control = StandInControl(standin.url)
    control.reset()
    yield control
    control.close()


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, standin, tmp_path_factory):
    """A real Celery worker process on the real broker, using the test database."""
    with django_db_blocker.unblock():
        database_url = current_database_url()
    _purge_broker()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "META_GRAPH_URL": f"{standin.url}/v24.0",
        "META_INSTAGRAM_GRAPH_URL": f"{standin.url}/v24.0",
        "PENDING_EVENT_GRACE_SECONDS": "2",
    }
    process = start_worker(env, tmp_path_factory.mktemp("worker"))
    yield process
    process.stop()
