"""The outbox relay: hands stored webhook events to the broker, outside the webhook request.

With WEBHOOK_DISPATCH=relay the webhook view only stores the event, and the same INSERT
NOTIFYs the channel `webhook_events` (webhooks.services). The relay LISTENs there and, on each
notification or after WEBHOOK_RELAY_POLL_SECONDS without one, claims the pending events that
no one handed to the broker yet (`dispatched_at IS NULL`, a small partial index), publishes
them with `webhook_event_publish` and gives back the claim on those the broker refused, to
try again shortly. The beat sweeper (`webhook_events_requeue_pending`) stays the safety net
for what the broker loses (Redis restarted empty); it counts its spacing from `dispatched_at`,
so it does not queue again what the relay has just handed over.

One relay at a time: a thread runs in every worker's main process and in beat, and only the
one whose PostgreSQL connection holds a session advisory lock publishes. The others retry the
lock every poll interval; when the holder's connection ends (its process stopped or died, or
the network broke) PostgreSQL frees the lock and one of them takes over.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from config.celery import app as celery_app
from webhooks.models import EventState, WebhookEvent
from webhooks.services import RELAY_CHANNEL, webhook_event_publish

logger = logging.getLogger(__name__)

# The session advisory lock that makes one relay the active one (any constant bigint that no
# other part of the product uses; advisory locks are per database).
RELAY_LOCK_KEY = 0x1D_0E1A_7E14
# Events claimed and published per round trip: bounds what a crash between publishing and
# the next round can leave queued twice.
RELAY_BATCH = 200
# After the broker refused a publish, wait this long (doubling per failure, at most
# RETRY_MAX_SECONDS) before publishing again; notifications meanwhile are only drained.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0
RECONNECT_MAX_SECONDS = 10.0
# How often a waiting relay looks whether it was asked to stop.
STOP_CHECK_SECONDS = 0.25
# Django-only OPTIONS of a PostgreSQL database that libpq does not know.
_DJANGO_ONLY_OPTIONS = {"isolation_level", "server_side_binding", "pool", "assume_role"}

_TABLE = WebhookEvent._meta.db_table
# Only the model's own table name goes into the text; values are parameters.
CLAIM_SQL = f"""
    UPDATE {_TABLE} SET dispatched_at = now()
    WHERE id IN (
        SELECT id FROM {_TABLE}
        WHERE state = %s AND dispatched_at IS NULL
        ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
    )
    RETURNING id, account_ids
