"""The SQLite spool: one WAL-mode file per client per process.

The producer side (``Spool.append``) runs on application threads; the
consumer side (``read_batch``, ``ack``, ``dead_letter``) runs on the sender
thread. This package is the one place that holds SQL for spool files:
``_base`` (names, limits, errors, locking and opening files), ``_sqlite``
(the one function that opens connections, the transaction helper, error
classes), ``_open`` (a new file or an orphan, locked, its schema),
``_group_commit`` (many threads, one connection, durable before return),
``_connection`` (the write connection: appends, spool-full policy, totals,
checkpoints), ``_drops`` (deliberate losses, counted and announced),
``_mirror`` (small tables kept in memory),
``_spool`` (the open ``Spool``: reads, acks, dead letters, expiry, closing),
``_files`` (files no live client holds: status, salvage), ``_trust`` (which
directories and files the spool uses: private directories, regular files, no
symbolic links).

Files are named ``<pid>-<token>.spool`` in the spool directory. The owner holds
an exclusive ``flock`` on the file for as long as it lives, so any other
process can tell an orphan (no live lock) from a file in use, and two senders
never drain one file at once. flock, not fcntl: fcntl locks belong to the
process and are dropped when *any* descriptor of the file closes, which SQLite
itself does. https://www.sqlite.org/howtocorrupt.html#_posix_advisory_locks_canceled_by_a_separate_thread_doing_close_
"""

from ._base import (
    CHECKPOINT_EVERY,
    CHECKPOINT_ROWS,
    MIRROR_BYTES,
    NotAdoptable,
    SpoolClosed,
    SpoolError,
    UnsafeSpoolDir,
    UnsafeSpoolFile,
)
from ._files import (
    candidates,
    inspect,
    move_aside,
    owner_alive,
    read_meta,
    salvage,
    spool_files,
)
from ._spool import Spool
from ._sqlite import is_corruption
from ._trust import check_directory, private_spool_dir

__all__ = [
    "CHECKPOINT_EVERY",
    "CHECKPOINT_ROWS",
    "MIRROR_BYTES",
    "NotAdoptable",
    "Spool",
    "SpoolClosed",
    "SpoolError",
    "UnsafeSpoolDir",
    "UnsafeSpoolFile",
    "candidates",
    "check_directory",
    "inspect",
    "is_corruption",
    "move_aside",
    "owner_alive",
    "private_spool_dir",
    "read_meta",
    "salvage",
    "spool_files",
]
