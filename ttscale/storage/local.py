"""A local directory as an object store (atomic writes, create-only by hard link)."""

import os
import secrets
from pathlib import Path

from ttscale.errors import (
    ConfigError,
    ObjectExistsError,
    StorageError,
)
from ttscale.storage.base import StorageNotFoundError


def _create_temp(directory: Path) -> tuple[int, str]:
    """A new, empty temporary file in ``directory`` opened for writing: (fd, path).

    Created with mode 0666 minus the umask, like ``open()`` would (``tempfile.mkstemp`` makes
    0600 files, which other users and containers then cannot read).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(directory / f".tmp-{secrets.token_hex(8)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise StorageError(f"cannot create a temporary file in {directory}")  # pragma: no cover


class LocalStore:
    """A directory as an object store. Writes are atomic (temp file, then link or rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Resolved once: resolving walks every component, and a run's ingest resolves a key per
        # part object (tens of thousands).
        self._resolved_root = root.resolve()
        self._listed: dict[str, str] = {}
        """The files of the last ``list``, by key."""

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self._resolved_root):
            raise ConfigError(f"key {key!r} escapes the store root {self.root}")
        return path

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageNotFoundError(f"no object {self.uri(key)}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.uri(key)}: {exc.strerror or exc}") from None

    def write_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, create_only: bool = False
    ) -> None:
        path = self._path(key)
        try:
            self._write(path, data, create_only=create_only)
        except ObjectExistsError:
            raise ObjectExistsError(f"object exists: {self.uri(key)}") from None
        except OSError as exc:
            raise StorageError(f"cannot write {self.uri(key)}: {exc.strerror or exc}") from None

    @staticmethod
    def _write(path: Path, data: bytes, *, create_only: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if create_only:
                # link() fails if the target exists: an atomic create-only write.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise ObjectExistsError(str(path)) from None
            else:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def list(self, prefix: str) -> list[str]:
        base = self._resolved_root
        start = self._path(prefix) if prefix else base
        # A prefix may end inside a name ('runs/r1/part-'), so walk its directory.
        walk_root = start if start.is_dir() else start.parent
        if not walk_root.exists():
            return []
        # os.walk, not Path.rglob: it sorts entries into files and folders without a stat each,
        # and keys are cut from the path strings (a run's ingest lists tens of thousands).
        cut = len(str(base)) + 1
        wanted = prefix.lstrip("/")
        found: dict[str, str] = {}
        for folder, _, names in os.walk(walk_root):
            for name in names:
                if not name.startswith(".tmp-"):
                    path = os.path.join(folder, name)
                    key = path[cut:].replace(os.sep, "/")
                    if key.startswith(wanted):
                        found[key] = path
        self._listed = found
        return sorted(found)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_file(self, key: str) -> str | None:
        # A key of the last listing is the file the walk found (no resolving it again).
        listed = self._listed.get(key)
        if listed is not None:
            return listed
        path = self._path(key)
        return str(path) if path.is_file() else None

    def uri(self, key: str) -> str:
        return (self.root / key).resolve().as_uri()
