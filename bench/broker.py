"""Which embedded broker survives several processes writing at once? (docs/performance.md)

    .venv/bin/python bench/broker.py [--seconds 60] [--publishers 3] [--rate 200]

For each candidate transport, `--publishers` processes (like gunicorn's workers and beat)
publish Celery-sized JSON messages to one queue at `--rate` messages/s each, while one
consumer process (like the Celery worker) drains it. Every message carries an id and its
send time. Reported per transport: messages published, consumed, lost, consumed twice,
consumer errors (each one is what stopped the demo's Celery worker: an exception out of
drain_events), and the delivery delay. Candidates: kombu's stock filesystem transport as the
demo used it, the project's (config/broker.py: atomic writes and claims), and kombu's
SQLAlchemy transport on SQLite when SQLAlchemy is installed (it is not a dependency).
Nothing here needs a server; each run uses a fresh temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PADDING = "x" * 1500  # a Celery task message is 1-2 KB of JSON


def _connection(kind: str, folder: Path):
    from kombu import Connection

    if kind == "stock-filesystem":
        options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
        return Connection("filesystem://", transport_options=options)
    if kind == "atomic-filesystem":
        (folder / "queues").mkdir(exist_ok=True)
        options = {
            "data_folder_in": str(folder / "queues"),
            "data_folder_out": str(folder / "queues"),
            "polling_interval": 0.05,
        }
        return Connection(
            "filesystem://", transport="config.broker:Transport", transport_options=options
        )
    if kind == "sqlalchemy-sqlite":
        # Its transport options all go to create_engine(), so polling_interval cannot be
        # set: it polls at kombu's default of once a second.
        return Connection(f"sqla+sqlite:///{folder / 'broker.sqlite3'}")
    raise ValueError(kind)


def _queue():
    from kombu import Exchange, Queue

    return Queue("bench", Exchange("bench", type="direct"), routing_key="bench")


def _publisher(kind: str, folder: str, index: int, rate: float, seconds: float, out) -> None:
    errors = published = 0
    with _connection(kind, Path(folder)) as connection:
        producer = connection.Producer(serializer="json")
        queue = _queue()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            message = {"id": f"{index}-{published}", "sent": time.time(), "pad": PADDING}
            try:
                producer.publish(
                    message, exchange=queue.exchange, routing_key="bench", declare=[queue]
                )
                published += 1
            except Exception:
                errors += 1
            delay = started + published / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    out.put(("published", index, published, errors))


def _consumer(kind: str, folder: str, seconds: float, out) -> None:
    seen: dict[str, int] = {}
    delays: list[float] = []
    errors: list[str] = []

    def on_message(body, message) -> None:
        seen[body["id"]] = seen.get(body["id"], 0) + 1
        delays.append(time.time() - body["sent"])
        message.ack()

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with (
                _connection(kind, Path(folder)) as connection,
                connection.Consumer(_queue(), callbacks=[on_message], accept=["json"]),
            ):
                while time.monotonic() < deadline:
                    with contextlib.suppress(socket.timeout, TimeoutError):
                        connection.drain_events(timeout=0.5)
        except Exception as exc:
            # Celery's worker stops on this ("Unrecoverable error"); here we count and go on.
            errors.append(f"{type(exc).__name__}: {exc}"[:120])
    out.put(("consumed", seen, delays, errors))


def run(kind: str, publishers: int, rate: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"broker-{kind}-") as folder:
        out = mp.Queue()
        consumer = mp.Process(target=_consumer, args=(kind, folder, seconds + 10, out))
        consumer.start()
        time.sleep(1)
        procs = [
            mp.Process(target=_publisher, args=(kind, folder, i, rate, seconds, out))
            for i in range(publishers)
        ]
        cpu0 = os.times()
        for proc in procs:
            proc.start()
        results = [out.get(timeout=seconds + 120) for _ in range(publishers + 1)]
        for proc in [*procs, consumer]:
            proc.join(30)
        cpu1 = os.times()
    published = sum(r[2] for r in results if r[0] == "published")
    publish_errors = sum(r[3] for r in results if r[0] == "published")
    (_, seen, delays, errors) = next(r for r in results if r[0] == "consumed")
    delays.sort()
    return {
        "kind": kind,
        "published": published,
        "publish_errors": publish_errors,
        "consumed": len(seen),
        "lost": published - len(seen),
        "twice": sum(1 for n in seen.values() if n > 1),
        "consumer_errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "delay_p50_ms": statistics.median(delays) * 1000 if delays else None,
        "delay_p99_ms": delays[int(len(delays) * 0.99) - 1] * 1000 if delays else None,
        "child_cpu_s": (cpu1.children_user + cpu1.children_system)
        - (cpu0.children_user + cpu0.children_system),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200, help="messages/s per publisher")
    parser.add_argument("--only", help="comma-separated transports to run")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    kinds = ["stock-filesystem", "atomic-filesystem"]
    try:
        import sqlalchemy  # noqa: F401

        kinds.append("sqlalchemy-sqlite")
    except ImportError:
        print("SQLAlchemy is not installed: its transport is left out.")
    if args.only:
        kinds = [k for k in kinds if k in args.only.split(",")]
    print(
        f"{args.publishers} publishers x {args.rate:g} msg/s for {args.seconds:g} s, "
        "one consumer; messages of ~1.6 KB JSON"
    )
    header = (
        "| transport | published | consumed | lost | twice | consumer errors "
        "| delay p50 / p99 | CPU (all processes) |"
    )
    rows = []
    for kind in kinds:
        result = run(kind, args.publishers, args.rate, args.seconds)
        delay = (
            f"{result['delay_p50_ms']:.0f} / {result['delay_p99_ms']:.0f} ms"
            if result["delay_p50_ms"] is not None
            else "-"
        )
        rows.append(
            f"| {kind} | {result['published']} | {result['consumed']} | {result['lost']} "
            f"| {result['twice']} | {result['consumer_errors']} | {delay} "
            f"| {result['child_cpu_s']:.1f} s |"
        )
        if result["first_errors"]:
            print(f"{kind}: consumer errors, e.g. {result['first_errors']}")
        if result["publish_errors"]:
            print(f"{kind}: {result['publish_errors']} publish errors")
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
