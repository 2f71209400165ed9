"""/healthz/ names each dependency and answers 503 when one is down; /livez/ touches none."""

import pytest


@pytest.mark.django_db
def test_healthz_reports_each_dependency(client, settings):
    response = client.get("/healthz/")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["dependencies"]["database"]["state"] == "ok"
    assert report["dependencies"]["broker"]["state"] == "ok"
    if settings.REDIS_URL:
        assert report["dependencies"]["redis"]["state"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz/")
    assert response.status_code == 503
    report = response.json()
    assert report["dependencies"]["broker"]["state"] == "down"
    assert report["dependencies"]["database"]["state"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz/")
    assert response.status_code == 503
    assert response.json()["dependencies"]["redis"]["state"] == "down"


def test_healthz_is_503_when_the_database_is_down(client, monkeypatch):
    from config import health

    def database_down():
        raise ConnectionError("connection refused")

    monkeypatch.setattr(health, "_database", database_down)
    response = client.get("/healthz/")
    assert response.status_code == 503
    assert response.json()["dependencies"]["database"]["state"] == "down"


def test_livez_needs_nothing(client):
    response = client.get("/livez/")
    assert response.status_code == 200
    assert response.content == b"ok"
