"""Content-addressed artifact store: ``<root>/<key>/`` holds the artifact files and ``meta.json``.

An entry is built in a temporary folder beside its final place and renamed into place only
when complete, with a manifest of file sizes and hashes. An entry whose manifest does not
match its files (a crash mid-copy, a disk error, a hand edit) is moved aside and rebuilt,
never trusted. A lock file per key keeps two processes from building the same entry at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from optkit.errors import CacheError

__all__ = ["ArtifactCache", "cache_key", "file_sha256", "write_atomic"]

META = "meta.json"


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of canonical JSON over everything that determines an artifact's content."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ArtifactCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"cannot create the cache folder {str(root)!r}: {e.strerror}; choose another workspace"
            ) from None

    def path(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str) -> dict[str, Any] | None:
        """Return the entry's meta if it exists and its files match the manifest; else None."""
        entry = self.path(key)
        meta_file = entry / META
        if not entry.is_dir():
            return None
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            manifest = meta["manifest"]
            for name, (size, digest) in manifest.items():
                f = entry / name
                if f.stat().st_size != size or file_sha256(f) != digest:
                    raise ValueError(f"{name} changed")
        except (OSError, ValueError, KeyError, TypeError):
            self._discard(entry)
            return None
        return meta

    def build(self, key: str, make: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Build the entry with ``make(tmp_dir) -> meta`` unless it exists; returns (meta, built_now)."""
        with self._lock(key):
            meta = self.lookup(key)
            if meta is not None:
                return meta, False
            tmp = self.root / f".tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                meta = dict(make(tmp))
                meta["manifest"] = {
                    f.name: [f.stat().st_size, file_sha256(f)]
                    for f in sorted(tmp.iterdir())
                    if f.is_file() and f.name != META
                }
                meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                write_atomic(tmp / META, json.dumps(meta, indent=2, sort_keys=True, default=str))
                os.replace(tmp, self.path(key))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return meta, True

    def invalidate(self, key: str) -> None:
        """Drop an entry (``--force``); building it again starts from scratch."""
        with self._lock(key):
            self._discard(self.path(key))

    def read_json(self, name: str) -> Any | None:
        f = self.root / name
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_json(self, name: str, value: Any) -> None:
        write_atomic(self.root / name, json.dumps(value, sort_keys=True, default=str))

    def _discard(self, entry: Path) -> None:
        # Move aside first (atomic), then delete: a reader never sees a half-deleted entry.
        trash = self.root / f".trash-{entry.name[:16]}-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(OSError):
            os.replace(entry, trash)
            shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(exist_ok=True)
        with open(lock_dir / f"{key[:32]}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
