"""Thin Celery tasks of the console: beat recounts the dashboard's daily figures."""

from celery import shared_task

from config.console import rollups


@shared_task(name="console.count_figures")
def count_figures() -> dict:
    return rollups.figures_refresh()
