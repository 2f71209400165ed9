"""Test support: fail any call to Meta made while a database transaction (or a row lock,
which needs one) is open.

Every outbound call, the Graph client's and OAuth's alike, goes through the process's one
pooled ``requests`` session (meta.client.shared_session). The guard mounts an adapter on it
that checks, before sending, that the default database connection is in autocommit mode
(``transaction.get_autocommit()``: False inside ``atomic`` and therefore while any
``select_for_update`` lock is held). It records the offending call and raises, so a call
swallowed by an ``except Exception`` on its way up still fails the test.

Use it with ``pytest.mark.django_db(transaction=True)``: a plain ``django_db`` test runs
inside a transaction of its own, where every call would count.
"""

from __future__ import annotations

import traceback

import pytest
from django.db import transaction
from requests.adapters import HTTPAdapter

from meta.client import POOL_MAXSIZE, shared_session


class NetworkCallInTransaction(AssertionError):
    """A call to Meta while a transaction or row lock was held."""


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, violations: list[str]):
        super().__init__(pool_connections=10, pool_maxsize=POOL_MAXSIZE, max_retries=0)
        self.violations = violations

    def send(self, request, *args, **kwargs):
        if not transaction.get_autocommit():
            where = "".join(traceback.format_stack(limit=12)[:-1])
            message = f"{request.method} {request.url} inside a transaction:\n{where}"
            self.violations.append(message)
            raise NetworkCallInTransaction(message)
        return super().send(request, *args, **kwargs)


@pytest.fixture
def no_network_in_transactions():
    """The list of violations (empty at the end, or the test fails)."""
    session = shared_session()
    saved = dict(session.adapters)
    violations: list[str] = []
    adapter = _GuardedAdapter(violations)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    try:
        yield violations
    finally:
        session.adapters.clear()
        session.adapters.update(saved)
    assert not violations, "\n\n".join(violations)
