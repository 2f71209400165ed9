"""State shared by every worker and process: per-account budgets and short-lived flags.

Redis when REDIS_URL is set, the database otherwise. Budgets are sliding windows, like
Meta's own limits: at most `limit` uses in any `window` seconds. A sliding window (rather
than a token bucket with a burst) is what lets us run close to the limit without ever
crossing it.
"""

import time
import uuid
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from messaging.models import BudgetUse, SharedFlag


@dataclass(frozen=True)
class Budget:
    key: str
    limit: int
    window: float  # seconds


def _redis_now(now: float | None) -> float | str:
    """The scripts' ARGV[1]: empty means "ask Redis for the time"."""
    return "" if now is None else now


class RedisState:
    # Time is Redis's own (TIME), not the calling worker's: workers on several hosts share the
    # budgets, and a worker whose clock ran behind would see uses as older than they are and
    # eat the headroom. Tests pass a fixed "now" (ARGV[1]) instead.
    _NOW = """
    local now = tonumber(ARGV[1])
    if now == nil then
        local t = redis.call('TIME')
        now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    end
    """
    # All budgets are checked and taken in one atomic step: either every budget has room
    # (and each records a use) or none is touched and the wait until the first frees is returned.
    _ACQUIRE = (
        _NOW
        + """
    local member = ARGV[2]
    local wait = 0
    for i, key in ipairs(KEYS) do
        local limit = tonumber(ARGV[1 + i * 2])
        local window = tonumber(ARGV[2 + i * 2])
        redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
        local used = redis.call('ZCARD', key)
        if used >= limit then
            local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
            local free_at = tonumber(oldest[2]) + window - now
            if free_at > wait then wait = free_at end
        end
    end
    if wait > 0 then return tostring(wait) end
    for i, key in ipairs(KEYS) do
        local window = tonumber(ARGV[2 + i * 2])
        redis.call('ZADD', key, now, member)
        redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
    end
    return '0'
    """
    )

    # Read only: when would one more use beyond `reserved` fit? The reserved uses take the
    # free places first, then those freed as the oldest uses leave the window, in order.
    _ROOM = (
        _NOW
        + """
    local reserved = tonumber(ARGV[2])
    local wait = 0
    for i, key in ipairs(KEYS) do
        local limit = tonumber(ARGV[1 + i * 2])
        local window = tonumber(ARGV[2 + i * 2])
        local since = '(' .. tostring(now - window)
        local used = redis.call('ZCOUNT', key, since, '+inf')
        local leave = used + reserved + 1 - limit
        local free_at = 0
        if leave > used then
            free_at = window
        elseif leave > 0 then
            local nth = redis.call(
                'ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', leave - 1, 1)
            free_at = tonumber(nth[2]) + window - now
        end
        if free_at > wait then wait = free_at end
    end
    return tostring(wait)
    """
    )

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._acquire = self.client.register_script(self._ACQUIRE)
        self._room = self.client.register_script(self._ROOM)

    def try_acquire(self, budgets: list[Budget], now: float | None = None) -> float:
        """0 when a use of every budget was recorded; else seconds until one frees up.
        ``now`` (tests only) replaces Redis's clock."""
        return self._run(self._acquire, budgets, [_redis_now(now), uuid.uuid4().hex])

    def room(self, budgets: list[Budget], now: float | None = None, reserved: int = 0) -> float:
        """Records nothing: seconds until every budget has room for one more use beyond
        `reserved` (uses promised to sends already on their way); 0 when it has now."""
        return self._run(self._room, budgets, [_redis_now(now), reserved])

    @staticmethod
    def _run(script, budgets: list[Budget], args: list) -> float:
        for budget in budgets:
            args += [budget.limit, budget.window]
        return float(script(keys=[f"budget:{b.key}" for b in budgets], args=args))

    def used(self, budget: Budget, now: float | None = None) -> int:
        if now is None:
            seconds, microseconds = self.client.time()
            now = seconds + microseconds / 1_000_000
        return self.client.zcount(f"budget:{budget.key}", now - budget.window, "+inf")

    def count_recent(self, key: str, window: int) -> int:
        """Count one more occurrence; return the count over the current and previous
        `window`-second buckets (so a flood is not forgotten each time a bucket starts)."""
        bucket = int(time.time()) // window
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(f"count:{key}:{bucket}")
        pipe.expire(f"count:{key}:{bucket}", window * 3)
        pipe.get(f"count:{key}:{bucket - 1}")
        current, _, previous = pipe.execute()
        return int(current) + int(previous or 0)

    def flag_set(self, key: str, ttl: float) -> bool:
        """Set a flag unless it is already set; True when this call set it."""
        return bool(self.client.set(f"flag:{key}", 1, nx=True, px=max(1, int(ttl * 1000))))

    def flag_clear(self, key: str) -> None:
        self.client.delete(f"flag:{key}")


class DatabaseState:
    def _lock(self, keys: list[str]) -> None:
        # PostgreSQL: one lock per budget, taken in a fixed order (no deadlock), so takers of
        # overlapping budget sets (a private reply and a DM share "send") are serialised.
        # SQLite's IMMEDIATE transactions already serialise every writer.
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for key in sorted(keys):
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])

    def room(self, budgets: list[Budget], now: float | None = None, reserved: int = 0) -> float:
        now = time.time() if now is None else now
        wait = 0.0
        for budget in budgets:
            uses = BudgetUse.objects.filter(key=budget.key, at__gt=now - budget.window)
            used = uses.count()
            # As in RedisState._ROOM: this many uses must leave the window first.
            leave = used + reserved + 1 - budget.limit
            if leave > used:
                wait = max(wait, budget.window)
            elif leave > 0:
                nth = uses.order_by("at").values_list("at", flat=True)[leave - 1]
                wait = max(wait, nth + budget.window - now)
        return wait

    def try_acquire(self, budgets: list[Budget], now: float | None = None) -> float:
        now = time.time() if now is None else now
        with transaction.atomic():
            self._lock([b.key for b in budgets])
            wait = self.room(budgets, now)
            if wait > 0:
                return wait
            BudgetUse.objects.bulk_create([BudgetUse(key=b.key, at=now) for b in budgets])
            return 0.0

    def used(self, budget: Budget, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return BudgetUse.objects.filter(key=budget.key, at__gt=now - budget.window).count()

    def prune(self, older_than: float = 3700.0) -> int:
        deleted, _ = BudgetUse.objects.filter(at__lt=time.time() - older_than).delete()
        return deleted

    def count_recent(self, key: str, window: int) -> int:
        # Intake calls this on every webhook: without Redis, do not add a database write to
        # it. Every account then counts as quiet (one intake queue, first come first served).
        return 0

    def flag_set(self, key: str, ttl: float) -> bool:
        now = time.time()
        try:
            with transaction.atomic():
                SharedFlag.objects.create(key=key, expires_at=now + ttl)
                return True
        except IntegrityError:
            # Taken over only if expired; the conditional update makes one caller win.
            return bool(
                SharedFlag.objects.filter(key=key, expires_at__lt=now).update(expires_at=now + ttl)
            )

    def flag_clear(self, key: str) -> None:
        SharedFlag.objects.filter(key=key).delete()


@cache
def _state_for(redis_url: str) -> RedisState | DatabaseState:
    return RedisState(redis_url) if redis_url else DatabaseState()


def shared_state() -> RedisState | DatabaseState:
    return _state_for(settings.REDIS_URL)
