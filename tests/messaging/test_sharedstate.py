"""Shared state: sliding-window budgets and short-lived flags, on Redis and on the database."""

import os
import threading
import time
import uuid

import pytest
from django.db import connection, transaction

from messaging.models import BudgetUse, SharedFlag
from messaging.sharedstate import Budget, DatabaseState, RedisState, shared_state

pytestmark = pytest.mark.django_db

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
T0 = 1_800_000_000.0  # a fixed "now" in Unix seconds: budgets take `now=`, so no real waiting


@pytest.fixture
def prefix():
    """Keys of this test only, so no other test (or earlier run) shares its budgets."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(params=["redis", "database"])
def state(request, prefix):
    if request.param == "database":
        yield DatabaseState()
        return
    redis_state = RedisState(REDIS_URL)
    try:
        redis_state.client.ping()
    except Exception as exc:  # any connection trouble means no Redis here
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")
    yield redis_state
    for key in redis_state.client.scan_iter(match=f"*{prefix}*"):
        redis_state.client.delete(key)


def expire_flag(state, key: str) -> None:
    """Make a set flag outlive its time, the way each backend records it."""
    if isinstance(state, DatabaseState):
        SharedFlag.objects.filter(key=key).update(expires_at=time.time() - 1)
    else:
        state.client.pexpire(f"flag:{key}", 1)
        time.sleep(0.01)


# --- budgets --------------------------------------------------------------------------------------
def test_at_most_limit_uses_per_window(state, prefix):
    budget = Budget(f"{prefix}:send", limit=3, window=10.0)

    waits = [state.try_acquire([budget], now=T0 + i * 0.1) for i in range(4)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] > 0
    assert state.used(budget, now=T0 + 0.5) == 3


def test_wait_is_until_the_oldest_use_leaves_the_window(state, prefix):
    budget = Budget(f"{prefix}:send", limit=3, window=10.0)
    for offset in (0.0, 2.0, 4.0):
        assert state.try_acquire([budget], now=T0 + offset) == 0.0

    wait = state.try_acquire([budget], now=T0 + 5.0)

    # The use at T0 leaves the window at T0 + 10: five seconds from now.
    assert wait == pytest.approx(5.0)


def test_a_refused_acquisition_records_no_use(state, prefix):
    budget = Budget(f"{prefix}:send", limit=1, window=10.0)
    state.try_acquire([budget], now=T0)

    state.try_acquire([budget], now=T0 + 1)
    state.try_acquire([budget], now=T0 + 2)

    assert state.used(budget, now=T0 + 2) == 1


def test_acquiring_several_budgets_records_a_use_in_each(state, prefix):
    send = Budget(f"{prefix}:send", limit=5, window=1.0)
    private_reply = Budget(f"{prefix}:private_reply", limit=5, window=3600.0)

    assert state.try_acquire([send, private_reply], now=T0) == 0.0

    assert state.used(send, now=T0) == 1
    assert state.used(private_reply, now=T0) == 1


def test_a_full_second_budget_takes_nothing_from_the_first(state, prefix):
    send = Budget(f"{prefix}:send", limit=5, window=1.0)
    private_reply = Budget(f"{prefix}:private_reply", limit=1, window=3600.0)
    assert state.try_acquire([private_reply], now=T0) == 0.0

    wait = state.try_acquire([send, private_reply], now=T0 + 1)

    assert wait == pytest.approx(3599.0)
    assert state.used(send, now=T0 + 1) == 0


def test_the_wait_is_the_longest_of_the_full_budgets(state, prefix):
    send = Budget(f"{prefix}:send", limit=1, window=1.0)
    private_reply = Budget(f"{prefix}:private_reply", limit=1, window=3600.0)
    assert state.try_acquire([send, private_reply], now=T0) == 0.0

    wait = state.try_acquire([send, private_reply], now=T0 + 0.5)

    assert wait == pytest.approx(3599.5)


def test_uses_older_than_the_window_no_longer_count(state, prefix):
    budget = Budget(f"{prefix}:send", limit=2, window=10.0)
    state.try_acquire([budget], now=T0)
    state.try_acquire([budget], now=T0 + 1)
    assert state.try_acquire([budget], now=T0 + 9) > 0

    # The use at T0 has left the window; the one at T0 + 1 still counts.
    assert state.try_acquire([budget], now=T0 + 10.5) == 0.0
    assert state.try_acquire([budget], now=T0 + 10.6) == pytest.approx(0.4)


def test_budgets_with_different_keys_are_independent(state, prefix):
    one = Budget(f"{prefix}:1:send", limit=1, window=10.0)
    other = Budget(f"{prefix}:2:send", limit=1, window=10.0)
    state.try_acquire([one], now=T0)

    assert state.try_acquire([other], now=T0) == 0.0


@pytest.mark.parametrize(
    ("reserved", "wait"),
    [
        (0, 0.0),  # one place is free now
        (1, 7.0),  # the free place is promised: the next is the use at T0 leaving (T0 + 10)
        (2, 8.0),  # ... then the one at T0 + 1
        (3, 10.0),  # more promised than uses can leave: at least a whole window
    ],
)
def test_room_says_when_the_place_after_the_reserved_ones_frees(state, prefix, reserved, wait):
    budget = Budget(f"{prefix}:send", limit=3, window=10.0)
    state.try_acquire([budget], now=T0)
    state.try_acquire([budget], now=T0 + 1)

    assert state.room([budget], now=T0 + 3, reserved=reserved) == pytest.approx(wait)
    assert state.used(budget, now=T0 + 3) == 2  # a look records nothing


def test_room_is_the_latest_of_the_budgets(state, prefix):
    send = Budget(f"{prefix}:send", limit=2, window=1.0)
    private_reply = Budget(f"{prefix}:private_reply", limit=2, window=3600.0)
    state.try_acquire([send, private_reply], now=T0)

    assert state.room([send, private_reply], now=T0 + 0.5, reserved=1) == pytest.approx(3599.5)


# --- flags ----------------------------------------------------------------------------------------
def test_flag_is_set_once(state, prefix):
    assert state.flag_set(f"{prefix}:pacer", ttl=30) is True


def test_setting_a_set_flag_is_refused(state, prefix):
    state.flag_set(f"{prefix}:pacer", ttl=30)

    assert state.flag_set(f"{prefix}:pacer", ttl=30) is False


def test_clearing_a_flag_allows_setting_it_again(state, prefix):
    state.flag_set(f"{prefix}:pacer", ttl=30)

    state.flag_clear(f"{prefix}:pacer")

    assert state.flag_set(f"{prefix}:pacer", ttl=30) is True


def test_an_expired_flag_can_be_taken_over(state, prefix):
    state.flag_set(f"{prefix}:pacer", ttl=30)
    expire_flag(state, f"{prefix}:pacer")

    assert state.flag_set(f"{prefix}:pacer", ttl=30) is True
    assert state.flag_set(f"{prefix}:pacer", ttl=30) is False


# --- choosing the backend -------------------------------------------------------------------------
def test_without_redis_url_the_database_is_used(settings):
    settings.REDIS_URL = ""

    assert isinstance(shared_state(), DatabaseState)


def test_with_redis_url_redis_is_used_and_cached_per_url(settings):
    settings.REDIS_URL = REDIS_URL

    first = shared_state()

    assert isinstance(first, RedisState)
    assert shared_state() is first


def test_database_prune_removes_uses_older_than_an_hour(prefix):
    now = time.time()
    BudgetUse.objects.create(key=f"{prefix}:send", at=now - 4000)
    BudgetUse.objects.create(key=f"{prefix}:send", at=now - 10)

    assert DatabaseState().prune() == 1
    assert list(BudgetUse.objects.filter(key=f"{prefix}:send").values_list("at", flat=True)) == [
        now - 10
    ]


# --- the database backend under concurrency (PostgreSQL: real parallel transactions) -------------
def _race(first_budgets: list[Budget], second_budgets: list[Budget]) -> None:
    """The first taker's transaction stays open (up to a second) while the second one takes.

    A correct lock makes the second taker wait for the first to commit, so it sees that use.
    """
    state = DatabaseState()
    first_took, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                state.try_acquire(first_budgets)
                first_took.set()
                second_done.wait(timeout=1.0)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            first_took.set()
            connection.close()

    def second() -> None:
        try:
            first_took.wait(timeout=5.0)
            state.try_acquire(second_budgets)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            second_done.set()
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs parallel transactions (PostgreSQL)"
)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_database_takers_of_the_same_budgets_are_serialised(prefix):
    send = Budget(f"{prefix}:send", limit=1, window=60.0)

    _race([send], [send])

    assert BudgetUse.objects.filter(key=send.key).count() == 1


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_database_takers_of_overlapping_budgets_are_serialised(prefix):
    send = Budget(f"{prefix}:send", limit=1, window=60.0)
    private_reply = Budget(f"{prefix}:private_reply", limit=10, window=3600.0)

    _race([send], [send, private_reply])

    assert BudgetUse.objects.filter(key=send.key).count() == 1


def test_redis_budgets_use_redis_time_so_a_worker_clock_behind_cannot_eat_the_headroom(
    prefix, monkeypatch
):
    """Two workers on different hosts share a budget of 1 use per 2 s. Worker A's clock runs
    5 s behind: its use must still count for worker B, whose clock is right."""
    state = RedisState(REDIS_URL)
    try:
        state.client.ping()
    except Exception as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")
    budget = Budget(f"{prefix}:send", limit=1, window=2.0)
    try:
        real_time = time.time
        monkeypatch.setattr("messaging.sharedstate.time.time", lambda: real_time() - 5)
        assert state.try_acquire([budget]) == 0.0  # worker A, clock behind
        monkeypatch.setattr("messaging.sharedstate.time.time", real_time)
        wait = state.try_acquire([budget])  # worker B, right away
        assert 0 < wait <= 2.0
        assert state.room([budget]) > 0
        assert state.used(budget) == 1
    finally:
        for key in state.client.scan_iter(match=f"*{prefix}*"):
            state.client.delete(key)
