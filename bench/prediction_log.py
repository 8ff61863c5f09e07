"""The prediction log, measured (run by hand: `python bench/prediction_log.py`, or `make bench`).

In a temporary workspace on this machine's disk (SQLite, local artifact store), with records of 20
features (15 numbers, 5 categories) as the API logs them:

1. what durable acknowledgement costs a single-record request: the time from handing the record to
   the log until the request may answer, one request at a time, with the journal off (the old
   behaviour: the answer did not wait for anything durable), ``batch`` (written to the OS) and
   ``fsync`` (synced); then 16 requests at a time with ``fsync`` (group commit: syncs per record);
2. the write rate of the real writer (rows/s into the table);
3. bytes on disk per logged prediction: the SQLite table (JSON inputs, with its indexes) against
   the Parquet partitions compaction makes of the same rows;
4. a window read for a drift check (the 24 h of one model): today's read of the JSON rows against
   the hot table + partitions read with column projection, wall time and peak memory (each in its
   own process), as ratios;
5. a lookup by request id among all logged predictions, once compacted: median and p99.

Sizes: BENCH_ROWS (default 200,000 logged predictions), BENCH_LATENCY_REQUESTS (default 1,000).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", 200_000))
REQUESTS = int(os.environ.get("BENCH_LATENCY_REQUESTS", 1_000))
MODEL = "churn-bench"


def served(rng: np.random.Generator, ts, rows: int = 1):
    from core.serving import prediction_store
    from core.serving.predictions import Served

    cols = {f"n{i:02d}": rng.normal(size=rows) for i in range(15)}
    cols |= {f"c{i}": rng.choice(np.array(["red", "green", "blue", "amber"], dtype=object), rows) for i in range(5)}
    return Served(prediction_store.new_request_id(ts), ts, MODEL, "champion", 1, cols,
                  rng.integers(0, 2, rows).tolist(), 3.2, "token:bench")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def latency(folder: Path, factory, mode: str) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, syncs) of handing single records to the log until they may be acknowledged."""
    from core.serving.predictions import LogWriter
    from core.serving.segments import Journal
    from db.models import utcnow

    journal = None if mode == "off" else Journal(folder / mode, durability=mode)  # type: ignore[arg-type]
    writer = LogWriter(factory, capacity=100_000, journal=journal)
    writer.start()
    rng = np.random.default_rng(1)
    items = [served(rng, utcnow()) for _ in range(REQUESTS)]
    times = []
    for item in items:
        started = time.perf_counter()
        ticket = writer.offer(item)
        assert ticket is not None
        ticket.wait(30)
        times.append(time.perf_counter() - started)
    writer.drain(60)
    writer.stop()
    return pct(times, 50), pct(times, 99), journal.syncs if journal else 0


