"""allauth's sign-in rate limits hold across gunicorn workers: they live in the shared cache."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.test import Client

BASE_DIR = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db

# Another web worker: a separate process asks allauth whether this sign-in may be tried.
ANOTHER_WORKER = """
import sys
import django
django.setup()
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from allauth.account.adapter import get_adapter
request = RequestFactory().post("/accounts/login/")
request.user = AnonymousUser()
try:
    get_adapter(request).pre_authenticate(request, username=sys.argv[1])
except ValidationError:
    print("refused")
else:
    print("allowed")
"""


def another_worker_says(username: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", ANOTHER_WORKER, username],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.strip()


def test_failed_sign_ins_counted_by_one_worker_stop_the_next_in_another():
    username = f"target-{uuid.uuid4().hex[:8]}"
    assert another_worker_says(username) == "allowed"
    client = Client()
    for _ in range(5):
        response = client.post("/accounts/login/", {"login": username, "password": "wrong"})
        assert response.status_code == 200  # the form again, with an error
    refused = client.post("/accounts/login/", {"login": username, "password": "wrong"})
    assert "Too many failed login attempts" in refused.content.decode()
    # A separate process (gunicorn's next worker) sees the same count.
    assert another_worker_says(username) == "refused"
