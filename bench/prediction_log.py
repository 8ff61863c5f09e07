"""The prediction log, measured (run by hand: `python bench/prediction_log.py`, or `make bench`).

In a temporary workspace on this machine's disk (SQLite, local artifact store), with records of 20
features (15 numbers, 5 categories) as the API logs them:

1. what durable acknowledgement costs a single-record request: the time from handing the record to
   the log until the request may answer, one request at a time, with the journal off (the old
   behaviour: the answer did not wait for anything durable), ``batch`` (written to the OS) and
   ``fsync`` (synced); then 16 requests at a time with ``fsync`` (group commit: syncs per record);
   and the same over HTTP, as users feel it: two real ``cli.py serve`` processes (one worker each)
   serving one random-forest champion, ``LEANOPS_PREDICTION_LOG_DURABILITY=fsync`` vs ``batch``,
   single-record requests one at a time and 16 at a time over keep-alive connections, in interleaved
   time-boxed rounds (so the shared machine's noise hits both alike): p50 and p99;
2. the write rate of the real writer (rows/s into the table), filling the log with BENCH_ROWS
   single-record requests spread over the last 24 hours;
3. bytes on disk per logged prediction: the SQLite table (JSON inputs, with its indexes) against
   the Parquet partitions compaction makes of the same rows;
4. a drift check's window read (the last 24 h of the model: all BENCH_ROWS) each in its own process:
   today's implementation before issue 17 (the JSON rows of the table read into pandas, kept here
   verbatim) against ``core.monitoring.checks.window_frame`` (hot table + partitions, column
   projection), wall time and peak memory (VmHWM), as ratios;
5. a lookup by request id among BENCH_LOOKUP_ROWS predictions (ten models × BENCH_ROWS by default,
   so 10 M at the default size): the bench model's rows come through the writer and the compactor;
   the other nine models' partitions are written directly with the compactor's own writer
   (``parquet._write_durably``, same columns, types, file layout and row groups as
   ``to_tables``/``_compact_hour`` make) because logging 9 M rows through the API would take an hour.
   Their ``input_hash`` is random hex of the same length (the lookup does not check it). Median and
   p99 over lookups of random compacted ids and of ids still in the hot table.

Sizes: BENCH_ROWS (default 1,000,000), BENCH_LOOKUP_ROWS (default 10 × BENCH_ROWS),
BENCH_LATENCY_REQUESTS (default 1,000), BENCH_HTTP_ROUNDS (default 6 rounds of BENCH_ROUND_SECONDS,
default 2, per server and concurrency). At the default sizes it took 13 minutes on a shared 2-core machine
(load average about 8), 3.3 GB at its peak (today's window read, in its own process) and 3 GB of disk;
``BENCH_ROWS=20000 BENCH_LOOKUP_ROWS=200000`` checks it in about two minutes.
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

ROWS = int(os.environ.get("BENCH_ROWS", 1_000_000))
LOOKUP_ROWS = int(os.environ.get("BENCH_LOOKUP_ROWS", 10 * ROWS))
REQUESTS = int(os.environ.get("BENCH_LATENCY_REQUESTS", 1_000))
HTTP_ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", 6))
ROUND_SECONDS = float(os.environ.get("BENCH_ROUND_SECONDS", 2))
MODEL = "churn-bench"
CATEGORIES = ["red", "green", "blue", "amber"]


def served(rng: np.random.Generator, ts, rows: int = 1):
    from core.platform.prediction_log.parquet import new_request_id
    from core.platform.prediction_log.writer import Served

    cols = {f"n{i:02d}": rng.normal(size=rows) for i in range(15)}
    cols |= {f"c{i}": rng.choice(np.array(CATEGORIES, dtype=object), rows) for i in range(5)}
    return Served(new_request_id(ts), ts, MODEL, "champion", 1, cols,
                  rng.integers(0, 2, rows).tolist(), 3.2, "token:bench")


def served_many(rng: np.random.Generator, times: list) -> list:
    """One single-record request per time in ``times``, as ``served`` makes them, drawn column-wise (fast)."""
    from core.platform.prediction_log.parquet import new_request_id
    from core.platform.prediction_log.writer import Served

    n = len(times)
    cols = {f"n{i:02d}": rng.normal(size=n) for i in range(15)}
    cols |= {f"c{i}": np.array(CATEGORIES, dtype=object)[rng.integers(0, 4, n)] for i in range(5)}
    outputs = rng.integers(0, 2, n).tolist()
    return [Served(new_request_id(ts), ts, MODEL, "champion", 1,
                   {k: v[j: j + 1] for k, v in cols.items()}, outputs[j: j + 1], 3.2, "token:bench")
            for j, ts in enumerate(times)]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def latency(folder: Path, factory, mode: str) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, syncs) of handing single records to the log until they may be acknowledged."""
    from core.platform.prediction_log.journal import Journal
    from core.platform.prediction_log.writer import LogWriter
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
    from core.platform.prediction_log.journal import Journal
    from core.platform.prediction_log.writer import LogWriter
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


