"""The whole product in real processes, for fault tests.

gunicorn (web), a Celery worker, Celery beat and the Graph API stand-in run as subprocesses
with their own environment (production settings: DEBUG off), on a private PostgreSQL database
and a Redis broker. The test drives the stack over HTTP like Meta would, reads the outcome
straight from PostgreSQL, and breaks things: kills the worker, stops Redis, makes the
stand-in fail. Every wait is bounded, and a failed wait shows the tail of every process log.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
import requests
from psycopg.rows import dict_row

from meta.samples import comment_body, message_body, signed
from meta.standin import StandInControl
from tests.e2e.processes import BASE_DIR, VENV_BIN, Process, free_port, worker_command

FINAL = ("sent", "failed", "skipped", "unknown")
APP_SECRET = "faults-app-secret"
LOG_TAIL_CHARS = 4000
WORKER_APPLICATION_NAME = "instadm-e2e-worker"

# Whatever the test runner was given must not leak into the stack's processes.
_DROPPED_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "VAR_DIR",
    "DJANGO_SETTINGS_MODULE",
)


def postgres_server_url() -> str:
    """The PostgreSQL server the suite uses (bin/test's DATABASE_URL), without a database."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(url)
    return f"postgresql://{parts.netloc}"


class Database:
    """A fresh, empty PostgreSQL database, dropped (connections and all) afterwards."""

    def __init__(self, prefix: str = "instadm_faults") -> None:
        self.server = postgres_server_url()
        self.name = f"{prefix}_{secrets.token_hex(4)}"
        self.url = f"{self.server.replace('postgresql://', 'postgres://')}/{self.name}"
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                f"{self.server}/{self.name}", autocommit=True, row_factory=dict_row
            )
        return self._conn

    def rows(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        return self.conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class RedisServer:
    """A private redis-server (no persistence) that a test may stop and start again."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.url = f"redis://127.0.0.1:{self.port}"
        self.processes: list[Process] = []

    def start(self) -> None:
        process = Process(
            f"redis-{len(self.processes) + 1}",
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            dict(os.environ),
            self.log_dir,
        )
        self.processes.append(process)
        process.wait_for_output("Ready to accept connections", timeout=15)

    def stop(self) -> None:
        """Shut it down (SIGTERM); without persistence every queued message is gone."""
        for process in self.processes:
            process.stop()


@dataclass
class Account:
    pk: int
    username: str
    ig_user_id: str
    page_id: str


@dataclass
class Comment:
    account: Account
    comment_id: str
    from_id: str
    username: str

    def body(self) -> dict:
        return comment_body(
            account_id=self.account.ig_user_id,
            text="guide please!",
            from_id=self.from_id,
            from_username=self.username,
            comment_id=self.comment_id,
        )


@dataclass
class Post:
    comment_ids: str
    status: int | None
    seconds: float
    error: str = ""


def _random_digits(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice("0123456789") for _ in range(length - len(prefix)))


class Stack:
    """web + worker + beat + stand-in on one database and one broker."""

    def __init__(
        self,
        database: Database,
        log_dir: Path,
        *,
        broker_url: str,
        redis_url: str,
        env: dict[str, str] | None = None,
        redis_server: RedisServer | None = None,
    ) -> None:
        self.database = database
        self.redis_server = redis_server
        self.log_dir = log_dir
        self.broker_url = broker_url
        self.redis_url = redis_url
        self.standin_port = free_port()
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.standin_url = f"http://127.0.0.1:{self.standin_port}"
        self.env = stack_env(
            database_url=database.url,
            broker_url=broker_url,
            redis_url=redis_url,
            var_dir=log_dir / "var",
            standin_url=self.standin_url,
            extra=env,
        )
        self.processes: dict[str, Process] = {}
        self.retired: list[Process] = []  # killed or replaced, kept for their logs
        self.control = StandInControl(self.standin_url)
        self.http = requests.Session()
        self.posts: list[Post] = []
        self._workers_started = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Stack:
        python = str(VENV_BIN / "python")
        self.processes["standin"] = Process(
            "standin",
            [python, "-m", "meta.standin", "--host", "127.0.0.1", "--port", str(self.standin_port)],
            self.env,
            self.log_dir,
        )
        self.processes["web"] = Process(
            "web",
            [
                str(VENV_BIN / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
                "--log-level",
                "info",
            ],
            self.env,
            self.log_dir,
        )
        self.processes["beat"] = Process(
            "beat",
            [str(VENV_BIN / "celery"), "-A", "config", "beat", "--loglevel=info"],
            self.env,
            self.log_dir,
        )
        self.start_worker()
        self.processes["standin"].wait_for_output("listening on", timeout=30)
        self.processes["beat"].wait_for_output("beat: Starting", timeout=30)
        self.wait(self._web_answers, 30, "gunicorn to answer /livez/")
        return self

    def _web_answers(self) -> bool:
        try:
            return self.http.get(f"{self.web_url}/livez/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_worker(self, concurrency: int = 2) -> Process:
        """`celery -A config worker` as tests.e2e.processes.start_worker runs it.

        Registered before waiting for it, so a worker that never gets ready is still stopped.
        """
        self._workers_started += 1
        log_dir = self.log_dir / f"worker-{self._workers_started}"
        log_dir.mkdir()
        worker = Process(
            "worker",
            worker_command(concurrency),
            {**self.env, "DATABASE_URL": self._worker_database_url()},
            log_dir,
        )
        self.processes["worker"] = worker
        worker.wait_for_output("ready.", timeout=60)
        return worker

    def _worker_database_url(self) -> str:
        """The worker's sessions are named, so a test can tell when the last one has ended."""
        separator = "&" if "?" in self.database.url else "?"
        return f"{self.database.url}{separator}application_name={WORKER_APPLICATION_NAME}"

    def kill_worker(self) -> None:
        """SIGKILL the worker's whole process group (parent and pool children) at once.

        Returns once PostgreSQL has ended the dead worker's sessions: a COMMIT the worker sent
        just before dying may still be applied by its server process, and only after that is
        what the worker left behind (say, an attempt marked in flight) settled for the test to read.
        """
        worker = self.processes.pop("worker")
        worker.kill(signal.SIGKILL)
        worker.popen.wait(10)
        worker.stop()  # closes the log
        self.retired.append(worker)
        self.wait(
            lambda: not self._worker_sessions(),
            10,
            "the killed worker's database sessions to end",
        )

    def _worker_sessions(self) -> list[dict[str, Any]]:
        return self.database.rows(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            [self.database.name, WORKER_APPLICATION_NAME],
        )

    def stop(self) -> None:
        for name in ("beat", "worker", "web", "standin"):
            process = self.processes.pop(name, None)
            if process is not None:
                try:
                    process.stop()
                except Exception:  # keep stopping the others
                    process.kill(signal.SIGKILL)
                self.retired.append(process)
        self.control.close()
        self.http.close()

    # --- setup through the product's own commands ----------------------------------------------
    def manage(self, *args: str, stdin: str | None = None) -> str:
        return manage(self.env, *args, stdin=stdin)

    def connect_account(self, username: str) -> Account:
        """A connected account (Facebook Login, sending as its page) with a "guide" trigger."""
        ig_user_id = _random_digits("1784", 17)
        page_id = _random_digits("1000", 15)
        token = f"EAAfaults{secrets.token_hex(8)}"
        self.manage(
            "connect_account",
            "--workspace",
            "Fault tests",
            "--ig-user-id",
            ig_user_id,
            "--username",
            username,
            "--access-token",
            token,
            "--page-id",
            page_id,
        )
        # Meta knows whose token it is: our messages and replies show this account as sender.
        self.control.register_account(token, ig_user_id, username=username)
        triggers = {
            "triggers": [
                {
                    "account": username,
                    "name": "Guide giveaway",
                    "event": "comment",
                    "match": "contains",
                    "keywords": ["guide"],
                    "media_ids": [],
                    "public_replies": ["Sent! Check your DMs"],
                    "messages": [{"text": "Here is the guide: https://example.com/guide"}],
                    "enabled": True,
                    "priority": 0,
                }
            ]
        }
        self.manage("import_triggers", "-", stdin=json.dumps(triggers))
        (row,) = self.database.rows(
            "SELECT id FROM accounts_instagramaccount WHERE ig_user_id = %s", [ig_user_id]
        )
        return Account(row["id"], username, ig_user_id, page_id)

    def comments(self, account: Account, count: int) -> list[Comment]:
        """Distinct comments from distinct people, registered with the stand-in."""
        made = []
        for _ in range(count):
            comment = Comment(
                account=account,
                comment_id=_random_digits("178", 17),
                from_id=_random_digits("9", 16),
                username=f"fan_{secrets.token_hex(3)}",
            )
            self.control.register_comment(comment.comment_id, comment.from_id)
            made.append(comment)
        return made

    # --- driving it --------------------------------------------------------------------------
    def post(self, comment: Comment, timeout: float = 20) -> Post:
        """Deliver one signed comment webhook to the web process, like Meta does."""
        return self._post_body(comment.body(), comment.comment_id, timeout)

    def post_batch(self, comments: list[Comment], timeout: float = 20) -> Post:
        """One webhook carrying several comments (Meta batches entries)."""
        body = {"object": "instagram", "entry": [c.body()["entry"][0] for c in comments]}
        return self._post_body(body, ",".join(c.comment_id for c in comments), timeout)

    def _post_body(self, body: dict, label: str, timeout: float) -> Post:
        raw, headers = signed(body, APP_SECRET)
        started = time.monotonic()
        try:
            response = self.http.post(
                f"{self.web_url}/webhooks/instagram/", data=raw, headers=headers, timeout=timeout
            )
            post = Post(label, response.status_code, time.monotonic() - started)
        except requests.RequestException as exc:
            post = Post(label, None, time.monotonic() - started, repr(exc))
        self.posts.append(post)
        return post

    def post_message(self, account: Account, person: str, text: str) -> Post:
        """A person writes to the account: at Meta (their conversation now exists), then the
        messaging webhook Meta sends."""
        self.control.person_wrote(account.page_id, person, text)
        body = message_body(account_id=account.ig_user_id, sender_id=person, text=text)
        return self._post_body(body, f"dm:{person}", timeout=20)

    def post_all(self, comments: list[Comment]) -> list[Post]:
        return [self.post(comment) for comment in comments]

    # --- reading the outcome -------------------------------------------------------------------
    def deliveries(self, account: Account) -> list[dict[str, Any]]:
        return self.database.rows(
            "SELECT * FROM messaging_delivery WHERE account_id = %s ORDER BY id", [account.pk]
        )

    def attempts(self, delivery_id: int) -> list[dict[str, Any]]:
        return self.database.rows(
            "SELECT * FROM messaging_deliveryattempt WHERE delivery_id = %s ORDER BY number, id",
            [delivery_id],
        )

    def events(self, account: Account) -> list[dict[str, Any]]:
        return self.database.rows(
            "SELECT id, state, error, processing_attempts FROM webhooks_webhookevent "
            "WHERE raw_body LIKE %s ORDER BY id",
            [f'%"id":"{account.ig_user_id}"%'],
        )

    def wait_settled(
        self, accounts: list[Account], expected: int, timeout: float
    ) -> list[dict[str, Any]]:
        """Every event processed and `expected` deliveries, all in a final state."""

        def settled() -> list[dict[str, Any]] | None:
            events = [event for account in accounts for event in self.events(account)]
            if any(event["state"] == "pending" for event in events):
                return None
            rows = [row for account in accounts for row in self.deliveries(account)]
            if len(rows) < expected or any(row["status"] not in FINAL for row in rows):
                return None
            return rows

        return self.wait(settled, timeout, f"{expected} deliveries in a final state")

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Like processes.wait_until, but a timeout fails the test with the whole story."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            dead = self.exited()
            if dead:
                pytest.fail(f"{dead} exited while waiting for {what}\n{self.report()}")
            if time.monotonic() >= deadline:
                pytest.fail(f"Timed out after {timeout}s waiting for {what}\n{self.report()}")
            time.sleep(0.1)

    def exited(self) -> str:
        """Processes of the stack that died on their own (nobody restarts them here)."""
        return ", ".join(
            f"{name} (exit code {process.popen.returncode})"
            for name, process in self.processes.items()
            if process.popen.poll() is not None
        )

    # --- the stand-in's view -------------------------------------------------------------------
    def side_effects(self, endpoint: str) -> Counter:
        """Per comment: requests of `endpoint` that Meta acted on (answered 200, or dropped)."""
        counts: Counter = Counter()
        for entry in self.control.requests(endpoint=endpoint):
            if entry["status"] is not None and entry["status"] >= 400:
                continue  # Meta refused: nothing happened
            counts[comment_of(entry)] += 1
        return counts

    def requests_per_comment(self, endpoint: str) -> Counter:
        return Counter(comment_of(entry) for entry in self.control.requests(endpoint=endpoint))

    def assert_nobody_messaged_twice(self) -> None:
        """The stand-in's log: no comment answered or messaged twice, no person twice."""
        report = self.report
        stats = self.control.stats()
        assert stats["duplicates"] == {"private_replies": 0, "send_messages": 0}, report()
        for endpoint in ("private_reply", "comment_reply"):
            twice = {c: n for c, n in self.side_effects(endpoint).items() if n > 1}
            assert not twice, f"{endpoint} acted on twice for {twice}\n{report()}"
        people = Counter(
            (entry["response"] or {}).get("recipient_id")
            for entry in self.control.requests(endpoint="private_reply")
            if entry["status"] == 200
        )
        assert all(n == 1 for n in people.values()), f"a person messaged twice: {people}"
        assert not self.control.requests(endpoint="send_message"), report()

    # --- diagnostics ---------------------------------------------------------------------------
    def report(self) -> str:
        """What a person debugging a failure wants: DB state, the stand-in, every log's tail."""
        parts = []
        try:
            summary = self.database.rows(
                "SELECT account_id, kind, status, reason, attempts, count(*) AS n "
                "FROM messaging_delivery GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3"
            )
            parts.append("deliveries: " + json.dumps(summary, default=str))
            stuck = self.database.rows(
                "SELECT id, kind, comment_id, status, attempts, dispatched_at, "
                "sending_started_at, next_attempt_at, detail FROM messaging_delivery "
                "WHERE status NOT IN ('sent', 'failed', 'skipped', 'unknown') ORDER BY id"
            )
            parts.append("not final: " + json.dumps(stuck, default=str))
            events = self.database.rows(
                "SELECT state, count(*) AS n FROM webhooks_webhookevent GROUP BY state"
            )
            parts.append("events: " + json.dumps(events, default=str))
            accounts = self.database.rows(
                "SELECT id, username, status, paused_until, pause_reason "
                "FROM accounts_instagramaccount ORDER BY id"
            )
            parts.append("accounts: " + json.dumps(accounts, default=str))
        except Exception as exc:  # a report must not hide the real failure
            parts.append(f"(database unreadable: {exc!r})")
        try:
            parts.append("stand-in stats: " + json.dumps(self.control.stats()))
        except Exception as exc:
            parts.append(f"(stand-in unreadable: {exc!r})")
        slow = [post for post in self.posts if post.status != 200 or post.seconds > 2]
        parts.append(f"webhook posts: {len(self.posts)}, not 200 or slow: {slow}")
        redis_processes = self.redis_server.processes if self.redis_server else []
        for process in [*redis_processes, *self.retired, *self.processes.values()]:
            code = process.popen.poll()
            state = "running" if code is None else f"exit code {code}"
            tail = process.output()[-LOG_TAIL_CHARS:]
            parts.append(f"----- {process.log_path} ({state}; tail) -----\n{tail}")
        return "\n".join(parts)


def comment_of(entry: dict[str, Any]) -> str:
    if entry["endpoint"] == "comment_reply":
        return entry["node"]
    return ((entry.get("body") or {}).get("recipient") or {}).get("comment_id", "")


def stack_env(
    *,
    database_url: str,
    broker_url: str,
    redis_url: str,
    var_dir: Path,
    standin_url: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Production-style settings (DEBUG off, every secret set) and short fault timings."""
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED_VARIABLES}
    env = {key: value for key, value in env.items() if not key.startswith(("META_", "CELERY_"))}
    env.update(
        DEBUG="off",
        SECRET_KEY="faults-" + secrets.token_hex(16),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="off",
        META_APP_ID="faults-app",
        META_APP_SECRET=APP_SECRET,
        META_VERIFY_TOKEN="faults-verify",
        TOKEN_ENCRYPTION_KEY="faults-token-key",
        EMAIL_URL="dummymail://",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        REDIS_URL=redis_url,
        VAR_DIR=str(var_dir),
        META_GRAPH_URL=f"{standin_url}/v24.0",
        META_INSTAGRAM_GRAPH_URL=f"{standin_url}/v24.0",
        META_CONNECT_TIMEOUT="1",
        META_READ_TIMEOUT="1",
        # Above connect + read timeouts, so only a dead worker leaves a send this old.
        STALE_SENDING_SECONDS="4",
        PENDING_EVENT_GRACE_SECONDS="1",
        SWEEP_INTERVAL_SECONDS="1",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    env.update(extra or {})
    return env


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run a management command the way an operator would; fail the test if it fails."""
    completed = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, (
        f"manage.py {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}"
    )
    return completed.stdout


def flush_redis(*urls: str) -> None:
    """Empty the given Redis databases (a dedicated broker and shared-state number)."""
    for url in urls:
        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            client.flushdb()
        finally:
            client.close()
