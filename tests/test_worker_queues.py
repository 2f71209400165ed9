"""Which worker consumes which queue: the Procfile's worker takes every queue by default, the
sentence model is warmed only in workers that consume `intent`, and a worker's task modules
do not import torch."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

import config.celery as celery_config
from triggers import intent
from triggers.models import MatchMode

from .factories import TriggerFactory

ROOT = Path(__file__).resolve().parents[1]
ALL_QUEUES = [queue.name for queue in settings.CELERY_TASK_QUEUES]


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_procfile_has_exactly_web_worker_and_beat():
    assert list(_procfile()) == ["web", "worker", "beat"]


def test_the_procfile_worker_consumes_every_queue_in_priority_order_by_default():
    worker = _procfile()["worker"]
    found = re.search(r"-Q \$\{WORKER_QUEUES:-([a-z_,]+)\}", worker)
    assert found, worker
    # With Redis a worker takes its queues in the order given, so it is the settings' order.
    assert found.group(1).split(",") == ALL_QUEUES
    assert "intent" in ALL_QUEUES


def _worker(queues: list[str] | None, exclude: list[str] | None = None):
    """A worker set up as `celery worker -Q ... -X ...` sets it up (worker_init), not started."""
    app = Celery("queues-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    return app.WorkController(queues=queues, exclude_queues=exclude, pool_cls="solo")


@pytest.mark.parametrize(
    ("queues", "exclude", "consumes"),
    [
        (None, None, True),  # no -Q: every queue of CELERY_TASK_QUEUES
        (["intent"], None, True),
        (["sends", "events", "maintenance", "events_bulk"], None, False),
        (None, ["intent"], False),
    ],
)
def test_a_worker_knows_whether_it_consumes_the_intent_queue(
    monkeypatch, queues, exclude, consumes
):
    monkeypatch.setattr(celery_config, "_consumes_intent", None)
    worker = _worker(queues, exclude)
    assert celery_config.worker_consumes_intent(worker) is consumes
    assert celery_config._consumes_intent is consumes  # noted by the worker_init signal


@pytest.fixture
def warm_ups(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(intent, "warm_up", lambda: calls.append(1))
    monkeypatch.setattr(intent, "intent_available", lambda: True)
    return calls


@pytest.mark.django_db
@pytest.mark.parametrize(("consumes", "expected"), [(True, [1]), (False, [])])
def test_the_model_is_warmed_only_in_workers_consuming_intent(
    monkeypatch, warm_ups, consumes, expected
):
    TriggerFactory(match=MatchMode.INTENT, keywords=[], examples=["price"])
    monkeypatch.setattr(celery_config, "_consumes_intent", consumes)
    celery_config._warm_up_intent_model()
    assert warm_ups == expected


@pytest.mark.django_db
def test_an_intent_worker_does_not_warm_up_when_no_account_uses_intent(monkeypatch, warm_ups):
    TriggerFactory(match=MatchMode.CONTAINS)
    monkeypatch.setattr(celery_config, "_consumes_intent", True)
    celery_config._warm_up_intent_model()
    assert warm_ups == []


def test_a_workers_task_modules_do_not_import_torch():
    # What a worker imports at start (the Celery app, every app's tasks, the services they
    # call): torch and sentence-transformers cost seconds and hundreds of MB, only on use.
    code = (
        "import sys, django; django.setup(); "
        "from config.celery import app; app.loader.import_default_modules(); "
        "import webhooks.tasks, messaging.tasks, triggers.tasks, accounts.tasks; "
        "import webhooks.services, triggers.services, triggers.selectors, triggers.matching; "
        "assert len(app.tasks) > 10, list(app.tasks); "
        "heavy = {'torch', 'sentence_transformers', 'transformers', 'onnxruntime'} "
        "& set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)
