"""Drift check speed, command against command: ``cli.py drift`` vs Evidently's DataDriftPreset, each a process.

    .venv/bin/python bench/drift.py [--rows 1000000] [--seed 0] [--runs 3] [--keep DIR]

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

Printed: wall seconds of each, the ratio, peak RSS of each process (``wait4``'s ``ru_maxrss``), and
the columns each flagged (they must agree on the planted drift). LeanOps' peak is its largest process:
the command loads the model in a spawned child beside the main process (``core.monitoring.model_outputs``),
and ``ru_maxrss`` reports the larger of the two, not their sum.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each; the median is the figure")
    parser.add_argument("--keep", type=Path, help="set-up folder to reuse (made when missing) instead of a temp dir")
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
        print(f"set-up (not timed): {time.perf_counter() - started:.0f} s", flush=True)
        ours_runs, theirs_runs = [], []
        for run in range(1, args.runs + 1):  # interleaved: both see the same load, run after run
            ours_s, ours_mb, code, out, err = timed(
                [sys.executable, "cli.py", "drift", "bench", "--current", str(folder / "current.parquet"), "--json"],
                env)
            if code not in (0, 1):
                raise SystemExit(f"cli.py drift failed ({code}):\n{err[-3000:]}")
            ours = json.loads(out)
            theirs_s, theirs_mb, code, out, err = timed(
                [sys.executable, "-c", EVIDENTLY, str(folder / "reference.parquet"), str(folder / "current.parquet"),
                 json.dumps(NUMERIC), json.dumps(CATEGORICAL)], env)
            if code != 0:
                raise SystemExit(f"Evidently failed ({code}):\n{err[-3000:]}")
            theirs = json.loads(out.strip().splitlines()[-1])
            ours_runs.append(ours_s)
            theirs_runs.append(theirs_s)
            print(f"run {run}: `cli.py drift --json` {ours_s:7.2f} s (peak RSS {ours_mb:5.0f} MB) · Evidently process "
                  f"{theirs_s:7.2f} s (peak RSS {theirs_mb:5.0f} MB) · {theirs_s / ours_s:5.1f}× · load average "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
        print(f"verdict: {'; '.join(ours['verdict']['reasons']) or 'stable'} (exit "
              f"{1 if ours['drift_detected'] else 0})")
        estimate = ", ".join(f"{k} {v['value']:.3f} [{v['lower']:.3f}, {v['upper']:.3f}]"
                             for k, v in ours["estimated_performance"].items())
        print(f"estimated performance: {estimate or 'none'}", flush=True)
    ours_s, theirs_s = statistics.median(ours_runs), statistics.median(theirs_runs)
    flagged = sorted(c for c, v in ours["columns"].items() if v["drifted"])
    print(f"median of {args.runs}: `cli.py drift` {ours_s:.2f} s, Evidently {theirs_s:.2f} s: `cli.py drift` is "
          f"{theirs_s / ours_s:.1f}× faster, command vs command (goal ≥ 20×); peak memory "
          f"{theirs_mb / ours_mb:.1f}× lower (last run)")
    print(f"flagged by LeanOps:   {', '.join(flagged) or 'none'} (share {ours['drift_share']:.2f})")
    print(f"flagged by Evidently: {', '.join(theirs['flagged']) or 'none'} (share {theirs['share']:.2f})")
    same = flagged == theirs["flagged"]
    print(f"same columns flagged: {'yes' if same else 'NO'}; planted drift: {', '.join(sorted(DRIFTED))}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
