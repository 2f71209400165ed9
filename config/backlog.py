"""Worker slots kept free of backlog work, so a quiet account's comment always finds one.

Backlog work is what a flooded account queues: its events (the ``events_bulk`` queue) and
its sends while it has a backlog of them (``sends_bulk``). Workers take those queues last,
but a slot already running a backlog task is not free until the task ends, and with every
slot busy on backlog a quiet comment waits for one. So each worker node lets at most its
concurrency minus ``BACKLOG_RESERVED_SLOTS`` backlog tasks run at once; a backlog task that
finds no backlog slot within ``BACKLOG_WAIT_SECONDS`` goes back to its queue for
``BACKLOG_RETRY_SECONDS``.

The slots are lock files taken with ``flock``: a process that dies (SIGKILL, out of memory)
releases its slot with it, so no count can leak.
"""

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings

BACKLOG_QUEUES = frozenset({"events_bulk", "sends_bulk"})
_SLOTS = "INSTADM_BACKLOG_SLOTS"
_DIRECTORY = "INSTADM_BACKLOG_DIR"


def configure(*, concurrency: int, reserved: int) -> None:
    """In a worker node's main process, before its pool starts: the node's backlog slots,
    inherited by its pool processes."""
    os.environ[_SLOTS] = str(max(1, concurrency - reserved))
    os.environ[_DIRECTORY] = tempfile.mkdtemp(prefix="instadm-backlog-")


def is_backlog(delivery_info: dict | None) -> bool:
    return (delivery_info or {}).get("routing_key") in BACKLOG_QUEUES


def _take(directory: str, slots: int) -> int | None:
    for number in range(slots):
        # Opened afresh each time: a lock belongs to an open file, so two holders in one
        # process (a thread pool) exclude each other as two processes do.
        handle = os.open(os.path.join(directory, f"slot-{number}"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        return handle
    return None


@contextmanager
def backlog_slot(wait: float = 0.0) -> Iterator[bool]:
    """True while holding one of the node's backlog slots; False when all stayed taken for
    ``wait`` seconds (backlog tasks end every few tens of milliseconds, so a short wait
    usually finds one: sending the task back at once would make the free slot spin through
    the backlog). Outside a configured worker (tests, eager tasks) there is no limit."""
    slots, directory = int(os.environ.get(_SLOTS) or 0), os.environ.get(_DIRECTORY)
    if not slots or not directory or not os.path.isdir(directory):
        yield True
        return
    deadline = time.monotonic() + wait
    handle = _take(directory, slots)
    while handle is None and time.monotonic() < deadline:
        time.sleep(0.005)
        handle = _take(directory, slots)
    if handle is None:
        yield False
        return
    try:
        yield True
    finally:
        os.close(handle)  # releases the lock


def run_task(task, work: Callable[..., None], *args) -> None:
    """A task's body: ``work(*args)``, run at once, or for a backlog task (by the queue it
    came from) only in one of the node's backlog slots; with none free after
    ``BACKLOG_WAIT_SECONDS`` the task goes back to its queue for ``BACKLOG_RETRY_SECONDS``,
    leaving the slot to quiet work."""
    delivery_info = task.request.delivery_info
    if not is_backlog(delivery_info):
        work(*args)
        return
    with backlog_slot(wait=settings.BACKLOG_WAIT_SECONDS) as slot:
        if slot:
            work(*args)
        else:
            task.apply_async(
                args,
                queue=delivery_info["routing_key"],
                countdown=settings.BACKLOG_RETRY_SECONDS,
            )
