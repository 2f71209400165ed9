"""bin/meta-smoke without credentials: one line saying what to set, and nothing done."""

from io import StringIO

import pytest
from django.core.management import call_command

from webhooks.smoke import REQUIRED

pytestmark = pytest.mark.django_db


def test_without_credentials_it_skips_with_one_line(monkeypatch):
    for name in REQUIRED:
        monkeypatch.delenv(name, raising=False)
    out = StringIO()

    call_command("meta_smoke", stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("[skip] meta-smoke")
    for name in REQUIRED:
        assert name in lines[0]
