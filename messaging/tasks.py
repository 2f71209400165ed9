"""Thin Celery tasks: each loads by id and calls one service; safe to run twice."""

from celery import shared_task

from config import backlog
from messaging import pacer, resolve, services


@shared_task(bind=True, name="messaging.send_delivery", acks_late=True, reject_on_worker_lost=True)
def send_delivery(self, delivery_id: int) -> None:
    backlog.run_task(self, lambda pk: services.delivery_send(delivery_id=pk), delivery_id)


@shared_task(name="messaging.pace_account", acks_late=True, reject_on_worker_lost=True)
def pace_account(account_id: int) -> dict:
    return pacer.account_pace(account_id=account_id)


@shared_task(name="messaging.sweep_deliveries")
def sweep_deliveries() -> dict:
    return services.deliveries_sweep()


@shared_task(name="messaging.recover_sends")
def recover_sends() -> dict:
    return services.sends_recover()


@shared_task(name="messaging.resolve_delivery", acks_late=True, reject_on_worker_lost=True)
def resolve_delivery(delivery_id: int) -> str:
    return resolve.delivery_resolve(delivery_id=delivery_id)


@shared_task(name="messaging.fill_contact_profiles")
def fill_contact_profiles() -> int:
    from messaging.profiles import contacts_fill_profiles

    return contacts_fill_profiles()
