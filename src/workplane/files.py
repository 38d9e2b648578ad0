"""Files in the data directory, readable by their owner only.

The data directory holds the SQLite store, the token signing keys and access-key secrets: on a shared
machine none of it is anyone else's business. The directory is made 0700 and every file in it 0600,
whatever the process's umask says.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# SQLite's companions of a database file. SQLite creates them with the main file's mode, so a private
# database file keeps them private; ones left by an older version are tightened with it.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create ``path`` as 0700 (missing parents with the default mode). An existing directory is
    left as its owner made it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _tighten(path: Path) -> None:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)


def write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` to ``path``, mode 0600 from the moment the file exists (no window in which
    another user could open it). ``exclusive``: fail if the file exists."""
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        handle.write(text)


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite database file 0600 before SQLite opens it (SQLite would create it with the
    umask's 0644), and tighten an existing one and its companions."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    _tighten(path)
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion)
