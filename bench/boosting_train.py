"""Training with the xgboost and lightgbm kinds vs random_forest, as whole commands (`cli.py train …`).

One dataset of ``BENCH_ROWS`` rows (default 1,000,000) × 25 columns (22 numeric, 2 categorical, the target) is
registered in a temporary workspace; then `cli.py train --model K` runs for K in random_forest, xgboost and
lightgbm, interleaved, ``BENCH_ROUNDS`` times (default 3), each with its defaults, timed as a process (imports,
loading and hashing the data, the fit, evaluation, logging the model to MLflow, registering it). Printed: the
median seconds of each with the spread, the ratio to random_forest, each model's holdout F1, and the load average.

Run by hand: ``.venv/bin/python bench/boosting_train.py`` (``BENCH_ROWS=100000`` for a quick look).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = int(os.environ.get("BENCH_ROWS", 1_000_000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
KINDS = ("random_forest", "xgboost", "lightgbm")


def data(path: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows).astype("float32") for i in range(22)})
    frame["region"] = rng.choice(["north", "south", "east", "west"], rows)
    frame["plan"] = rng.choice(["basic", "pro", "max"], rows)
    signal = frame["x0"] + frame["x1"] * frame["x2"] - 0.5 * frame["x3"] ** 2 + (frame["plan"] == "basic")
    frame["label"] = (signal + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    frame.to_parquet(path, index=False)


def run(env: dict[str, str], *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "cli.py", *args, "--json"], cwd=ROOT, env=os.environ | env,
                          capture_output=True, text=True, timeout=7200)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"cli.py {' '.join(args)} failed: {done.stdout[-1000:]} {done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="boosting-bench-"))
    env = {"LEANOPS_HOME": str(home / "ws"), "LEANOPS_SCHEDULER": "off", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "1", "LEANOPS_ADMIN_PASSWORD": "bench-admin-pass-1",
           "LEANOPS_MAX_UPLOAD_MB": "2000", "LEANOPS_MAX_TABLE_ROWS": str(max(ROWS * 2, 2_000_000))}
    print(f"workspace {home}; {ROWS:,} rows × 25 columns …", flush=True)
    data(home / "data.parquet", ROWS)
    run(env, "init")
    run(env, "dataset", "add", "bench", str(home / "data.parquet"))
    seconds: dict[str, list[float]] = {k: [] for k in KINDS}
    f1: dict[str, float] = {}
    loads = []
    for round_no in range(ROUNDS):
        for kind in KINDS:
            elapsed, doc = run(env, "train", "--dataset", "bench", "--target", "label", "--model", kind,
                               "--model-name", f"bench-{kind.replace('_', '-')}")
            seconds[kind].append(elapsed)
            f1[kind] = doc["metrics"]["f1"]
            loads.append(os.getloadavg()[0])
            print(f"  round {round_no + 1}: {kind:<14} {elapsed:7.1f} s  f1 {f1[kind]:.4f}  "
                  f"(load average {loads[-1]:.1f})", flush=True)
    forest = statistics.median(seconds["random_forest"])
    print(f"\n`cli.py train` on {ROWS:,} × 25, {ROUNDS} interleaved round(s), defaults (load average {min(loads):.1f} "
          f"… {max(loads):.1f} on {os.cpu_count()} CPUs):")
    for kind in KINDS:
        median = statistics.median(seconds[kind])
        print(f"  {kind:<14} median {median:7.1f} s (spread {min(seconds[kind]):.1f} … {max(seconds[kind]):.1f}), "
              f"{median / forest:5.2f} × random_forest's time, holdout f1 {f1[kind]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
