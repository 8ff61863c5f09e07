"""Where files live: a tiny store interface keyed by relative paths ("datasets/<sha256>.parquet").

``LocalStore`` keeps files under one folder (the workspace). Writes are atomic: the bytes go to a
temporary name in the same folder and are renamed into place, so a reader never sees half a file
and a crash leaves at most a temporary file, which ``sweep_temporary`` removes. An S3-compatible
store will implement the same methods later.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from core.errors import InvalidInput, NotFound

TMP_PREFIX = ".tmp-"


class Store(Protocol):
    def exists(self, key: str) -> bool: ...
    def open(self, key: str) -> BinaryIO: ...
    def read_bytes(self, key: str) -> bytes: ...
    def put(self, key: str, data: bytes | BinaryIO | Path) -> None: ...
    def delete(self, key: str) -> bool: ...
    def uri(self, key: str) -> str: ...
    def staged(self, key: str, write: Callable[[Path], None]) -> AbstractContextManager[Staged]: ...


def check_key(key: str) -> str:
    """A key is a relative POSIX path without ``..``, empty parts or a temporary-file prefix."""
    parts = key.split("/")
    if (not key or "\\" in key or any(p in ("", ".", "..") for p in parts)
            or any(p.startswith(TMP_PREFIX) for p in parts)):
        raise InvalidInput(f"store key {key!r} is not allowed: use a relative path like 'datasets/<sha256>.parquet'")
    return key


class Staged:
    """A file written under a temporary name, waiting for ``commit`` to rename it into place."""

    def __init__(self, tmp: Path | None, final: Path) -> None:
        self.tmp, self.final = tmp, final
        self.created = False

    @property
    def size(self) -> int:
        return (self.tmp if self.tmp is not None else self.final).stat().st_size

    def commit(self) -> bool:
        """Rename into place; True when this call created the file (False: it was already there)."""
        if self.tmp is None:
            return False
        if self.final.exists():  # the same content arrived meanwhile (content-addressed keys)
            self.tmp.unlink(missing_ok=True)
        else:
            os.replace(self.tmp, self.final)
            self.created = True
        self.tmp = None
        return self.created


def _tmp_name(final: Path) -> Path:
    return final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{final.name}")


class LocalStore:
    """Files under ``root`` on the local filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return self.path(key).resolve().as_uri()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def open(self, key: str) -> BinaryIO:
        try:
            return self.path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"file {key!r} is missing from the store at {self.root}") from None

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def put(self, key: str, data: bytes | BinaryIO | Path) -> None:
        """Write ``data`` atomically, replacing an existing file."""
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(final)
        try:
            if isinstance(data, bytes):
                tmp.write_bytes(data)
            elif isinstance(data, Path):
                shutil.copyfile(data, tmp)
            else:
                with tmp.open("wb") as out:
                    shutil.copyfileobj(data, out)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    @contextmanager
    def staged(self, key: str, write: Callable[[Path], None]) -> Iterator[Staged]:
        """Write a file under a temporary name with ``write(tmp_path)``; the caller calls
        ``commit()`` once the rows that point at it are in. Leaving the block without a commit
        (or with an error) removes the temporary file. For content-addressed keys that exist
        already nothing is written."""
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            yield Staged(None, final)
            return
        staged = Staged(_tmp_name(final), final)
        try:
            write(staged.tmp)
            yield staged
        finally:
            if staged.tmp is not None:
                staged.tmp.unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[tuple[str, float]]:
        """(key, age in seconds) of the finished files under ``prefix`` (temporary files excluded)."""
        folder, now = self.root / check_key(prefix), time.time()
        if not folder.is_dir():
            return []
        return [(f"{prefix}/{p.name}", now - p.stat().st_mtime) for p in folder.iterdir()
                if p.is_file() and not p.name.startswith(TMP_PREFIX)]

    def sweep_temporary(self, *, older_than_s: float = 3600) -> int:
        """Remove temporary files left by crashed writers. Returns how many were removed."""
        if not self.root.exists():
            return 0
        cutoff, removed = time.time() - older_than_s, 0
        for tmp in self.root.rglob(f"{TMP_PREFIX}*"):
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed
