"""Thin Celery tasks: each loads by id and calls one service; safe to run twice."""

from functools import partial

from celery import shared_task

from messaging import pacer, services
from messaging.lowpriority import run_at_low_priority


@shared_task(name="messaging.send_delivery", bind=True, acks_late=True, reject_on_worker_lost=True)
def send_delivery(self, delivery_id: int, low_priority: bool = False) -> None:
    if low_priority and not self.request.is_eager:
        # One of a backlogged account's sends: only on CPU nothing else wants.
        run_at_low_priority(partial(services.delivery_send, delivery_id=delivery_id))
        return
    services.delivery_send(delivery_id=delivery_id)


@shared_task(name="messaging.pace_account", acks_late=True, reject_on_worker_lost=True)
def pace_account(account_id: int) -> dict:
    return pacer.account_pace(account_id=account_id)


@shared_task(name="messaging.sweep_deliveries")
def sweep_deliveries() -> dict:
    return services.deliveries_sweep()
