"""Thin Celery tasks for flows: each loads by id and calls one service; safe to run twice."""

from celery import shared_task

from triggers import flows


@shared_task(name="triggers.check_follow", acks_late=True, reject_on_worker_lost=True)
def check_follow(run_id: int) -> None:
    flows.flow_check_follow(run_id=run_id)


@shared_task(name="triggers.sweep_flows")
def sweep_flows() -> dict:
    return flows.flows_sweep()
