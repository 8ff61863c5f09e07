"""Drift check speed, command against command: ``cli.py drift`` vs Evidently's DataDriftPreset, each a process.

    .venv/bin/python bench/drift.py [--rows 1000000] [--seed 0] [--runs 3] [--keep DIR]
    .venv/bin/python bench/drift.py --current-rows 10000000   # bounded memory: LeanOps alone on 10M rows

Reference and current frames of ROWS rows × 25 columns (20 numeric, 5 categorical) are generated from
a seed, the current frame with drift in a known subset of columns, and written as Parquet files. Set-up
(not timed): a fresh workspace (``cli.py init``), the reference frame registered as a dataset with a
binary target and a histogram-gradient-boosting model trained on it and made champion, as a user would.

Timed, each as a whole process from ``exec`` to exit (imports, reading the file, everything):

- LeanOps: ``python cli.py drift bench --current current.parquet --json`` — the verdict, prediction
  drift and the performance estimate (on a 20,000-row sample), the check stored and audited, a sample
  kept and a job queued for the Evidently HTML (built off the verdict's path);
- Evidently: a Python process that reads reference.parquet and current.parquet and runs
  ``Report([DataDriftPreset()], include_tests=True)`` on them, printing its flagged columns.

Printed: wall seconds of each (the figure a user sees: the command's time from start to exit), the
ratio, peak RSS of each process (``wait4``'s ``ru_maxrss``), the load average after each run, and
the columns each flagged (they must agree on the planted drift); then the medians of the interleaved
runs, their spread (min–max) and the goals of issue 29 (≥ 40× Evidently, ≤ 3 s on 1M × 25).

Both processes run with their bytecode cached (``PYTHONPYCACHEPREFIX`` in the set-up folder), as from
any installed venv (pip writes .pyc files at install), after one untimed warm-up run of each: on a
machine that sets ``PYTHONDONTWRITEBYTECODE`` (this one does) every run would otherwise compile
pandas, SQLAlchemy, scikit-learn, MLflow and Evidently from source, seconds that say nothing of
either tool. The warm-up also lets LeanOps keep its verified copy of the model's files (its first
check of a version reads them from MLflow). ``--current-rows`` writes a larger current file (a
million rows at a time) and runs LeanOps alone on it: its peak memory against the 1M-row run's
shows that memory does not grow with the rows (Evidently needs every row in pandas twice).

LeanOps' peak is its largest process: the command loads the model in a spawned child beside the main
process (``core.monitoring.model_outputs``), and ``ru_maxrss`` reports the larger of the two, not their sum.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUMERIC = [f"n{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
# Drift well clear of the thresholds (normalised Wasserstein 0.1, Jensen-Shannon 0.1), so both
# tools' verdicts are about the data, not about rounding near a threshold.
DRIFTED = ["n00", "n03", "n07", "n12", "n18", "c1", "c3"]


def frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, current); current = a fresh draw, with drift in the DRIFTED columns."""
    def draw(rng: np.random.Generator, drift: bool) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {}
        for i, name in enumerate(NUMERIC):
            kind = i % 4
            if kind == 0:
                values = rng.normal(50 + i, 10, rows)
            elif kind == 1:
                values = rng.lognormal(1.0, 0.6, rows)
            elif kind == 2:
                values = rng.uniform(0, 100, rows)
            else:
                values = rng.gamma(2.0, 5.0, rows)
            if drift and name in DRIFTED:
                values = values + 0.4 * values.std() if name != "n03" else values * 1.6  # shift, or a scale change
            data[name] = values
        levels = [list("abc"), list("abcde"), ["x", "y"], [f"k{j}" for j in range(8)], ["red", "green", "blue"]]
        shares = [[0.5, 0.3, 0.2], [0.3, 0.25, 0.2, 0.15, 0.1], [0.6, 0.4], [1 / 8] * 8, [0.2, 0.3, 0.5]]
        for name, level, share in zip(CATEGORICAL, levels, shares, strict=True):
            share = list(share)
            if drift and name == "c1":  # one category's share 20 points lower
                share = [0.1, 0.35, 0.25, 0.2, 0.1]
            if drift and name == "c3":  # a category the reference never saw takes 25 %
                level, share = [*level, "k_new"], [0.75 / 8] * 8 + [0.25]
            data[name] = rng.choice(np.asarray(level, dtype=object), rows, p=share)
        return pd.DataFrame(data)

    return draw(np.random.default_rng(seed), False), draw(np.random.default_rng(seed + 1), True)