def fill(factory, now) -> float:
    """Log ROWS single-record predictions spread over the 24 hours before ``now`` through the real writer, in
    chunks (so the requests waiting in memory stay bounded); rows/s of the writer."""
    from core.platform.prediction_log.writer import LogWriter

    rng = np.random.default_rng(7)
    start = now - timedelta(hours=24)
    step = timedelta(hours=24) / (ROWS + 1)
    chunk = 100_000
    writer = LogWriter(factory, capacity=chunk + 1, batch_rows=5000)
    writer.start()
    seconds = 0.0
    for at in range(0, ROWS, chunk):
        items = served_many(rng, [start + (i + 1) * step for i in range(at, min(at + chunk, ROWS))])
        started = time.perf_counter()
        for item in items:
            writer.put(item, timeout=600)
        writer.drain(3600)
        seconds += time.perf_counter() - started
    writer.stop()
    return ROWS / seconds


WINDOW = """
import json, sys, time
from datetime import datetime, timedelta
sys.path.insert(0, sys.argv[1])
from core.settings import get_settings
from db.session import make_engine, make_session_factory
settings = get_settings()
factory = make_session_factory(make_engine(settings.db_url))
model, how, now = sys.argv[2], sys.argv[3], datetime.fromisoformat(sys.argv[4])
import pandas as pd
from sqlalchemy import select
from core.monitoring.checks import window_frame
from db.models import PredictionLog
started = time.perf_counter()  # imports (the same for both) not timed
if how == "json":  # today's implementation before issue 17: every JSON row of the window into pandas
    with factory() as session:
        rows = session.execute(select(PredictionLog.inputs, PredictionLog.output)
                               .where(PredictionLog.model == model, PredictionLog.ts >= now - timedelta(hours=24),
                                      PredictionLog.alias != "shadow")).all()
    frame = pd.DataFrame.from_records([r.inputs for r in rows]).assign(output=[r.output for r in rows])
    del rows
else:
    frame = window_frame(factory, model=model, hours=24, now=now, store=settings.data_store).frame
seconds = time.perf_counter() - started
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "rows": len(frame), "peak_mb": peak / 1024}))
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


def http_durability(tmp: Path) -> None:
    """p50/p99 of single-record predict requests over HTTP against two real ``cli.py serve`` processes, one with
    ``LEANOPS_PREDICTION_LOG_DURABILITY=fsync`` and one with ``batch``, in interleaved rounds."""
    sys.path.insert(0, str(ROOT / "bench"))
    import serving as http  # bench/serving.py: its workspace, servers and keep-alive client

    home = tmp / "http"
    home.mkdir()
    env, token, _, rows = http.build_workspace(home)
    ports = {mode: http.free_port() for mode in ("fsync", "batch")}
    logs = {mode: home / f"serve-{mode}.log" for mode in ports}
    serve = [sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port"]
    procs = {mode: http.start([*serve, str(port)], env | {"LEANOPS_PREDICTION_LOG_DURABILITY": mode}, logs[mode])
             for mode, port in ports.items()}
    try:
        for mode, port in ports.items():
            http.wait_ready(port, "/health/ready", procs[mode], logs[mode])
        headers = {"Authorization": f"Bearer {token}"}
        bodies = {mode: [http._request(port, f"/v1/models/{MODEL}/predict", json.dumps({"records": [row]}).encode(),
                                       headers) for row in rows[:500]] for mode, port in ports.items()}
        for mode, port in ports.items():  # warm: connections, the model, the journal's first segment
            http.load(port, bodies[mode], 0.5, 4)
        seen: dict[tuple[str, int], list[float]] = {}
        errors = 0
        for _ in range(HTTP_ROUNDS):
            for concurrency in (1, 16):
                for mode, port in ports.items():
                    done = http.load(port, bodies[mode], ROUND_SECONDS, concurrency)
                    seen.setdefault((mode, concurrency), []).extend(done.latencies)
                    errors += done.errors
        print(f"   over HTTP (`cli.py serve`, 1 worker each, {HTTP_ROUNDS} interleaved rounds of {ROUND_SECONDS:g} s; "
              f"{errors} errors):")
        for concurrency in (1, 16):
            line = {mode: (pct(seen[(mode, concurrency)], 50), pct(seen[(mode, concurrency)], 99),
                           len(seen[(mode, concurrency)])) for mode in ports}
            (f50, f99, fn), (b50, b99, bn) = line["fsync"], line["batch"]
            print(f"   concurrency {concurrency:2d}: fsync p50 {f50:6.2f} ms p99 {f99:6.2f} ms ({fn:,} requests)   "
                  f"batch p50 {b50:6.2f} ms p99 {b99:6.2f} ms ({bn:,})   durable costs p50 {f50 - b50:+.2f} ms, "
                  f"p99 {f99 - b99:+.2f} ms")
    finally:
        for proc in procs.values():
            http.stop(proc)


def other_models(store, hours: list, rows: int, scratch: Path) -> int:
    """Partitions of nine more models, ``rows`` predictions in all over ``hours``, written as the compactor
    writes them (its ``_write_durably``, ``schema_id`` and file names; columns and types as ``to_tables``
    makes). Returns the number of files."""
    import hashlib

    import pyarrow as pa

    from core.platform.prediction_log import parquet

    rng = np.random.default_rng(11)
    per_file = max(rows // (9 * len(hours)), 1)
    files, log_id = 0, 10**9
    categories = pa.array(CATEGORIES)
    for m in range(2, 11):
        for hour in hours:
            ms = np.sort(rng.integers(0, 3_600_000, per_file)) + int(hour.timestamp() * 1000)
            ids = [f"{t:012x}{r:020x}" for t, r in zip(ms.tolist(), rng.integers(0, 2**62, per_file).tolist(),
                                                          strict=True)]
            hashes = [hashlib.sha256(rid.encode()).hexdigest() for rid in ids]  # stands in: the same length
            columns = {"log_id": pa.array(np.arange(log_id, log_id + per_file), pa.int64()),
                       "request_id": pa.array(ids, pa.string()),
                       "record_index": pa.array(np.zeros(per_file, np.int32)),
                       "ts": pa.array(ms * 1000, pa.int64()).cast(parquet.TS),
                       "alias": pa.array(["champion"] * per_file, pa.string()),
                       "version": pa.array(np.ones(per_file, np.int32)),
                       "input_hash": pa.array(hashes, pa.string()),
                       "latency_ms": pa.array(np.full(per_file, 3.2)),
                       "requested_by": pa.array(["token:bench"] * per_file, pa.string()),
                       "output": pa.array(rng.integers(0, 2, per_file), pa.int64())}
            columns |= {f"inputs.c{i}": categories.take(pa.array(rng.integers(0, 4, per_file))) for i in range(5)}
            columns |= {f"inputs.n{i:02d}": pa.array(rng.normal(size=per_file)) for i in range(15)}
            table = pa.table(columns).replace_schema_metadata({parquet.JSON_COLUMNS: b""})
            table = table.sort_by([("request_id", "ascending"), ("record_index", "ascending")])  # as compacted
            digest = hashlib.sha256("\n".join(f"{r}:0" for r in ids).encode()).hexdigest()[:20]
            key = f"{parquet.hour_prefix(f'{MODEL}-{m}', hour)}/{parquet.schema_id(table)}/part-{digest}.parquet"
            parquet._write_durably(store, key, table, scratch)
            files += 1
            log_id += per_file
    return files


def main() -> None:
    from core.actors import system_actor
    from core.platform.database import migrate
    from core.platform.prediction_log import parquet, reads
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

        print(f"1. durable acknowledgement, single-record requests one at a time ({REQUESTS} each, in process):")
        for mode in ("off", "batch", "fsync"):
            p50, p99, syncs = latency(Path(tmp) / "segments", factory, mode)
            print(f"   {mode:5s}  p50 {p50:7.3f} ms   p99 {p99:7.3f} ms" + (f"   ({syncs} syncs)" if syncs else ""))
        print("   16 threads at once (the GIL and the writer thread share 2 cores with them):")
        for mode in ("off", "batch", "fsync"):
            p50, p99, per_sync = concurrent(Path(tmp) / "segments", factory, mode)
            print(f"   {mode:5s}  p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"
                  + (f"   ({per_sync:.1f} records per sync)" if mode == "fsync" else ""))
        if HTTP_ROUNDS:
            http_durability(Path(tmp))

        from sqlalchemy import delete, func, select

        from db.models import PredictionLog, utcnow

        with factory.begin() as session:
            session.execute(delete(PredictionLog))
        engine.dispose()
        with __import__("sqlite3").connect(settings.db_url.removeprefix("sqlite:///")) as conn:
            conn.execute("VACUUM")
        db_file = Path(settings.db_url.removeprefix("sqlite:///"))
        empty = db_file.stat().st_size
        engine = make_engine(settings.db_url)
        factory = make_session_factory(engine)

        now = utcnow()
        started = time.perf_counter()
        rate = fill(factory, now)
        print(f"2. the real writer: {rate:,.0f} rows/s into SQLite ({ROWS:,} single-record requests over 24 h, "
              f"20 features; {time.perf_counter() - started:.0f} s with making the requests)")
        json_bytes = (db_file.stat().st_size - empty) / ROWS

        json_s, json_mb, json_rows = window_run(env, "json", now.isoformat())  # today's read, before compaction
        started = time.perf_counter()
        result = parquet.compact(factory, settings.data_store, actor=system_actor("bench"), holder="bench",
                                 scratch=home / "tmp", now=now)
        compact_s = time.perf_counter() - started
        parquet_bytes = result["bytes"] / max(result["rows"], 1)
        print(f"3. bytes per prediction: JSON rows in SQLite {json_bytes:,.0f} B, Parquet {parquet_bytes:,.0f} B "
              f"(ratio {json_bytes / parquet_bytes:.1f}x); compaction of {result['rows']:,} rows in "
              f"{result['files']} files took {compact_s:.1f} s")
        new_s, new_mb, new_rows = window_run(env, "parquet", now.isoformat())
        print(f"4. drift check's 24 h window ({json_rows:,} rows JSON / {new_rows:,} rows hot+Parquet): "
              f"today's JSON read {json_s:.2f} s, {json_mb:,.0f} MB peak; hot+partitions {new_s:.2f} s, "
              f"{new_mb:,.0f} MB peak (time {json_s / new_s:.1f}x less, memory {json_mb / new_mb:.1f}x less; "
              f"goal: peak <= 1 GB: {'met' if new_mb <= 1024 else 'NOT met'})")

        store = settings.data_store
        keys = parquet.list_files(store, parquet.ROOT)
        hours = sorted({h for k in keys if (h := parquet.hour_of_key(k)) is not None})
        started = time.perf_counter()
        built = other_models(store, hours, LOOKUP_ROWS - ROWS, home / "tmp") if LOOKUP_ROWS > ROWS else 0
        with factory() as session:
            hot_rows = session.scalar(select(func.count()).select_from(PredictionLog)) or 0
            hot_ids = list(session.scalars(select(PredictionLog.request_id).order_by(func.random()).limit(20)))
        keys = parquet.list_files(store, parquet.ROOT)
        total = sum(parquet.read_file(store, k, columns=["record_index"]).num_rows for k in keys) + hot_rows
        rng = np.random.default_rng(3)
        picks = []
        for key in [keys[int(i)] for i in rng.integers(0, len(keys), 40)]:
            column = parquet.read_file(store, key, columns=["request_id"]).column("request_id")
            picks += [column[int(i)].as_py() for i in rng.integers(0, len(column), 5)]
        times = []
        for rid in picks + hot_ids:
            started = time.perf_counter()
            assert reads.lookup(factory, store, request_id=rid), rid
            times.append(time.perf_counter() - started)
        print(f"5. lookup by request id among {total:,} predictions of 10 models ({len(keys)} partition files, "
              f"{built} of them written directly; {hot_rows:,} rows hot): {len(times)} lookups, median "
              f"{statistics.median(times) * 1000:.1f} ms, p99 {pct(times, 99):.1f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
