"""How long refusing a decompression bomb takes, next to reading the same file (issue 14).

Three files: a 20 M-row zstd Parquet file of ~90 KB, a CSV whose header has 100,000 columns, and a
CSV with 20 M rows. Each is refused by ``read_table`` under the default limits (best of
``--rounds``), then read once with the limits lifted. Goal: every refusal well under a second,
with the process's peak memory barely above what it held before. Exits 1 when a refusal misses.

    PYTHONPATH=. .venv/bin/python bench/table_bombs.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

GOAL_S = 1.0


def make_files(folder: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    bomb = folder / "bomb.parquet"
    chunk = pa.table({"x": pa.array(np.zeros(1_000_000, dtype=np.int64))})
    with pq.ParquetWriter(bomb, chunk.schema, compression="zstd") as writer:
        for _ in range(20):
            writer.write_table(chunk)
    wide = folder / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("1" * 100_000) + "\n")
    long = folder / "long.csv"
    with long.open("wb") as fh:
        fh.write(b"a,b\n")
        for _ in range(20):
            fh.write(b"1,2\n" * 1_000_000)
    return {"20 M-row zstd Parquet": bomb, "100,000-column CSV header": wide, "20 M-row CSV": long}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(f"{field}:"))


def measure(call: Callable[[], object]) -> tuple[float, float, str]:
    """Seconds, peak memory growth (MB) and the outcome of one call."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _status_kb("VmRSS")
    except OSError:
        before = -1
    start = time.perf_counter()
    try:
        result = call()
        outcome = f"read {result.frame.shape}"  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - the refusal is the outcome
        outcome = str(exc)
    elapsed = time.perf_counter() - start
    grown = (_status_kb("VmHWM") - before) / 1024 if before >= 0 else float("nan")
    return elapsed, grown, outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from core.data.tables import TableLimits, read_table

    lifted = TableLimits(rows=10**12, columns=10**9, mb=10**9)
    missed = False
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        measure(lambda: read_table(files["20 M-row zstd Parquet"]))  # imports, warm caches
        for what, path in files.items():
            refusals = [measure(lambda p=path: read_table(p, max_bytes=200 * 2**20)) for _ in range(args.rounds)]
            refused_s = min(r[0] for r in refusals)
            refused_mb = max(r[1] for r in refusals)
            read_s, read_mb, read_outcome = measure(lambda p=path: read_table(p, limits=lifted))
            missed |= refused_s >= GOAL_S
            print(f"{what} ({path.stat().st_size / 1024:,.0f} KB)")
            print(f"  refused in {refused_s * 1000:8.1f} ms, peak memory +{refused_mb:6.0f} MB: {refusals[0][2]}")
            print(f"  read in    {read_s * 1000:8.1f} ms, peak memory +{read_mb:6.0f} MB: {read_outcome}")
            gc.collect()
    print(f"goal: every refusal under {GOAL_S:g} s: {'missed' if missed else 'met'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