def with_target(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The reference frame with a binary target that leans on n01, n05 and c0."""
    rng = np.random.default_rng(seed + 7)
    logit = 0.8 * (np.log(frame["n01"]) - 1.0) / 0.6 - 0.04 * (frame["n05"] - 55) + 1.2 * (frame["c0"] == "a") - 0.6
    return frame.assign(target=(rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int))


EVIDENTLY = """
import json, sys
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
numeric, categorical = json.loads(sys.argv[3]), json.loads(sys.argv[4])
ref = pd.read_parquet(sys.argv[1], columns=numeric + categorical)
cur = pd.read_parquet(sys.argv[2])
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
doc = Report([DataDriftPreset()], include_tests=True).run(
    current_data=Dataset.from_pandas(cur, data_definition=definition),
    reference_data=Dataset.from_pandas(ref, data_definition=definition)).dict()
prefix = "Value Drift for column "
flagged = sorted(t["name"].removeprefix(prefix) for t in doc["tests"]
                 if t["name"].startswith(prefix) and t["status"] == "FAIL")
share = next(m["value"]["share"] for m in doc["metrics"] if m["metric_name"].startswith("DriftedColumnsCount"))
print(json.dumps({"flagged": flagged, "share": share}))
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str, str]:
    """(wall seconds, peak RSS MB, exit code, stdout, stderr) of one process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return seconds, usage.ru_maxrss / 1024, proc.returncode, out.read().decode(), err.read().decode()


def set_up(folder: Path, rows: int, seed: int) -> dict[str, str]:
    """Frames as Parquet, and a workspace with model ``bench`` trained on the reference and made champion."""
    ref, cur = frames(rows, seed)
    with_target(ref, seed).to_parquet(folder / "reference.parquet", index=False)
    cur.to_parquet(folder / "current.parquet", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env |= {"LEANOPS_HOME": str(folder / "ws"), "LEANOPS_SCHEDULER": "off", "LEANOPS_ADMIN_PASSWORD": "bench-pass-123",
            "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "PYTHONHASHSEED": "0"}
    for argv in (["init"],
                 ["dataset", "add", "bench", str(folder / "reference.parquet")],
                 ["train", "--dataset", "bench", "--target", "target", "--model", "hist_gradient_boosting",
                  "--model-name", "bench"],
                 ["promote", "bench", "1", "--force", "--reason", "benchmark"]):
        done = subprocess.run([sys.executable, "cli.py", *argv, "--json"], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=False)
        if done.returncode not in (0, 1):
            raise SystemExit(f"set-up step {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return env


def big_current(folder: Path, rows: int, seed: int) -> Path:
    """A current file of ``rows`` rows (drift as in ``frames``), written a million rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / f"current-{rows}.parquet"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    writer = None
    for i, at in enumerate(range(0, rows, 1_000_000)):
        _, chunk = frames(min(1_000_000, rows - at), seed + 100 + i)
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    tmp.replace(path)
    return path


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each; the median is the figure")
    parser.add_argument("--keep", type=Path, help="set-up folder to reuse (made when missing) instead of a temp dir")
    parser.add_argument("--current-rows", type=int, help="LeanOps alone on a current file this large (bounded memory)")
    args = parser.parse_args()
    print(f"drift check, command vs command: {args.rows:,} rows × 25 columns (20 numeric, 5 categorical); "
          f"drift planted in {', '.join(DRIFTED)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="leanops-bench-drift-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        if (folder / "ws").exists():
            env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
            env |= {"LEANOPS_HOME": str(folder / "ws"), "LEANOPS_SCHEDULER": "off",
                    "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
        else:
            env = set_up(folder, args.rows, args.seed)
        # bytecode cached for both, as from an installed venv (see the module's docstring)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        print(f"set-up (not timed): {time.perf_counter() - started:.0f} s", flush=True)
        current = folder / "current.parquet"
        ours_argv = [sys.executable, "cli.py", "drift", "bench", "--current", str(current), "--json"]
        theirs_argv = [sys.executable, "-c", EVIDENTLY, str(folder / "reference.parquet"), str(current),
                       json.dumps(NUMERIC), json.dumps(CATEGORICAL)]
        if args.current_rows:
            bounded(folder, env, args, ours_argv)
            return
        # warm-up, not timed: bytecode written for both (Evidently's by importing what its run imports),
        # the model's files kept by LeanOps
        timed(ours_argv, env)
        timed([sys.executable, "-c", EVIDENTLY.split("numeric, categorical")[0]], env)
        ours_runs, theirs_runs, ours_mem, theirs_mem, loads = [], [], [], [], []
        for run in range(1, args.runs + 1):  # interleaved: both see the same load, run after run
            ours_s, ours_mb, code, out, err = timed(ours_argv, env)
            if code not in (0, 1):
                raise SystemExit(f"cli.py drift failed ({code}):\n{err[-3000:]}")
            ours = json.loads(out)
            theirs_s, theirs_mb, code, out, err = timed(theirs_argv, env)
            if code != 0:
                raise SystemExit(f"Evidently failed ({code}):\n{err[-3000:]}")
            theirs = json.loads(out.strip().splitlines()[-1])
            ours_runs.append(ours_s)
            theirs_runs.append(theirs_s)
            ours_mem.append(ours_mb)
            theirs_mem.append(theirs_mb)
            loads.append(os.getloadavg()[0])
            print(f"run {run}: `cli.py drift --json` {ours_s:7.2f} s (peak RSS {ours_mb:5.0f} MB) · Evidently process "
                  f"{theirs_s:7.2f} s (peak RSS {theirs_mb:5.0f} MB) · {theirs_s / ours_s:5.1f}× · load average "
                  f"{loads[-1]:.2f} on {os.cpu_count()} CPUs", flush=True)
        print(f"verdict: {'; '.join(ours['verdict']['reasons']) or 'stable'} (exit "
              f"{1 if ours['drift_detected'] else 0})")
        estimate = ", ".join(f"{k} {v['value']:.3f} [{v['lower']:.3f}, {v['upper']:.3f}]"
                             for k, v in ours["estimated_performance"].items())
        print(f"estimated performance: {estimate or 'none'}", flush=True)
    ours_s, theirs_s = statistics.median(ours_runs), statistics.median(theirs_runs)
    ratios = [t / o for o, t in zip(ours_runs, theirs_runs, strict=True)]
    flagged = sorted(c for c, v in ours["columns"].items() if v["drifted"])
    print(f"\nmedians of {args.runs} interleaved runs (load average {spread(loads)} on {os.cpu_count()} CPUs; "
          "the figure a user sees is the command's wall time):")
    print(f"  `cli.py drift --json`         {spread(ours_runs)} s, peak RSS {spread(ours_mem)} MB")
    print(f"  Evidently DataDriftPreset     {spread(theirs_runs)} s, peak RSS {spread(theirs_mem)} MB")
    print(f"  ratio Evidently / LeanOps     {spread(ratios)}×   goal ≥ 40×: "
          f"{'met' if statistics.median(ratios) >= 40 else 'NOT met'}")
    print(f"  LeanOps wall time             {ours_s:.2f} s   goal ≤ 3 s on 1M × 25: "
          f"{'met' if ours_s <= 3 else 'NOT met'}{' (under load: see the load average)' if ours_s > 3 else ''}")
    print(f"  peak memory Evidently / LeanOps {statistics.median(theirs_mem) / statistics.median(ours_mem):.1f}×")
    print(f"flagged by LeanOps:   {', '.join(flagged) or 'none'} (share {ours['drift_share']:.2f})")
    print(f"flagged by Evidently: {', '.join(theirs['flagged']) or 'none'} (share {theirs['share']:.2f})")
    same = flagged == theirs["flagged"]
    print(f"same columns flagged: {'yes' if same else 'NO'}; planted drift: {', '.join(sorted(DRIFTED))}")
    if not same:
        sys.exit(1)


def bounded(folder: Path, env: dict[str, str], args: argparse.Namespace, ours_argv: list[str]) -> None:
    """LeanOps alone on ``--current-rows`` rows, beside its run on the 1M-row file: peak memory must not grow."""
    started = time.perf_counter()
    big = big_current(folder, args.current_rows, args.seed)
    print(f"current file of {args.current_rows:,} rows: {big.stat().st_size / 2**20:,.0f} MB on disk "
          f"(written in {time.perf_counter() - started:.0f} s, not timed)", flush=True)
    timed(ours_argv, env)  # warm-up
    big_argv = [*ours_argv[:5], str(big), *ours_argv[6:]]
    small_runs, big_runs, small_mem, big_mem, loads = [], [], [], [], []
    for run in range(1, args.runs + 1):
        small_s, small_mb, code, out, err = timed(ours_argv, env)
        big_s, big_mb, code, out, err = timed(big_argv, env)
        if code not in (0, 1):
            raise SystemExit(f"cli.py drift failed on {big.name} ({code}):\n{err[-3000:]}")
        rows = json.loads(out)["rows"]
        small_runs.append(small_s)
        big_runs.append(big_s)
        small_mem.append(small_mb)
        big_mem.append(big_mb)
        loads.append(os.getloadavg()[0])
        print(f"run {run}: 1M rows {small_s:6.2f} s (peak RSS {small_mb:5.0f} MB) · {rows:,} rows {big_s:6.2f} s "
              f"(peak RSS {big_mb:5.0f} MB) · load average {loads[-1]:.2f}", flush=True)
    print(f"\nmedians of {args.runs} interleaved runs (load average {spread(loads)}):")
    print(f"  1M rows          {spread(small_runs)} s, peak RSS {spread(small_mem)} MB")
    print(f"  {args.current_rows:,} rows  {spread(big_runs)} s, peak RSS {spread(big_mem)} MB")
    print(f"  peak memory {args.current_rows / 1e6:g}× the rows / 1M rows: "
          f"{statistics.median(big_mem) / statistics.median(small_mem):.2f}× (bounded: the file is read a slice "
          "at a time)")


if __name__ == "__main__":
    main()
