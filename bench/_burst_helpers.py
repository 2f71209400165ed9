"""Load generators and small clients for `bench/burst.py` (a viral burst beside quiet accounts).

Each generator runs in its own forked process (like bench/_loadgen.py) so its CPU time is its
own, shows up as its own process tree in the CPU figures and does not compete with the driver's
GIL. Webhook bodies are Meta-shaped `comments` changes from meta/samples.py, signed like Meta's.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import json
import random
import threading
import time
from dataclasses import dataclass

from _harness import BENCH_APP_SECRET
from _loadgen import CTX, Connection, build_post, quiet_child_signals

WEBHOOK_PATH = "/webhooks/instagram/"


@dataclass(frozen=True)
class Account:
    """One connected account as the benchmark sees it."""

    index: int  # 0 = the viral account, 1.. = quiet accounts
    ig_user_id: str
    page_id: str
    username: str
    token: str

    @property
    def viral(self) -> bool:
        return self.index == 0


def make_accounts(quiet: int) -> list[Account]:
    out = []
    for i in range(quiet + 1):
        name = "viral.brand" if i == 0 else f"quiet.shop{i:02d}"
        out.append(
            Account(
                index=i,
                ig_user_id=f"178414000009{i:05d}",
                page_id=f"10000000009{i:04d}",
                username=name,
                token=f"bench-page-token-{i:02d}",
            )
        )
    return out


class Ids:
    """Distinct comment and commenter ids: numeric like Meta's, unique per run and kind."""

    def __init__(self) -> None:
        self.tag = f"{int(time.time()) % 10**6:06d}"

    def comment(self, kind: int, n: int) -> str:
        return f"179{self.tag}{kind}{n:08d}"

    def commenter(self, kind: int, n: int) -> str:
        return f"8{self.tag}{kind}{n:09d}"


def comment_request(port: int, account: Account, comment_id: str, from_id: str) -> bytes:
    """The raw HTTP request of one signed `comments` webhook ("guide please")."""
    from meta.samples import comment_body, signed

    body = comment_body(
        account_id=account.ig_user_id,
        text="guide please",
        from_id=from_id,
        from_username=f"fan.{from_id[-7:]}",
        comment_id=comment_id,
    )
    raw, headers = signed(body, BENCH_APP_SECRET)
    return build_post(port, WEBHOOK_PATH, raw, headers)


# --- JSON over HTTP (stand-in control API) -------------------------------------------------------
def json_call(
    port: int,
    method: str,
    path: str,
    body: object = None,
    timeout: float = 60.0,
    host: str = "127.0.0.1",
):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path} -> {response.status} {raw[:300]!r}")
        return json.loads(raw) if raw else None
    finally:
        conn.close()


# --- the viral burst -----------------------------------------------------------------------------
# A record: (comment id, time.time() just before the POST, status, POST seconds, lag seconds)
Record = tuple[str, float, int, float, float]


def _viral_client(
    port: int,
    plan: list[tuple[str, bytes]],
    offset: int,
    stride: int,
    start: float,
    rate: float,
    max_seconds: float,
    out,
) -> None:
    """Request i goes out at start + i/rate, or right away when this client is behind: as fast
    as intake allows, never faster than `rate` overall."""
    quiet_child_signals()
    conn = Connection(port)
    records: list[Record] = []
    deadline = start + max_seconds
    for i in range(offset, len(plan), stride):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if time.monotonic() > deadline:
            break
        comment_id, raw = plan[i]
        lag = max(0.0, time.monotonic() - due)
        sent = time.time()
        t0 = time.perf_counter()
        status = conn.request(raw)
        records.append((comment_id, sent, status, time.perf_counter() - t0, lag))
    conn.close()
    out.put((records, time.process_time()))


class ViralBurst:
    """`clients` processes send the plan at up to `rate` POSTs/s; started now, collected later."""

    def __init__(self, port: int, plan: list[tuple[str, bytes]], rate: float, clients: int):
        self.port, self.plan, self.rate, self.clients = port, plan, rate, clients
        self.max_seconds = len(plan) / rate + 120.0
        self.out = CTX.Queue()
        self.procs = []
        self.pids: list[int] = []

    def start(self) -> None:
        start = time.monotonic() + 0.3
        for j in range(self.clients):
            proc = CTX.Process(
                target=_viral_client,
                args=(
                    self.port,
                    self.plan,
                    j,
                    self.clients,
                    start,
                    self.rate,
                    self.max_seconds,
                    self.out,
                ),
                daemon=True,
            )
            proc.start()
            self.procs.append(proc)
            self.pids.append(proc.pid)

    def collect(self) -> tuple[list[Record], float]:
        """Wait for every client (bounded); returns the records and the clients' CPU seconds."""
        records: list[Record] = []
        cpu = 0.0
        deadline = time.monotonic() + self.max_seconds + 30
        got = 0
        try:
            while got < self.clients and time.monotonic() < deadline:
                try:
                    part, part_cpu = self.out.get(timeout=1.0)
                except Exception:  # queue.Empty
                    if not any(p.is_alive() for p in self.procs) and self.out.empty():
                        break
                    continue
                records.extend(part)
                cpu += part_cpu
                got += 1
        finally:
            self.stop()
        return records, cpu

    def stop(self) -> None:
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


# --- the quiet accounts --------------------------------------------------------------------------
# A record: (comment id, account index, time.time() before the POST, status, POST s, lag s)
QuietRecord = tuple[str, int, float, int, float, float]


