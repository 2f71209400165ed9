"""The embedded broker: kombu's filesystem transport, made safe for several processes.

Web, worker and beat share one folder. Stock kombu (kombu issue 1551) writes a message in
place, so the worker can take a file another process is still writing and die on
``JSONDecodeError``; it also rewrites an exchange table on every queue bind, which a
concurrent reader can see empty. Here a message is written to a staging folder and renamed
into the queue folder only once complete (a rename is atomic on one file system), a reader
claims a message by renaming it into its own folder (a file two readers race for goes to
one of them), and there is no fanout, so no shared exchange table: remote control, mingle
and gossip need fanout and are off on this broker (settings).

Chosen by measurement over stock kombu and its SQLAlchemy transport on SQLite
(``bench/broker.py``, docs/performance.md "Embedded broker").
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property


class Channel(filesystem.Channel):
    # Direct exchanges only: bindings then live in memory, nothing shared is rewritten.
    supports_fanout = False

    def get_table(self, exchange):
        # Bindings in this process's memory (kombu's virtual default): every publisher
        # declares its queue first (Celery does), so no table file is shared and rewritten.
        return virtual.Channel.get_table(self, exchange)

    @cached_property
    def staging_folder(self) -> Path:
        folder = Path(self.data_folder_out).parent / "staging"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @cached_property
    def claim_folder(self) -> Path:
        # One per process: what a process claimed is its own until it has read it.
        claims = Path(self.data_folder_in).parent / "claimed"
        folder = claims / str(os.getpid())
        folder.mkdir(parents=True, exist_ok=True)
        _return_orphaned_claims(claims, Path(self.data_folder_in))
        return folder

    def _put(self, queue, payload, **kwargs) -> None:
        # The name sorts by time, like kombu's, so queues stay first in, first out.
        name = f"{round(monotonic() * 1000):015d}_{uuid.uuid4()}.{queue}.msg"
        staged = self.staging_folder / name
        try:
            staged.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(staged, Path(self.data_folder_out) / name)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise ChannelError(f"Cannot add message {name!r} to the broker folder") from exc

    def _get(self, queue):
        suffix = f".{queue}.msg"
        folder = Path(self.data_folder_in)
        claims = self.claim_folder  # the first time, what dead readers claimed comes back
        for name in sorted(n for n in os.listdir(folder) if n.endswith(suffix)):
            claimed = claims / name
            try:
                os.rename(folder / name, claimed)
            except FileNotFoundError:
                continue  # another reader took it first
            try:
                payload = claimed.read_bytes()
            finally:
                claimed.unlink(missing_ok=True)
            return loads(bytes_to_str(payload))
        raise Empty()

    def _size(self, queue) -> int:
        suffix = f".{queue}.msg"
        return sum(1 for name in os.listdir(self.data_folder_in) if name.endswith(suffix))

    def _purge(self, queue) -> int:
        suffix = f".{queue}.msg"
        count = 0
        for name in os.listdir(self.data_folder_in):
            if name.endswith(suffix):
                try:
                    os.remove(Path(self.data_folder_in) / name)
                    count += 1
                except FileNotFoundError:
                    pass
        return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _return_orphaned_claims(claims: Path, queue_folder: Path) -> None:
    """Messages a killed process had claimed but not read go back to their queue."""
    for folder in claims.iterdir():
        if not folder.name.isdigit() or _alive(int(folder.name)):
            continue
        for message in folder.iterdir():
            with contextlib.suppress(OSError):
                os.replace(message, queue_folder / message.name)
        with contextlib.suppress(OSError):
            folder.rmdir()


class Transport(filesystem.Transport):
    Channel = Channel
    implements = filesystem.Transport.implements.extend(exchange_type=frozenset(["direct"]))
