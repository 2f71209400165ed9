"""The Celery app: settings come from Django's (prefix CELERY_), tasks from each app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("instadm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
