"""Bad input and failures leave no file and no row: malformed files, bad names, size limit, a database
that fails mid-registration, a rolled-back caller, a killed process, concurrent registrations."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.data import datasets
from core.errors import InvalidInput, LeanOpsError
from core.platform.database import transaction
from db.models import AuditEvent, Dataset, DatasetVersion
from tests.support.paths import ROOT

ALICE = Actor("alice", "scientist")


def frame(rows: int = 100, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=rows), "k": rng.choice(["a", "b"], rows)})


def register(factory: sessionmaker[Session], settings, data, *, name: str = "d", filename: str = "d.csv",
             max_bytes: int | None = None) -> datasets.Registration:
    with transaction(factory) as session:
        return datasets.register(session, actor=ALICE, name=name, data=data, filename=filename,
                                 store=settings.home, source="test", max_bytes=max_bytes)


def counts(factory: sessionmaker[Session]) -> tuple[int, int, int]:
    with factory() as s:
        return (s.scalar(select(func.count()).select_from(Dataset)),
                s.scalar(select(func.count()).select_from(DatasetVersion)),
                s.scalar(select(func.count()).select_from(AuditEvent)
                         .where(AuditEvent.action == "dataset.version_registered")))


def store_files(settings) -> list[str]:
    root = Path(settings.home)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf)
    return buf.getvalue()


BAD = {
    "empty file": (b"", "d.csv", "d.csv is empty (0 bytes)"),
    "binary file named .csv": (bytes(range(256)) * 4, "d.csv", "d.csv looks binary (it contains NUL bytes)"),
    "undecodable text": ("x,name\n1,Zoë\n".encode("cp1252"), "d.csv", "d.csv is not UTF-8 text"),
    "duplicate column names": (b"x,k,x\n1,a,2\n", "d.csv", "d.csv repeats the column name 'x'"),
    "blank column name": (b"x, ,k\n1,2,a\n", "d.csv", "d.csv has a blank column name (column 2 of 3)"),
    "ragged rows": (b"x,k\n1,a\n2,b,extra\n", "d.csv", "d.csv has ragged rows: line 3 has 3 fields"),
    "header only": (b"x,k\n", "d.csv", "d.csv has a header but no rows"),
    "broken parquet": (parquet_bytes(frame())[:100], "d.parquet", "d.parquet is not a readable Parquet file"),
}


@pytest.mark.parametrize("content, filename, reason", BAD.values(), ids=BAD.keys())
def test_malformed_files_store_nothing(factory, settings, content: bytes, filename: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        register(factory, settings, content, filename=filename)
    assert str(err.value).startswith(reason) and "\n" not in str(err.value)
    assert counts(factory) == (0, 0, 0)
    assert store_files(settings) == []


def test_a_file_over_the_limit_stores_nothing(factory, settings, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    frame(60_000).to_csv(path, index=False)
    with pytest.raises(InvalidInput, match=r"^big.csv is 1\.\d MB; the limit is 1 MB \(LEANOPS_MAX_UPLOAD_MB\)$"):
        register(factory, settings, path, filename="big.csv", max_bytes=2**20)
    assert counts(factory) == (0, 0, 0) and store_files(settings) == []


@pytest.mark.parametrize("name", ["../etc", "a/b", "a\\b", "..", ".hidden", "", "a:b", "x" * 65, "name with space"])
def test_names_with_path_characters_are_refused(factory, settings, name: str) -> None:
    with pytest.raises(InvalidInput, match="is not allowed: use 1-64 letters, digits, '_' or '-'"):
        register(factory, settings, frame(), name=name)
    assert counts(factory) == (0, 0, 0) and store_files(settings) == []


def test_a_caller_that_rolls_back_leaves_no_file(factory, settings) -> None:
    with pytest.raises(RuntimeError), transaction(factory) as s:
        reg = datasets.register(s, actor=ALICE, name="d", data=frame(), store=settings.home, source="test")
        assert reg.version.file(settings).is_file()  # renamed into place before the commit
        raise RuntimeError("the caller failed after registering")
    assert counts(factory) == (0, 0, 0) and store_files(settings) == []


def test_rolling_back_a_shared_file_keeps_it_for_the_dataset_that_committed(factory, settings) -> None:
    kept = register(factory, settings, frame(), name="kept")
    with pytest.raises(RuntimeError), transaction(factory) as s:
        datasets.register(s, actor=ALICE, name="other", data=frame(), store=settings.home, source="test")
        raise RuntimeError("rolled back")
    assert kept.version.file(settings).is_file()
    assert counts(factory) == (1, 1, 1)


def _install_failure(factory: sessionmaker[Session], table: str, when: str) -> None:
    """A real database failure (a trigger) on inserts into ``table``."""
    with transaction(factory) as s:
        if s.get_bind().dialect.name == "sqlite":
            s.execute(text(f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} WHEN {when} "
                           "BEGIN SELECT RAISE(ABORT, 'simulated outage'); END"))
        else:
            s.execute(text("CREATE FUNCTION fail_insert() RETURNS trigger AS "
                           "$$ BEGIN RAISE EXCEPTION 'simulated outage'; END $$ LANGUAGE plpgsql"))
            s.execute(text(f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} FOR EACH ROW "
                           f"WHEN ({when}) EXECUTE FUNCTION fail_insert()"))


@pytest.mark.parametrize("table, when", [
    ("dataset_versions", "NEW.version = 2"),  # before the file is renamed into place
    ("audit_events", "NEW.action = 'dataset.version_registered' AND NEW.subject = 'dataset:d'"),  # after
])
def test_a_database_failure_mid_registration_leaves_the_store_as_it_was(factory, settings, table, when) -> None:
    register(factory, settings, frame(), name="d")
    before_files, before_counts = store_files(settings), counts(factory)
    _install_failure(factory, table, when)
    with pytest.raises(Exception, match="simulated outage"):
        register(factory, settings, frame(seed=1), name="d")
    assert store_files(settings) == before_files
    assert counts(factory) == before_counts


KILLED_WORKER = """
import sys, numpy as np, pandas as pd
from pathlib import Path
from core.data import datasets
from core.actors import Actor
from db.session import make_engine, make_session_factory
from core.platform.database import transaction
url, home, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
df = pd.DataFrame({f"c{i}": rng.normal(size=400_000) for i in range(8)})
factory = make_session_factory(make_engine(url))
print("ready", flush=True)
while True:
    df["c0"] += 1
    with transaction(factory) as s:
        datasets.register(s, actor=Actor("w", "scientist"), name="d", data=df, store=home, source="w")
