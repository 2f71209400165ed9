"""Worker slots kept for quiet work (issue 14): backlog tasks never take every slot."""

import os
import subprocess
import sys
import textwrap

import pytest

import messaging.tasks
import webhooks.tasks
from config import backlog


@pytest.fixture
def node(monkeypatch):
    """A worker node with 3 slots, 1 kept for quiet work: 2 backlog slots."""
    for name in ("INSTADM_BACKLOG_SLOTS", "INSTADM_BACKLOG_DIR"):
        monkeypatch.delenv(name, raising=False)
    backlog.configure(concurrency=3, reserved=1)
    yield
    for name in ("INSTADM_BACKLOG_SLOTS", "INSTADM_BACKLOG_DIR"):
        os.environ.pop(name, None)


def test_backlog_takes_all_but_the_reserved_slots(node):
    with (
        backlog.backlog_slot() as first,
        backlog.backlog_slot() as second,
        backlog.backlog_slot() as third,
    ):
        assert (first, second, third) == (True, True, False)
    with backlog.backlog_slot() as again:
        assert again  # released on leaving


def test_a_process_that_dies_gives_its_slot_back(node):
    holder = textwrap.dedent(
        """
        import os, signal
        from config import backlog
        with backlog.backlog_slot() as a, backlog.backlog_slot() as b:
            assert a and b
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", holder], cwd=os.getcwd(), check=False)
    assert done.returncode == -9
    with backlog.backlog_slot() as first, backlog.backlog_slot() as second:
        assert first and second


def test_outside_a_configured_worker_there_is_no_limit(monkeypatch):
    monkeypatch.delenv("INSTADM_BACKLOG_SLOTS", raising=False)
    with backlog.backlog_slot() as a, backlog.backlog_slot() as b, backlog.backlog_slot() as c:
        assert a and b and c


def test_only_the_bulk_queues_are_backlog():
    assert backlog.is_backlog({"routing_key": "events_bulk"})
    assert backlog.is_backlog({"routing_key": "sends_bulk"})
    assert not backlog.is_backlog({"routing_key": "events"})
    assert not backlog.is_backlog({"routing_key": "sends"})
    assert not backlog.is_backlog(None)


@pytest.mark.parametrize(
    ("task", "queue", "service"),
    [
        (webhooks.tasks.process_event, "events_bulk", "webhooks.services.webhook_event_process"),
        (messaging.tasks.send_delivery, "sends_bulk", "messaging.services.delivery_send"),
    ],
)
def test_a_backlog_task_finding_no_slot_goes_back_to_its_queue(
    node, monkeypatch, settings, task, queue, service
):
    settings.BACKLOG_RETRY_SECONDS = 0.5
    settings.BACKLOG_WAIT_SECONDS = 0.01
    ran, requeued = [], []
    module, name = service.rsplit(".", 1)
    monkeypatch.setattr(__import__(module, fromlist=[name]), name, lambda **k: ran.append(k))
    monkeypatch.setattr(task, "apply_async", lambda *a, **k: requeued.append((a, k)))
    task.push_request(delivery_info={"routing_key": queue})
    try:
        with backlog.backlog_slot(), backlog.backlog_slot():  # both backlog slots busy
            task(7)
        assert ran == []
        assert requeued == [(((7,),), {"queue": queue, "countdown": 0.5})]
        task(8)  # a slot is free again
        assert len(ran) == 1
    finally:
        task.pop_request()


def test_quiet_work_is_never_held_back(node, monkeypatch):
    ran = []
    monkeypatch.setattr(
        "messaging.services.delivery_send", lambda **k: ran.append(k["delivery_id"])
    )
    task = messaging.tasks.send_delivery
    task.push_request(delivery_info={"routing_key": "sends"})
    try:
        with backlog.backlog_slot(), backlog.backlog_slot():
            task(9)
    finally:
        task.pop_request()
    assert ran == [9]


def test_a_backlog_task_waits_a_moment_for_a_slot_to_free(node):
    import threading

    release, holding = threading.Event(), threading.Barrier(3)

    def hold():
        with backlog.backlog_slot():
            holding.wait(5)
            release.wait(5)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    holding.wait(5)  # both backlog slots are taken
    try:
        with backlog.backlog_slot(wait=0.01) as none_free:
            assert not none_free
        threading.Timer(0.05, release.set).start()
        with backlog.backlog_slot(wait=5) as freed:
            assert freed
    finally:
        release.set()
        for thread in holders:
            thread.join()
