"""The embedded broker (config/broker.py): several processes publishing while one consumes
lose nothing and break nothing (kombu issue 1551 stopped the demo's worker on a half-written
file). Figures against the stock transport: bench/broker.py, docs/performance.md."""

import contextlib
import multiprocessing
import time
from pathlib import Path

from kombu import Connection, Exchange, Queue

QUEUE = Queue("work", Exchange("work", type="direct"), routing_key="work")


def connect(folder: Path) -> Connection:
    options = {
        "data_folder_in": str(folder / "queues"),
        "data_folder_out": str(folder / "queues"),
        "polling_interval": 0.01,
    }
    (folder / "queues").mkdir(exist_ok=True)
    return Connection(
        "filesystem://", transport="config.broker:Transport", transport_options=options
    )


def publish(folder: str, publisher: int, count: int) -> None:
    with connect(Path(folder)) as connection:
        producer = connection.Producer(serializer="json")
        for n in range(count):
            producer.publish(
                {"id": f"{publisher}-{n}", "pad": "x" * 1500},
                exchange=QUEUE.exchange,
                routing_key="work",
                declare=[QUEUE],
            )


def consume(folder: Path, expected: int, timeout: float = 60.0) -> list[str]:
    seen: list[str] = []

    def on_message(body, message) -> None:
        seen.append(body["id"])
        message.ack()

    deadline = time.monotonic() + timeout
    with connect(folder) as connection, connection.Consumer(QUEUE, callbacks=[on_message]):
        while len(seen) < expected and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=0.5)
    return seen


def test_concurrent_publishers_and_a_consumer_lose_and_double_nothing(tmp_path):
    publishers = [
        multiprocessing.Process(target=publish, args=(str(tmp_path), p, 400)) for p in range(3)
    ]
    for process in publishers:
        process.start()
    seen = consume(tmp_path, expected=1200)
    for process in publishers:
        process.join(30)
        assert process.exitcode == 0

    assert len(seen) == 1200
    assert len(set(seen)) == 1200
    assert list((tmp_path / "queues").iterdir()) == []
    assert list((tmp_path / "staging").iterdir()) == []


def test_a_message_a_killed_reader_had_claimed_goes_back_to_its_queue(tmp_path):
    publish(str(tmp_path), 0, 1)
    (message,) = (tmp_path / "queues").iterdir()
    dead = tmp_path / "claimed" / "999999999"  # no such process
    dead.mkdir(parents=True)
    message.rename(dead / message.name)

    assert consume(tmp_path, expected=1, timeout=5) == ["0-0"]
    assert not dead.exists()