"""


@pytest.mark.parametrize("delay", [0.5, 2.5])
def test_a_killed_registration_leaves_no_file_without_a_row(factory, settings, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, settings.db_url, str(settings.home), "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with factory() as s:
        registered = set(s.scalars(select(DatasetVersion.sha256)))
        datasets.sweep_store(s, store=settings.home, older_than_s=0)
    finished = {p.removeprefix("datasets/").removesuffix(".parquet") for p in store_files(settings)}
    assert finished == registered, "every stored file has its row and every row its file"
    assert not [p for p in store_files(settings) if ".tmp-" in p]
    reg = register(factory, settings, frame(), name="d")  # and the dataset still takes new versions
    assert reg.version.version == len(registered) + 1


def test_sweep_removes_only_old_orphans(factory, settings) -> None:
    reg = register(factory, settings, frame())
    folder = Path(settings.home) / "datasets"
    (folder / ("f" * 64 + ".parquet")).write_bytes(b"orphan")
    (folder / ".tmp-123-x.parquet").write_bytes(b"partial")
    with factory() as s:
        young = datasets.sweep_store(s, store=settings.home)
        old = datasets.sweep_store(s, store=settings.home, older_than_s=0)
    assert (young.temporary, young.orphans) == (0, [])
    assert (old.temporary, old.orphans) == (1, [f"datasets/{'f' * 64}.parquet"])
    assert store_files(settings) == [reg.version.path]


def test_concurrent_registrations_get_distinct_version_numbers(factory, settings) -> None:
    register(factory, settings, frame(seed=0))
    results: list[object] = []

    def work(seed: int) -> None:
        try:
            results.append(register(factory, settings, frame(seed=seed % 3 + 1)))
        except LeanOpsError as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    regs = [r for r in results if isinstance(r, datasets.Registration)]
    assert len(regs) == 6, results
    assert sorted(r.version.version for r in regs if r.created) == [2, 3, 4]
    assert len({r.version.sha256 for r in regs}) == 3
    assert counts(factory) == (1, 4, 4)
