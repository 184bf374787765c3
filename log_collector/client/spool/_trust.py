"""What the spool trusts on disk: a directory no other user can write, and
regular files, opened without following symbolic links.

Anyone who can write the spool directory can plant a symbolic link (or a file
of their own) under a name the client opens: its status snapshot, an orphaned
``*.spool`` it adopts, a ``-wal`` side file. Followed, the link makes the
client overwrite, or convert to WAL and fill with its tables, whatever file
it points at. So, as ssh (``StrictModes``) and gnupg do for their own
directories, a spool directory must belong to this user (or root) and be
writable by nobody else (no ``g+w`` / ``o+w``, sticky bit or not: in a sticky
directory others still create names the client might open); the client
refuses any other and spools in a private one instead. Inside it, files are
opened with ``O_NOFOLLOW``, and an orphan that is a link, not a regular file,
not this user's, or has a side file that is a link, is left untouched and
reported, never opened as a database.
https://man.openbsd.org/sshd_config#StrictModes,
https://cwe.mitre.org/data/definitions/59.html
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from pathlib import Path

from ._base import SIDE_SUFFIXES, UnsafeSpoolDir, logger


def check_directory(path: Path) -> None:
    """Make ``path`` (mode 0700) if it is missing; raise ``UnsafeSpoolDir`` unless
    it belongs to this user or root and no one else can write to it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    problem = directory_problem(path)
    if problem is not None:
        raise UnsafeSpoolDir(problem)


def directory_problem(path: Path) -> str | None:
    """Why the existing directory ``path`` is no place for spool files, or None.

    A symbolic link to a directory is followed (a cache dir on another disk is
    common): the directory it names is what is checked, owner and mode.
    """
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return f"spool directory {path}: not a directory"
    uid = os.geteuid()
    if st.st_uid not in (uid, 0):
        return f"spool directory {path}: belongs to uid {st.st_uid}, not to this user (uid {uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"spool directory {path}: other users can write to it "
            f"(mode {stat.S_IMODE(st.st_mode):o}; make it private: chmod go-w {path})"
        )
    return None


# Refused directory -> the private one used instead, so that every client of
# this process uses the same one and the warning is given once.
_INSTEAD: dict[Path, Path] = {}
_INSTEAD_LOCK = threading.Lock()


def private_spool_dir(configured: Path, service: str | None) -> Path:
    """``configured`` when it passes ``check_directory``; otherwise a private
    directory, said once on the ``log_collector`` logger: the default spool
    directory (the user's cache dir) when it is another one and passes, else a
    new ``tempfile.mkdtemp`` directory (mode 0700). Raises OSError when no
    directory can be made at all."""
    try:
        check_directory(configured)
        return configured
    except UnsafeSpoolDir as exc:
        refusal = exc
    with _INSTEAD_LOCK:
        chosen = _INSTEAD.get(configured)
        if chosen is not None:
            try:
                check_directory(chosen)
                return chosen
            except (UnsafeSpoolDir, OSError):
                pass
        from ..settings import default_spool_dir  # the one definition of the default path

        default = default_spool_dir(service, os.environ)
        chosen = None
        if default != configured:
            try:
                check_directory(default)
                chosen = default
            except (UnsafeSpoolDir, OSError):
                chosen = None
        if chosen is None:
            chosen = Path(tempfile.mkdtemp(prefix="log-collector-"))
        _INSTEAD[configured] = chosen
    logger.warning("log-collector: refusing %s; spooling in %s instead", refusal, chosen)
    return chosen


def unsafe_reason(path: Path, *, owner: int | None) -> str | None:
    """Why the spool file ``path`` must not be opened as a database, or None.

    Looked at with ``lstat`` (a link is never followed): the file and its side
    files must be regular files with one name, owned by ``owner`` (any owner
    when None).
    """
    for suffix in ("", *SIDE_SUFFIXES):
        name = f"{path}{suffix}"
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            if suffix:
                continue
            return "it vanished"
        if stat.S_ISLNK(st.st_mode):
            return f"{name} is a symbolic link"
        if not stat.S_ISREG(st.st_mode):
            return f"{name} is not a regular file"
        if st.st_nlink != 1:
            return f"{name} has {st.st_nlink} hard links"
        if owner is not None and st.st_uid != owner:
            return f"{name} belongs to uid {st.st_uid}, not to this user (uid {owner})"
    return None


# (path, reason) of unsafe orphans already reported by this process.
_REPORTED: set[tuple[Path, str]] = set()


def screen_orphan(path: Path) -> bool:
    """Whether an orphan scan may open ``path``: it and its side files are
    regular files of this user (``unsafe_reason``). One that is not is left
    untouched, not renamed (a link would be the only thing renamed, but the
    file may be another user's live spool) and reported once per process."""
    why = unsafe_reason(path, owner=os.geteuid())
    if why is None:
        return True
    if (path, why) not in _REPORTED:
        _REPORTED.add((path, why))
        logger.warning(
            "log-collector: not adopting %s: %s; left untouched (replay it by hand once "
            "you trust it: log-collector replay PATH)",
            path,
            why,
        )
    return False
