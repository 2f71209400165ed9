"""Thin Celery tasks for intake processing."""

from celery import shared_task

from config import backlog
from webhooks import services


@shared_task(bind=True, name="webhooks.process_event", acks_late=True, reject_on_worker_lost=True)
def process_event(self, event_id: int) -> None:
    # A flooded account's backlog: at most all but the node's reserved slots run it at once.
    backlog.run_task(self, _process_and_send, event_id)


def _process_and_send(event_id: int) -> None:
    from messaging.services import deliveries_send_collected, sends_collected

    # What processing queues for sending now is sent right here (settings.SEND_AFTER_PROCESSING).
    with sends_collected() as collected:
        services.webhook_event_process(event_id=event_id)
    deliveries_send_collected(collected)


@shared_task(name="webhooks.requeue_pending_events")
def requeue_pending_events() -> int:
    return services.webhook_events_requeue_pending()


@shared_task(name="webhooks.read_interactions")
def read_interactions() -> int:
    """What people did, read from processed events into the timeline's rows (bounded)."""
    from webhooks.interactions import interactions_catch_up

    return interactions_catch_up(most_batches=20)
