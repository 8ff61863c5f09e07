"""The local store under the workspace: atomic writes, staged files, keys that cannot escape the root."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from core.errors import InvalidInput, NotFound
from core.platform.storage import LocalStore


def test_put_read_exists_delete_uri(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("reports/a.txt", b"one")
    store.put("reports/a.txt", io.BytesIO(b"two"))  # replaces atomically
    src = tmp_path / "src.bin"
    src.write_bytes(b"three")
    store.put("reports/b.txt", src)
    assert store.read_bytes("reports/a.txt") == b"two" and store.read_bytes("reports/b.txt") == b"three"
    assert store.exists("reports/a.txt") and not store.exists("reports/c.txt")
    assert store.uri("reports/a.txt") == (tmp_path / "reports" / "a.txt").resolve().as_uri()
    assert store.delete("reports/a.txt") is True and store.delete("reports/a.txt") is False
    with pytest.raises(NotFound, match="file 'reports/a.txt' is missing from the store"):
        store.open("reports/a.txt")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["b.txt"], "no temporary files remain"


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../x", "a//b", "a\\b", "", ".", "a/.tmp-1-x"])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidInput, match="store key .* is not allowed"):
        LocalStore(tmp_path / "root").put(key, b"x")
    assert not (tmp_path / "x").exists()


def test_staged_files_appear_only_on_commit(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with store.staged("datasets/a.parquet", lambda p: p.write_bytes(b"data")) as staged:
        assert staged.size == 4 and not store.exists("datasets/a.parquet")
        assert staged.commit() is True
    assert store.read_bytes("datasets/a.parquet") == b"data"

    with store.staged("datasets/b.parquet", lambda p: p.write_bytes(b"data")):
        pass  # left without a commit: nothing stays
    with pytest.raises(RuntimeError), store.staged("datasets/c.parquet", lambda p: p.write_bytes(b"x")):
        raise RuntimeError("crashed before the commit")
    writes: list[Path] = []
    with store.staged("datasets/a.parquet", writes.append) as again:  # content-addressed: already there
        assert again.commit() is False
    assert writes == []
    assert os.listdir(tmp_path / "datasets") == ["a.parquet"]


def test_keys_and_sweeping_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("datasets/a.parquet", b"a")
    stale = tmp_path / "datasets" / ".tmp-dead-b.parquet"
    stale.write_bytes(b"partial")
    fresh = tmp_path / "datasets" / ".tmp-live-c.parquet"
    fresh.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert [k for k, _ in store.keys("datasets")] == ["datasets/a.parquet"]
    assert store.sweep_temporary(older_than_s=3600) == 1
    assert not stale.exists() and fresh.exists()
    assert LocalStore(tmp_path / "none").keys("datasets") == []