"""  # noqa: S608
UNCLAIM_SQL = f"UPDATE {_TABLE} SET dispatched_at = NULL WHERE id = ANY(%s) AND state = %s"  # noqa: S608


def relay_connect() -> psycopg.Connection:
    """A connection of its own (autocommit) to the database Django uses: it holds the lock
    and LISTENs, so it must not be shared with, or recycled by, Django's request handling."""
    database = settings.DATABASES[DEFAULT_DB_ALIAS]
    params = {
        "dbname": database.get("NAME"),
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": str(database["PORT"]) if database.get("PORT") else None,
        # A silently dead server or network is noticed in about half a minute, not hours.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }
    for key, value in (database.get("OPTIONS") or {}).items():
        if key not in _DJANGO_ONLY_OPTIONS:
            params[key] = value
    params = {key: value for key, value in params.items() if value is not None}
    conn = psycopg.connect(autocommit=True, **params)
    # And the server side: a relay whose machine vanished (no FIN, no RST) must not keep the
    # lock for the server's default two hours of TCP silence; its backend ends in ~30 s.
    conn.execute(
        "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
        "SET tcp_keepalives_count = 3; SET tcp_user_timeout = 30000"
    )
    return conn


@dataclass(frozen=True)
class RelayRound:
    published: int
    refused: int  # claimed but not taken by the broker: unclaimed, tried again later


def relay_publish_pending(conn: psycopg.Connection, *, batch: int = RELAY_BATCH) -> RelayRound:
    """Claim, publish and (on a broker failure) unclaim pending events not yet handed over,
    batch by batch until none is left or the broker refuses one."""
    published = 0
    while True:
        rows = sorted(conn.execute(CLAIM_SQL, [EventState.PENDING.value, batch]).fetchall())
        if not rows:
            return RelayRound(published, 0)
        done = 0
        try:
            # One producer (one broker connection from the pool) for the whole batch.
            with celery_app.producer_or_acquire() as producer:
                for event_id, account_ids in rows:
                    webhook_event_publish(
                        event_id=event_id, account_ids=account_ids or [], producer=producer
                    )
                    done += 1
        except Exception:
            published += done
            unsent = [row[0] for row in rows[done:]]
            if not unsent:  # all went out; only giving the connection back failed
                return RelayRound(published, 0)
            logger.warning(
                "Outbox relay: the broker refused webhook event %s; %d event(s) wait for "
                "the next try",
                unsent[0],
                len(unsent),
                exc_info=True,
            )
            conn.execute(UNCLAIM_SQL, [unsent, EventState.PENDING.value])
            return RelayRound(published, len(unsent))
        published += done
        if len(rows) < batch:
            return RelayRound(published, 0)


class Relay:
    """The relay loop, for one thread: become the active relay, then publish until stopped.

    `run` never raises: a lost connection is reopened (with backoff) and the lock contended
    for again; a broker failure leaves the events claimable and is retried with backoff.
    """

    def __init__(self, *, poll_seconds: float | None = None, name: str = "relay") -> None:
        self.poll_seconds = (
            settings.WEBHOOK_RELAY_POLL_SECONDS if poll_seconds is None else poll_seconds
        )
        self.name = name
        self.active = threading.Event()  # set while this relay holds the lock
        self.standing_by = threading.Event()  # set once it found another relay active
        self.backend_pid: int | None = None  # its PostgreSQL session, while connected
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                with relay_connect() as conn:
                    self.backend_pid = conn.info.backend_pid
                    failures = 0
                    self._contend(conn)
                    self._relay(conn)
            except Exception:
                failures += 1
                logger.warning(
                    "Outbox relay %s: database connection lost; reconnecting",
                    self.name,
                    exc_info=failures == 1,
                )
            finally:
                self.active.clear()
                self.backend_pid = None
            if not self.stopping:
                backoff = RETRY_FIRST_SECONDS * 2 ** max(failures - 1, 0)
                self._stop.wait(min(backoff, RECONNECT_MAX_SECONDS))

    def _contend(self, conn: psycopg.Connection) -> None:
        """Return once this relay holds the lock (or is stopping)."""
        waiting_logged = False
        while not self.stopping:
            held = conn.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK_KEY]).fetchone()[0]
            if held:
                self.active.set()
                logger.info("Outbox relay %s is the active relay", self.name)
                return
            self.standing_by.set()
            if not waiting_logged:
                logger.info("Outbox relay %s: another relay is active; standing by", self.name)
                waiting_logged = True
            self._stop.wait(self.poll_seconds)

    def _relay(self, conn: psycopg.Connection) -> None:
        if self.stopping:
            return
        conn.execute(f"LISTEN {RELAY_CHANNEL}")
        retry_in = 0.0
        while not self.stopping:
            outcome = relay_publish_pending(conn)
            if outcome.refused:
                retry_in = min(max(retry_in * 2, RETRY_FIRST_SECONDS), RETRY_MAX_SECONDS)
                # Drain what arrives meanwhile without publishing: the broker needs a rest.
                self._wait(conn, retry_in, until_notified=False)
                continue
            if retry_in:
                logger.info("Outbox relay %s: the broker takes events again", self.name)
                retry_in = 0.0
            # Notifications that came during the round are in psycopg's backlog and end the
            # wait at once; the timeout is the fallback for a missed one.
            self._wait(conn, self.poll_seconds, until_notified=True)

    def _wait(self, conn: psycopg.Connection, seconds: float, *, until_notified: bool) -> None:
        """Wait on the socket for a notification, in short slices so a stop is seen soon."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            notified = False
            # stop_after: publish as soon as one arrives (more in the same packet come too).
            stop_after = 1 if until_notified else None
            for _ in conn.notifies(
                timeout=min(remaining, STOP_CHECK_SECONDS), stop_after=stop_after
            ):
                notified = True
            if notified and until_notified:
                return


# This process's relay and its thread (a list, not a global to rebind).
_running: list[tuple[Relay, threading.Thread]] = []
_running_lock = threading.Lock()


def relay_start_thread(*, name: str) -> Relay | None:
    """Start this process's relay thread (once), when WEBHOOK_DISPATCH is `relay`."""
    if settings.WEBHOOK_DISPATCH != "relay":
        return None
    with _running_lock:
        if not _running:
            relay = Relay(name=name)
            thread = threading.Thread(target=relay.run, name="outbox-relay", daemon=True)
            thread.start()
            _running.append((relay, thread))
        return _running[0][0]


def relay_stop_thread(*, timeout: float = 3.0) -> None:
    """Stop this process's relay and wait a little for its connection to close, so another
    relay takes over at once instead of after the process is gone."""
    with _running_lock:
        running = _running[:]
    for relay, thread in running:
        relay.stop()
        thread.join(timeout)