def concurrent(folder: Path, factory, mode: str) -> tuple[float, float, float]:
    """16 threads of single records: (p50 ms, p99 ms, records per sync)."""
    from core.serving.predictions import LogWriter
    from core.serving.segments import Journal
    from db.models import utcnow

    journal = None if mode == "off" else Journal(folder / f"group-{mode}", durability=mode)  # type: ignore[arg-type]
    writer = LogWriter(factory, capacity=100_000, journal=journal)
    writer.start()
    times: list[float] = []
    lock = threading.Lock()

    def one(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(REQUESTS // 16):
            item = served(rng, utcnow())
            started = time.perf_counter()
            ticket = writer.offer(item)
            assert ticket is not None
            ticket.wait(30)
            with lock:
                times.append(time.perf_counter() - started)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    syncs = journal.syncs if journal else 0
    writer.drain(60)
    writer.stop()
    return pct(times, 50), pct(times, 99), len(times) / max(syncs, 1)


def fill(factory) -> float:
    """Log ROWS single-record predictions over the last 30 hours through the real writer; rows/s."""
    from core.serving.predictions import LogWriter
    from db.models import utcnow

    rng = np.random.default_rng(7)
    start = utcnow() - timedelta(hours=30)
    step = timedelta(hours=30) / ROWS
    items = [served(rng, start + i * step) for i in range(ROWS)]
    writer = LogWriter(factory, capacity=ROWS + 1, batch_rows=5000)
    for item in items:
        writer.offer(item)
    started = time.perf_counter()
    writer.start()
    writer.drain(3600)
    writer.stop()
    return ROWS / (time.perf_counter() - started)


WINDOW = """
import json, sys, time
from datetime import timedelta
sys.path.insert(0, sys.argv[1])
from core.monitoring.checks import window_frame
from core.settings import get_settings
from db.session import make_engine, make_session_factory
from datetime import datetime
settings = get_settings()
factory = make_session_factory(make_engine(settings.db_url))
started = time.perf_counter()
current = window_frame(factory, model=sys.argv[2], hours=24, now=datetime.fromisoformat(sys.argv[4]),
                       store=None if sys.argv[3] == "json" else settings.data_store)
seconds = time.perf_counter() - started
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "rows": len(current.frame), "peak_mb": peak / 1024}))
"""


def window_run(env: dict[str, str], how: str, now: str) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, rows) of a 24 h window read in its own process."""
    proc = subprocess.Popen([sys.executable, "-c", WINDOW, str(ROOT), MODEL, how, now], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    raw_out, raw_err = proc.communicate()
    out, err = raw_out.decode(), raw_err.decode()
    if proc.returncode != 0:
        raise SystemExit(f"window read ({how}) failed: {err[-2000:]}")
    doc = json.loads(out.strip().splitlines()[-1])
    # the child's own high-water mark: ru_maxrss would carry this (large) process's over the exec
    return doc["seconds"], doc["peak_mb"], doc["rows"]


def main() -> None:
    from core.actors import system_actor
    from core.platform.database import migrate
    from core.serving import prediction_store
    from core.settings import get_settings
    from db.session import make_engine, make_session_factory

    sys.setswitchinterval(0.001)  # as `cli.py serve` sets it: the writer thread yields the GIL sooner
    with tempfile.TemporaryDirectory(prefix="leanops-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        home = Path(tmp) / "ws"
        env = os.environ | {"LEANOPS_HOME": str(home), "LEANOPS_SCHEDULER": "off"}
        settings = get_settings(home=home, scheduler="off")
        home.mkdir(parents=True)
        migrate(settings.db_url)
        engine = make_engine(settings.db_url)
        factory = make_session_factory(engine)

        print(f"1. durable acknowledgement, single-record requests one at a time ({REQUESTS} each):")
        for mode in ("off", "batch", "fsync"):
            p50, p99, syncs = latency(Path(tmp) / "segments", factory, mode)
            print(f"   {mode:5s}  p50 {p50:7.3f} ms   p99 {p99:7.3f} ms" + (f"   ({syncs} syncs)" if syncs else ""))
        print("   16 threads at once (the GIL and the writer thread share 2 cores with them):")
        for mode in ("off", "batch", "fsync"):
            p50, p99, per_sync = concurrent(Path(tmp) / "segments", factory, mode)
            print(f"   {mode:5s}  p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"
                  + (f"   ({per_sync:.1f} records per sync)" if mode == "fsync" else ""))

        from sqlalchemy import delete

        from db.models import PredictionLog

        with factory.begin() as session:
            session.execute(delete(PredictionLog))
        engine.dispose()
        with __import__("sqlite3").connect(settings.db_url.removeprefix("sqlite:///")) as conn:
            conn.execute("VACUUM")
        db_file = Path(settings.db_url.removeprefix("sqlite:///"))
        empty = db_file.stat().st_size
        engine = make_engine(settings.db_url)
        factory = make_session_factory(engine)

        rate = fill(factory)
        print(f"2. the real writer: {rate:,.0f} rows/s into SQLite ({ROWS:,} single-record requests, 20 features)")
        json_bytes = (db_file.stat().st_size - empty) / ROWS

        from db.models import utcnow

        now = utcnow().isoformat()
        json_s, json_mb, json_rows = window_run(env, "json", now)  # today's read, before compaction
        started = time.perf_counter()
        result = prediction_store.compact(factory, settings.data_store, actor=system_actor("bench"), holder="bench",
                                          scratch=home / "tmp")
        compact_s = time.perf_counter() - started
        parquet_bytes = result["bytes"] / max(result["rows"], 1)
        print(f"3. bytes per prediction: JSON rows in SQLite {json_bytes:,.0f} B, Parquet {parquet_bytes:,.0f} B "
              f"(ratio {json_bytes / parquet_bytes:.1f}x); compaction of {result['rows']:,} rows in "
              f"{result['files']} files took {compact_s:.1f} s")
        new_s, new_mb, new_rows = window_run(env, "parquet", now)
        print(f"4. 24 h window ({json_rows:,} rows JSON / {new_rows:,} rows hot+Parquet): "
              f"JSON {json_s:.2f} s {json_mb:,.0f} MB peak; partitions {new_s:.2f} s {new_mb:,.0f} MB peak "
              f"(time {json_s / new_s:.1f}x faster, memory {json_mb / new_mb:.1f}x less)")

        with factory() as session:
            from sqlalchemy import select

            ids = list(session.scalars(select(PredictionLog.request_id).limit(1)))
        keys = prediction_store.list_files(settings.data_store, prediction_store.ROOT)
        rng = np.random.default_rng(3)
        picks = [prediction_store.read_file(settings.data_store, keys[int(rng.integers(len(keys)))],
                                            columns=["request_id"]).column("request_id")[0].as_py()
                 for _ in range(50)] + ids
        times = []
        for rid in picks:
            started = time.perf_counter()
            assert prediction_store.lookup(factory, settings.data_store, request_id=rid)
            times.append(time.perf_counter() - started)
        print(f"5. lookup by request id among {ROWS:,} ({len(keys)} partition files): median "
              f"{statistics.median(times) * 1000:.1f} ms, p99 {pct(times, 99):.1f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
