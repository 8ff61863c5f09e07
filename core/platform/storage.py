"""Where files live: a tiny store interface keyed by relative paths ("datasets/<sha256>.parquet").

``LocalStore`` keeps files under one folder (the workspace). Writes are atomic: the bytes go to a
temporary name in the same folder and are renamed into place, so a reader never sees half a file
and a crash leaves at most a temporary file, which ``sweep_temporary`` removes. ``S3Store`` keeps the
same keys under ``s3://bucket/prefix/`` on any S3-compatible server (an object appears whole or not
at all); ``open_store(settings)`` picks one from ``LEANOPS_ARTIFACTS``.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from core.errors import InvalidInput, NotFound, StoreUnavailable

TMP_PREFIX = ".tmp-"


class StagedFile(Protocol):
    """What ``Store.staged`` yields: ``Staged`` (local) or ``S3Staged``."""

    @property
    def size(self) -> int: ...
    def commit(self) -> bool: ...


class DataStore(Protocol):
    def exists(self, key: str) -> bool: ...
    def open(self, key: str) -> BinaryIO: ...
    def read_bytes(self, key: str) -> bytes: ...
    def put(self, key: str, data: bytes | BinaryIO | Path) -> None: ...
    def delete(self, key: str) -> bool: ...
    def uri(self, key: str) -> str: ...
    def staged(self, key: str, write: Callable[[Path], None]) -> AbstractContextManager[StagedFile]: ...


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
        tmp = _tmp_name(final)
        staged = Staged(tmp, final)
        try:
            write(tmp)
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


# -- S3-compatible storage -----------------------------------------------------------------------

class S3Staged:
    """A file written locally, uploaded by ``commit`` once the rows that point at it are in."""

    def __init__(self, store: S3Store, key: str, tmp: Path | None) -> None:
        self.store, self.key, self.tmp = store, key, tmp
        self.created = False

    @property
    def size(self) -> int:
        return self.tmp.stat().st_size if self.tmp is not None else self.store.size(self.key)

    def commit(self) -> bool:
        """Upload; True when this call created the object (False: it was already there)."""
        if self.tmp is None:
            return False
        if not self.store.exists(self.key):  # content-addressed: the same bytes may have arrived meanwhile
            self.store.put(self.key, self.tmp)
            self.created = True
        self.tmp = None
        return self.created


class S3Store:
    """Objects under ``s3://bucket/prefix/`` on AWS or any S3-compatible server (MinIO, moto, Ceph).

    Every failure to reach the server raises ``StoreUnavailable`` naming the bucket and endpoint;
    short timeouts and two attempts keep an unreachable server from hanging a request.
    """

    def __init__(self, root: str, *, endpoint_url: str = "", access_key_id: str = "", secret_access_key: str = "",
                 region: str = "") -> None:
        if not root.startswith("s3://") or not root[5:].split("/")[0]:
            raise InvalidInput(f"S3 root {root!r} is not s3://bucket[/prefix]")
        self.bucket, _, prefix = root[5:].partition("/")
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._options = {"endpoint_url": endpoint_url or None, "aws_access_key_id": access_key_id or None,
                         "aws_secret_access_key": secret_access_key or None, "region_name": region or None}
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                # "standard" retries transient errors (timeouts, 5xx, throttling) with backoff: a store
                # that is busy for a moment is not an outage; one that refuses connections fails fast.
                config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 5, "mode": "standard"})
                self._client = boto3.session.Session().client("s3", config=config, **self._options)
            return self._client

    def _fail(self, exc: Exception, doing: str) -> StoreUnavailable:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return StoreUnavailable(f"the S3 store {self.root}{where} could not {doing}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''} (check LEANOPS_ARTIFACTS, "
                                "LEANOPS_S3_ENDPOINT_URL and the credentials)")

    def _call(self, doing: str, fn: Callable[[], Any], *, missing: Any = ...) -> Any:
        """Run one S3 request; a missing object returns ``missing`` when given, else raises NotFound."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                if missing is not ...:
                    return missing
                raise NotFound(f"file {doing} is missing from the S3 store {self.root}") from None
            raise self._fail(exc, doing) from None
        except (BotoCoreError, Boto3Error) as exc:  # Boto3Error: e.g. an upload_file that failed
            raise self._fail(exc, doing) from None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def exists(self, key: str) -> bool:
        k = self._key(key)
        return self._call(f"check {key!r}", lambda: self.client().head_object(Bucket=self.bucket, Key=k) and True,
                          missing=False)

    def size(self, key: str) -> int:
        k = self._key(key)
        head = self._call(repr(key), lambda: self.client().head_object(Bucket=self.bucket, Key=k))
        return int(head["ContentLength"])

    def open(self, key: str) -> BinaryIO:
        """The whole object in memory, seekable (Parquet readers seek)."""
        return io.BytesIO(self.read_bytes(key))

    def read_bytes(self, key: str) -> bytes:
        k = self._key(key)
        return self._call(repr(key), lambda: self.client().get_object(Bucket=self.bucket, Key=k)["Body"].read())

    def put(self, key: str, data: bytes | BinaryIO | Path) -> None:
        """Upload ``data``; S3 shows an object only once all of it has arrived."""
        k, client = self._key(key), self.client()
        if isinstance(data, Path):
            self._call(f"write {key!r}", lambda: client.upload_file(str(data), self.bucket, k))
        elif isinstance(data, bytes):
            self._call(f"write {key!r}", lambda: client.put_object(Bucket=self.bucket, Key=k, Body=data))
        else:
            self._call(f"write {key!r}", lambda: client.upload_fileobj(data, self.bucket, k))

    def delete(self, key: str) -> bool:
        if not self.exists(key):
            return False
        k = self._key(key)
        self._call(f"delete {key!r}", lambda: self.client().delete_object(Bucket=self.bucket, Key=k))
        return True

    @contextmanager
    def staged(self, key: str, write: Callable[[Path], None]) -> Iterator[S3Staged]:
        """Like ``LocalStore.staged``: ``write(tmp_path)`` locally, upload on ``commit()``. The store is
        asked first whether the object exists, so an unreachable store fails before any row is written."""
        if self.exists(key):
            yield S3Staged(self, key, None)
            return
        folder = Path(tempfile.mkdtemp(prefix="leanops-s3-"))
        tmp = folder / key.rsplit("/", 1)[-1]
        staged = S3Staged(self, key, tmp)
        try:
            write(tmp)
            yield staged
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def keys(self, prefix: str) -> list[tuple[str, float]]:
        """(key, age in seconds) of the objects under ``prefix``."""
        full, now, found = self._key(prefix) + "/", time.time(), []
        strip = len(self.prefix) + 1 if self.prefix else 0
        pages = self._call(f"list {prefix!r}", lambda: list(
            self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)))
        for page in pages:
            for obj in page.get("Contents", []):
                found.append((obj["Key"][strip:], now - obj["LastModified"].timestamp()))
        return found

    def sweep_temporary(self, *, older_than_s: float = 3600) -> int:
        """Nothing to sweep: uploads are staged on local disk, never under a temporary object name."""
        return 0


def open_store(settings: Any) -> LocalStore | S3Store:
    """The store for dataset files and reports: the workspace folder, or the S3 artifact root."""
    if not str(settings.artifacts).startswith("s3://"):
        return LocalStore(settings.home)
    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else ""
    return _s3_store(settings.artifacts, settings.s3_endpoint_url, settings.s3_access_key_id, secret,
                     settings.s3_region)


@lru_cache(maxsize=8)
def _s3_store(root: str, endpoint_url: str, access_key_id: str, secret: str, region: str) -> S3Store:
    # one client per configuration and process: creating a boto3 client costs tens of milliseconds
    return S3Store(root, endpoint_url=endpoint_url, access_key_id=access_key_id, secret_access_key=secret,
                   region=region)


def as_store(root: Path | str | DataStore) -> DataStore:
    """A store from what callers pass as ``store``: a folder (the workspace) or a store itself."""
    if isinstance(root, (str, Path)):
        return LocalStore(Path(root))
    return root
