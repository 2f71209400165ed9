"""The Celery app: settings come from Django's (prefix CELERY_), tasks from each app."""

import os

from celery import Celery
from celery.signals import (
    beat_init,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("instadm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(task=None, **kwargs) -> None:
    # Like Django does around each request: drop a connection only when it is broken or
    # older than CONN_MAX_AGE. Celery's own fixup would close it around every task, so each
    # task paid for a new PostgreSQL connection (CELERY_DB_REUSE_MAX turns that off).
    # An eager task runs inside its caller's transaction: leave that connection alone.
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_init.connect
def _reserve_slots_for_quiet_work(sender=None, **kwargs) -> None:
    # Before the pool starts: its processes inherit the node's backlog slots (config/backlog.py).
    from django.conf import settings

    from config import backlog

    concurrency = getattr(sender, "concurrency", None)
    backlog.configure(
        concurrency=concurrency if isinstance(concurrency, int) else 1,
        reserved=settings.BACKLOG_RESERVED_SLOTS,
    )


# Events of accounts with intent triggers go to this queue (webhooks.services.intake_queue_for).
INTENT_QUEUE = "intent"
# Whether this worker consumes INTENT_QUEUE: set in the main process once `-Q`/`-X` are applied,
# inherited by the pool's processes when they fork.
_consumes_intent = False


@worker_init.connect
def _note_worker_queues(sender=None, **kwargs) -> None:
    global _consumes_intent
    _consumes_intent = worker_consumes_intent(sender)


def worker_consumes_intent(worker) -> bool:
    """Whether a worker (celery.worker.WorkController) takes tasks from the `intent` queue."""
    return INTENT_QUEUE in worker.app.amqp.queues.consume_from


@worker_process_init.connect
def _warm_up_intent_model(**kwargs) -> None:
    # Loading the sentence model takes seconds: do it when a worker process starts, not on
    # the first message, but only in workers that consume the `intent` queue and only where
    # some account uses intent triggers. Other workers never load it unless an event of an
    # account that just switched to intent reaches them (then on first use, and correctly).
    import logging

    if not _consumes_intent:
        return
    try:
        from django.db import close_old_connections

        from triggers import intent
        from triggers.models import MatchMode, Trigger

        uses_intent = Trigger.objects.filter(match=MatchMode.INTENT, enabled=True).exists()
        close_old_connections()
        if uses_intent and intent.intent_available():
            intent.warm_up()
    except Exception:  # a warm-up is an optimisation; the first match loads it otherwise
        logging.getLogger(__name__).warning("Intent model warm-up skipped", exc_info=True)


@worker_ready.connect
def _start_outbox_relay_in_worker(sender=None, **kwargs) -> None:
    # In the worker's main process, once per worker node (pool children are not relays).
    from webhooks.relay import relay_start_thread

    relay_start_thread(name=f"worker {getattr(sender, 'hostname', '')}".strip())


@beat_init.connect
def _start_outbox_relay_in_beat(sender=None, **kwargs) -> None:
    # Beat too, so events are published while no worker runs (they wait in Redis meanwhile).
    from webhooks.relay import relay_start_thread

    relay_start_thread(name="beat")


@worker_shutdown.connect
def _stop_outbox_relay(**kwargs) -> None:
    from webhooks.relay import relay_stop_thread

    relay_stop_thread()