def _quiet_client(
    port: int,
    accounts: list[Account],
    tag: str,
    kind: int,
    interval: float,
    max_seconds: float,
    threads: int,
    seed: int,
    stop,
    out,
) -> None:
    """Each account gets a comment every `interval` s on average (uniformly jittered 0.5x-1.5x),
    first ones spread over one interval; open loop over `threads` sockets. Runs until `stop` is
    set or `max_seconds` pass."""
    quiet_child_signals()
    rng = random.Random(seed)
    ids = Ids()
    ids.tag = tag
    t0 = time.monotonic()
    deadline = t0 + max_seconds
    heap = [(t0 + rng.uniform(0.0, interval), a.index) for a in accounts]
    heapq.heapify(heap)
    by_index = {a.index: a for a in accounts}
    lock = threading.Lock()
    counter = [0]
    records: list[QuietRecord] = []

    def run() -> None:
        conn = Connection(port)
        while True:
            with lock:
                due, index = heapq.heappop(heap)
                heapq.heappush(heap, (due + interval * rng.uniform(0.5, 1.5), index))
                counter[0] += 1
                n = counter[0]
            while (delay := due - time.monotonic()) > 0 and not stop.is_set():
                time.sleep(min(delay, 0.2))
            if stop.is_set() or time.monotonic() > deadline:
                break
            comment_id = ids.comment(kind, n)
            raw = comment_request(port, by_index[index], comment_id, ids.commenter(kind, n))
            lag = max(0.0, time.monotonic() - due)
            sent = time.time()
            t1 = time.perf_counter()
            status = conn.request(raw)
            with lock:
                records.append((comment_id, index, sent, status, time.perf_counter() - t1, lag))
        conn.close()

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=max_seconds + 30)
    with lock:
        out.put((list(records), time.process_time()))


class QuietLoad:
    """Comments for the quiet accounts from their own client process, until stopped."""

    def __init__(
        self,
        port: int,
        accounts: list[Account],
        tag: str,
        kind: int,
        interval: float,
        max_seconds: float,
        threads: int = 4,
        seed: int = 1,
    ):
        self.stop_event = CTX.Event()
        self.out = CTX.Queue()
        self.max_seconds = max_seconds
        self.proc = CTX.Process(
            target=_quiet_client,
            args=(
                port,
                accounts,
                tag,
                kind,
                interval,
                max_seconds,
                threads,
                seed,
                self.stop_event,
                self.out,
            ),
            daemon=True,
        )
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def start(self) -> None:
        self.started_at = time.time()
        self.proc.start()

    def finish(self) -> tuple[list[QuietRecord], float]:
        """Stop sending and collect the records (bounded wait)."""
        self.stop_event.set()
        try:
            records, cpu = self.out.get(timeout=40)
        except Exception:
            records, cpu = [], 0.0
        self.kill()
        return records, cpu

    def kill(self) -> None:
        self.stop_event.set()
        if self.proc.pid is None:
            return
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=5)


# --- a light sampler of the backlog during the drain ---------------------------------------------
class BacklogSampler:
    """Every `interval` s: the viral account's deliveries by status, pending webhook events and
    the broker's queue lengths (one SQL query, one Redis pipeline). Bounded by `max_seconds`."""

    def __init__(self, dsn: str, redis_url: str, viral_account_pk: int, interval: float = 2.0):
        self.dsn, self.redis_url, self.viral = dsn, redis_url, viral_account_pk
        self.interval = interval
        self.samples: list[dict] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self, cur, rds) -> dict:
        cur.execute(
            "SELECT "
            "count(*) FILTER (WHERE status = 'queued' AND dispatched_at IS NULL), "
            "count(*) FILTER (WHERE status = 'queued' AND dispatched_at IS NOT NULL), "
            "count(*) FILTER (WHERE status = 'sending'), "
            "count(*) FILTER (WHERE status = 'sent'), "
            "count(*) FILTER (WHERE status NOT IN ('queued', 'sending', 'sent')), "
            "count(*) "
            "FROM messaging_delivery WHERE account_id = %s",
            [self.viral],
        )
        queued, dispatched, sending, sent, other, total = cur.fetchone()
        cur.execute("SELECT count(*) FROM webhooks_webhookevent WHERE state = 'pending'")
        (pending,) = cur.fetchone()
        cur.execute(
            "SELECT usage_percent FROM accounts_instagramaccount WHERE id = %s", [self.viral]
        )
        (usage,) = cur.fetchone()
        pipe = rds.pipeline(transaction=False)
        for queue in ("events", "events_bulk", "sends", "sends_bulk"):
            pipe.llen(queue)
        events, bulk, sends, sends_bulk = pipe.execute()
        sends += sends_bulk
        return {
            "t": time.time(),
            "queued": queued,
            "dispatched": dispatched,
            "sending": sending,
            "sent": sent,
            "other": other,
            "deliveries": total,
            "pending_events": pending,
            "usage_percent": usage,
            "q_events": events,
            "q_events_bulk": bulk,
            "q_sends": sends,
        }

    def _loop(self, max_seconds: float) -> None:
        import psycopg
        import redis

        deadline = time.monotonic() + max_seconds
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn, conn.cursor() as cur:
                rds = redis.Redis.from_url(self.redis_url, socket_timeout=5)
                try:
                    while time.monotonic() < deadline:
                        self.samples.append(self.sample_once(cur, rds))
                        if self._stop.wait(self.interval):
                            break
                finally:
                    rds.close()
        except Exception as exc:  # report, never break the run
            self.error = f"{type(exc).__name__}: {exc}"

    def start(self, max_seconds: float) -> None:
        self._thread = threading.Thread(
            target=self._loop, args=(max_seconds,), name="backlog", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(Exception):
                self._thread.join(timeout=10)

    def last(self) -> dict | None:
        return self.samples[-1] if self.samples else None
