"""Content-addressed artifact store: ``<root>/<key>/`` holds the artifact files and ``meta.json``.

An entry is built in a temporary folder beside its final place and renamed into place only
when complete, with a manifest of file sizes and hashes. An entry whose manifest does not
match its files (a crash mid-copy, a disk error, a hand edit) is moved aside and rebuilt,
never trusted. A lock file per key keeps two processes from building the same entry at once;
the second one says what it is waiting for, then finds the entry built and reuses it. Temporary
folders and files left by a killed process (SIGKILL skips every cleanup) are swept once their
process is gone.

A process that uses an entry (built, or found cached) holds a shared "in use" lock on it until
``release_holds()``; ``--force`` in another process needs that lock exclusively to drop the entry,
so it is refused with a clear error instead of deleting files a running evaluation still opens.
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
from typing import IO, Any

from optkit.errors import CacheError
from optkit.redact import redact

__all__ = [
    "ArtifactCache",
    "cache_key",
    "file_sha256",
    "release_holds",
    "sweep_stale_temps",
    "write_atomic",
    "write_files_atomic",
]

META = "meta.json"
_HELD: dict[Path, IO[str]] = {}  # this process's shared "in use" locks, by lock file (any ArtifactCache)


def release_holds() -> None:
    """Let other processes ``--force`` the entries this process used (the end of a run)."""
    for fh in _HELD.values():
        fh.close()  # closing the file releases its flock
    _HELD.clear()


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
    write_files_atomic({path: data})


def write_files_atomic(files: dict[Path, str | bytes], before_replace: Callable[[], None] | None = None) -> None:
    """Stage every file as a fsynced temp file beside its target, then rename them all.

    A report is several files (json, md, ...); staging all of them first means a crash or a
    signal while writing leaves the previous set whole, and the renames that follow take
    microseconds. ``before_replace`` runs between staging and renaming (the test hook).
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_temps(path.parent)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            staged.append((tmp, path))
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Delete ``.tmp-*``, ``.*.tmp-*`` and ``.trash-*`` leftovers whose writing process no longer runs.

    Names carry the writer's pid (``.tmp-<key>-<pid>-<rand>``, ``.<file>.tmp-<pid>-<rand>``); a
    leftover of a live process (a concurrent run) is left alone. Returns what was removed.
    """
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        pid = _writer_pid(p.name)
        if pid is None or _alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _writer_pid(name: str) -> int | None:
    if name.startswith(".trash-"):
        return 0  # moved aside for deletion: never in use
    if not name.startswith("."):
        return None
    _, sep, rest = name.partition(".tmp-")
    if not sep:
        return None
    parts = rest.split("-")
    # ".tmp-<key16>-<pid>-<rand>" (cache entry) or ".<file>.tmp-<pid>-<rand>" (file)
    candidate = parts[1] if name.startswith(".tmp-") and len(parts) == 3 else parts[0]
    return int(candidate) if candidate.isdigit() else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class ArtifactCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"cannot create the cache folder {str(root)!r}: {e.strerror}; choose another workspace"
            ) from None
        sweep_stale_temps(root)

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

    def build(
        self,
        key: str,
        make: Callable[[Path], dict[str, Any]],
        on_wait: Callable[[str], None] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Build the entry with ``make(tmp_dir) -> meta`` unless it exists; returns (meta, built_now).

        If another process holds the entry's lock, ``on_wait(holder)`` is called once (holder:
        "pid N" or "another process") before blocking until it is released.
        """
        with self._lock(key, on_wait):
            meta = self.lookup(key)
            if meta is not None:
                self._hold(key)  # under the build lock: no --force can slip in between
                return meta, False
            tmp = self.root / f".tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                meta = redact(dict(make(tmp)))
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
            self._hold(key)
            return meta, True

    def invalidate(self, key: str, what: str = "") -> None:
        """Drop an entry (``--force``); building it again starts from scratch.

        Refused while another process uses the entry: deleting it would break that run midway.
        """
        own = _HELD.pop(self._use_file(key), None)
        if own is not None:
            own.close()
        with self._lock(key), open(self._use_file(key), "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CacheError(
                    f"--force: cache entry {key[:12]}{f' ({what})' if what else ''} in {str(self.root)!r} is in use "
                    "by another optkit process; wait for it to finish, or run without --force, or use another "
                    "--workspace"
                ) from None
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

    def _use_file(self, key: str) -> Path:
        (self.root / ".locks").mkdir(exist_ok=True)
        return (self.root / ".locks" / f"{key[:32]}.use").resolve()  # one spelling per file for _HELD

    def _hold(self, key: str) -> None:
        path = self._use_file(key)
        if path not in _HELD:
            fh = open(path, "a+")  # noqa: SIM115 - kept open on purpose: the lock lives as long as the file
            fcntl.flock(fh, fcntl.LOCK_SH)
            _HELD[path] = fh

    @contextlib.contextmanager
    def _lock(self, key: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        # flock, not a lock file's existence: the kernel releases it when the holder dies, even by SIGKILL.
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(exist_ok=True)
        with open(lock_dir / f"{key[:32]}.lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    fh.seek(0)
                    holder = fh.read().strip()
                    on_wait(f"pid {holder}" if holder.isdigit() else "another process")
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                fh.truncate()
                fh.write(str(os.getpid()))
                fh.flush()
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
