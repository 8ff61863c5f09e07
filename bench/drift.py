"""Drift check speed: LeanOps' engine vs Evidently's DataDriftPreset on the same frames, in one run.

    .venv/bin/python bench/drift.py [--rows 1000000] [--seed 0]

Reference and current frames of ROWS rows × 25 columns (20 numeric, 5 categorical) are generated
from a seed; the current frame drifts in a known subset of columns. Each side runs in its own
subprocess (same seed, so the same frames) for an honest peak RSS:

- LeanOps: reference statistics built from the reference frame with ``core/training/reference.py`` (what
  training stores), then ``core/drift.compare`` of the current frame against them;
- Evidently: ``Report([DataDriftPreset()]).run(current, reference)`` on the raw frames.

Printed: seconds of each (imports and data generation excluded), the ratio, peak RSS of each
process during its run (the kernel's high-water mark, reset once the frames are built) and how
much of it is above the frames themselves, and the flagged columns of both.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
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


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _reset_peak() -> float:
    """RSS now, with the kernel's high-water mark reset to it (so the peak seen later is the run's own)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not Linux, or not allowed: the peak then includes building the frames
        pass
    return _rss_now_mb()


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_leanops(rows: int, seed: int) -> dict:
    from core.monitoring import drift
    from core.training import reference

    ref, cur = frames(rows, seed)
    data_mb = _reset_peak()
    cpu, started = time.process_time(), time.perf_counter()
    stats = {"rows": len(ref), "columns": {c: reference.column_summary(ref[c]) for c in ref.columns}}
    built = time.perf_counter()
    result = drift.compare(stats, cur, thresholds=drift.Thresholds())
    done = time.perf_counter()
    return {"seconds": done - started, "reference_seconds": built - started, "check_seconds": done - built,
            "cpu_seconds": time.process_time() - cpu,
            "flagged": sorted(result.drifted), "share": result.drift_share, "peak_rss_mb": _peak_mb(),
            "data_rss_mb": data_mb, "stored_reference_kb": len(json.dumps(stats)) / 1024,
            "methods": sorted({c["method"] for c in result.columns.values()})}


def run_evidently(rows: int, seed: int) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = frames(rows, seed)
    data_mb = _reset_peak()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    cpu, started = time.process_time(), time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition))
    doc = snapshot.dict()
    done = time.perf_counter()
    prefix = "Value Drift for column "
    flagged = sorted(t["name"].removeprefix(prefix) for t in doc["tests"]
                     if t["name"].startswith(prefix) and t["status"] == "FAIL")
    share = next(m["value"]["share"] for m in doc["metrics"] if m["metric_name"].startswith("DriftedColumnsCount"))
    methods = sorted({m["config"]["method"] for m in doc["metrics"] if "ValueDrift" in m["metric_name"]})
    return {"seconds": done - started, "cpu_seconds": time.process_time() - cpu, "flagged": flagged, "share": share,
            "peak_rss_mb": _peak_mb(),
            "data_rss_mb": data_mb, "methods": methods}


def _child(side: str, rows: int, seed: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--side", side, "--rows", str(rows), "--seed", str(seed)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", choices=["leanops", "evidently"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        fn = run_leanops if args.side == "leanops" else run_evidently
        print(json.dumps(fn(args.rows, args.seed)))
        return

    print(f"drift check: {args.rows:,} rows × 25 columns (20 numeric, 5 categorical); "
          f"drift planted in {', '.join(DRIFTED)}", flush=True)
    ours = _child("leanops", args.rows, args.seed)
    print(f"LeanOps   {ours['seconds']:8.2f} s  ({ours['cpu_seconds']:.2f} s CPU; "
          f"reference statistics {ours['reference_seconds']:.2f} s + "
          f"check {ours['check_seconds']:.2f} s; stored reference {ours['stored_reference_kb']:.0f} KB)  "
          f"peak RSS {ours['peak_rss_mb']:.0f} MB ({ours['peak_rss_mb'] - ours['data_rss_mb']:+.0f} MB over the "
          f"frames)  methods {', '.join(ours['methods'])}", flush=True)
    theirs = _child("evidently", args.rows, args.seed)
    print(f"Evidently {theirs['seconds']:8.2f} s  ({theirs['cpu_seconds']:.2f} s CPU)  "
          f"peak RSS {theirs['peak_rss_mb']:.0f} MB "
          f"({theirs['peak_rss_mb'] - theirs['data_rss_mb']:+.0f} MB over the frames)  "
          f"methods {', '.join(theirs['methods'])}")
    print(f"ratio: LeanOps is {theirs['seconds'] / ours['seconds']:.1f}× faster than Evidently "
          f"(check alone, reference statistics already stored at training: "
          f"{theirs['seconds'] / ours['check_seconds']:.1f}×); by CPU time "
          f"{theirs['cpu_seconds'] / ours['cpu_seconds']:.1f}×; goal ≥ 20×")
    print(f"flagged by LeanOps:   {', '.join(ours['flagged']) or 'none'} (share {ours['share']:.2f})")
    print(f"flagged by Evidently: {', '.join(theirs['flagged']) or 'none'} (share {theirs['share']:.2f})")
    same = ours["flagged"] == theirs["flagged"]
    print(f"same columns flagged: {'yes' if same else 'NO'}; planted drift: {', '.join(sorted(DRIFTED))}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
