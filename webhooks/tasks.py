"""Thin Celery tasks for intake processing."""

from functools import partial

from celery import shared_task

from webhooks import services
from webhooks.lowpriority import run_at_low_priority


@shared_task(name="webhooks.process_event", bind=True, acks_late=True, reject_on_worker_lost=True)
def process_event(self, event_id: int, low_priority: bool = False) -> None:
    if low_priority and not self.request.is_eager:
        # A flooded account's backlog (events_bulk): only on CPU nothing else wants.
        run_at_low_priority(partial(services.webhook_event_process, event_id=event_id))
        return
    services.webhook_event_process(event_id=event_id)


@shared_task(name="webhooks.requeue_pending_events")
def requeue_pending_events() -> int:
    return services.webhook_events_requeue_pending()
