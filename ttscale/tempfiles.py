"""ttscale's temporary files: named so that a killed process's leftovers can be found and removed.

Each temporary directory (or file) ttscale creates is named ``ttscale-<kind>-<pid>-<random>``,
e.g. ``tempfile.TemporaryDirectory(prefix=prefix("ingest"))``. Python removes it on a normal exit
and on exceptions, but a SIGKILL (or an OOM kill) leaves it behind; ``stale_cleanup()``, called
when a batch starts, removes those whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "ttscale-"
"""Every ttscale temporary name starts with this."""

STALE_AFTER_S = 3600.0
"""A leftover is removed only when untouched this long, as well as its process being gone."""

_NAME = re.compile(rf"^{re.escape(PREFIX)}[a-z][a-z0-9]*-(?P<pid>[0-9]+)-")


def prefix(kind: str) -> str:
    """``ttscale-<kind>-<pid>-``: the ``prefix=`` for this process's temporary directory."""
    if not re.fullmatch(r"[a-z][a-z0-9]*", kind):
        raise ValueError(f"a temporary kind is lowercase letters and digits, not {kind!r}")
    return f"{PREFIX}{kind}-{os.getpid()}-"


def owner_pid(name: str) -> int | None:
    """The pid in a ttscale temporary name, or None for any other name."""
    match = _NAME.match(name)
    return int(match["pid"]) if match else None


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _last_modified(path: Path, mtime: float) -> float:
    """The newest modification time of ``path`` and of everything under it.

    Appending to a file leaves its folder's time as it was, so the folder's time alone misleads.
    """
    if not path.is_dir() or path.is_symlink():
        return mtime
    for folder, _, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            mtime = max(mtime, os.lstat(name).st_mtime)
    return mtime


def stale_cleanup(
    root: Path | str | None = None, max_age_s: float = STALE_AFTER_S, now: float | None = None
) -> list[Path]:
    """Remove ttscale temporaries under ``root`` (the temp dir) left by processes that are gone.

    One is removed when all of these hold: its name carries a pid (``prefix()``), no process with
    that pid exists, it belongs to this user, and nothing in it has been modified for
    ``max_age_s``. A pid only means something on this host and in this pid namespace; the age is
    what keeps a temp dir shared with other containers safe, so keep it generous. A reused pid
    only keeps a leftover a while longer. Names without a pid (from older versions) are left
    alone. Returns what was removed; errors (say, a race with another cleanup) skip that one.
    """
    folder = Path(root) if root is not None else Path(tempfile.gettempdir())
    now = time.time() if now is None else now
    uid = os.getuid() if hasattr(os, "getuid") else None
    removed: list[Path] = []
    try:
        entries = list(folder.glob(f"{PREFIX}*"))
    except OSError:
        return removed
    for path in entries:
        pid = owner_pid(path.name)
        if pid is None or pid == os.getpid() or process_alive(pid):
            continue
        try:
            info = path.lstat()
            if uid is not None and info.st_uid != uid:
                continue
            if now - _last_modified(path, info.st_mtime) < max_age_s:
                continue
        except OSError:
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed
