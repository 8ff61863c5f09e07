"""Registering a 1M-row x 30-column CSV vs plain ``pandas.read_csv`` + ``to_parquet`` on the same file.

Goal (issue 3): registration (read, hash, schema inference, pandera certificate, profile, Parquet,
database rows, audit event) takes at most 2x the plain pandas round trip. Both are timed side by
side in one run, alternating, best of ``--rounds``; the script prints the ratio and exits 1 when
it is above the goal.

    PYTHONPATH=. .venv/bin/python bench/dataset_register.py [--rows 1000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

GOAL = 2.0


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    """30 columns: 12 floats (one with 5% missing), 8 ints, 8 low-cardinality strings, a bool, a date."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for i in range(12):
        values = rng.normal(size=rows).round(4)
        if i == 0:
            values[rng.random(rows) < 0.05] = np.nan
        cols[f"f{i}"] = values
    for i in range(8):
        cols[f"i{i}"] = rng.integers(0, 1000, rows)
    for i in range(8):
        cols[f"c{i}"] = rng.choice(np.array(["alpha", "beta", "gamma", "delta", "epsilon"]), rows)
    cols["flag"] = rng.random(rows) < 0.3
    cols["day"] = (np.datetime64("2024-01-01") + rng.integers(0, 365, rows).astype("timedelta64[D]"))
    pcsv.write_csv(pa.table(cols), path)


def time_pandas(csv: Path, out: Path) -> float:
    start = time.perf_counter()
    pd.read_csv(csv).to_parquet(out)
    return time.perf_counter() - start


def time_register(csv: Path, work: Path, round_: int) -> tuple[float, str]:
    from core.actors import Actor
    from core.data import datasets
    from core.platform.database import migrate, transaction
    from db.session import make_engine, make_session_factory

    home = work / f"ws{round_}"
    url = f"sqlite:///{home / 'leanops.db'}"
    migrate(url)
    factory = make_session_factory(make_engine(url))
    start = time.perf_counter()
    with transaction(factory) as session:
        reg = datasets.register(session, actor=Actor("bench", "scientist"), name="bench", data=csv,
                                filename=csv.name, store=home, source="bench")
    elapsed = time.perf_counter() - start
    return elapsed, f"v{reg.version.version} sha {reg.version.sha256[:12]} certificate passed={reg.certificate.passed}"


def stages(csv: Path) -> dict[str, float]:
    """Where the time goes (informational)."""
    from datetime import UTC, datetime

    from core.data.profile import compute_profile
    from core.data.quality import certify, infer_schema
    from core.data.tables import read_table, write_parquet

    out: dict[str, float] = {}
    t = time.perf_counter()
    table = read_table(csv)
    out["read + canonical + hash"] = time.perf_counter() - t
    t = time.perf_counter()
    profile = compute_profile(table.frame, table.arrow, row_hashes=table.row_hashes)
    out["profile"] = time.perf_counter() - t
    t = time.perf_counter()
    certify(table.frame, profile=profile, spec=infer_schema(profile), schema_version=1, previous_rows=None,
            at=datetime.now(UTC))
    out["schema + pandera certificate"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_parquet(table.arrow, Path(tmp) / "x.parquet")
        out["write parquet"] = time.perf_counter() - t
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="leanops-bench-"))
    try:
        csv = work / "bench.csv"
        t = time.perf_counter()
        make_csv(csv, args.rows)
        print(f"data: {args.rows:,} rows x 30 columns, {csv.stat().st_size / 2**20:.0f} MB CSV "
              f"(made in {time.perf_counter() - t:.1f} s)")
        # warm the page cache and imports so neither side pays for the first read
        pd.read_csv(csv, nrows=1000)
        import pandera.pandas  # noqa: F401
        baseline, ours = [], []
        for r in range(args.rounds):
            baseline.append(time_pandas(csv, work / f"pandas{r}.parquet"))
            elapsed, what = time_register(csv, work, r)
            ours.append(elapsed)
            print(f"round {r + 1}: pandas read_csv+to_parquet {baseline[-1]:.2f} s | "
                  f"register {elapsed:.2f} s ({what})")
        for name, seconds in stages(csv).items():
            print(f"  stage {name}: {seconds:.2f} s")
        ratio = min(ours) / min(baseline)
        print(f"best: pandas {min(baseline):.2f} s, register {min(ours):.2f} s -> ratio {ratio:.2f}x "
              f"(goal <= {GOAL:.1f}x): {'OK' if ratio <= GOAL else 'TOO SLOW'}")
        return 0 if ratio <= GOAL else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
