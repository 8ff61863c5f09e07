"""Serving an imported XGBoost champion: LeanOps' API vs `mlflow models serve --workers 2` on the same model.

The whole user path, as processes: a notebook-style script fits an XGBoost pipeline (impute + one-hot +
XGBClassifier) and saves it with skops; `cli.py dataset add`, `cli.py model import`, `cli.py promote` put it in
a temporary workspace as champion. Then `cli.py serve` (one process, prediction logging on, as it starts by
default) and `mlflow models serve -m models:/NAME@champion --env-manager local --workers 2` serve that same
registered version, and single-record requests at concurrency 16 go to each, interleaved, in rounds of a few
seconds (``BENCH_ROUNDS``, default 3), each server measured in every round. Printed: the median throughput of
each, the spread, the ratio beside the goal (≥ 3×), the server CPU per request, and the load average.

Run by hand: ``.venv/bin/python bench/imported_serving.py`` (``BENCH_ROWS`` rows of data, default 20,000;
``BENCH_MLFLOW_THREADS=1`` gives MLflow's workers OMP_NUM_THREADS=1, the one-thread setting LeanOps serves with).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import serving as base  # noqa: E402  (bench/serving.py: the keep-alive client and the server helpers)

ROWS = int(os.environ.get("BENCH_ROWS", 20_000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
ROUND_SECONDS = float(os.environ.get("BENCH_ROUND_SECONDS", 5))
CONCURRENCY = 16
MODEL = "imported-xgb"
# BENCH_MLFLOW_THREADS=1: MLflow's workers with OMP_NUM_THREADS=1, the setting LeanOps' serving applies to a served
# model (cache.one_thread_per_call); by default MLflow runs as a user starts it
MLFLOW_ENV = {"OMP_NUM_THREADS": os.environ["BENCH_MLFLOW_THREADS"]} if os.environ.get("BENCH_MLFLOW_THREADS") else {}

NOTEBOOK = '''
import sys, numpy as np, pandas as pd, skops.io as sio, xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
out, rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
df = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(8)})
df["plan"] = rng.choice(["basic", "pro", "max"], rows)
df["churn"] = ((df.x0 + df.x1 * df.x2 + (df.plan == "basic")) > 0.5).astype(int)
df.to_csv(f"{out}/data.csv", index=False)
X, y = df.drop(columns="churn"), df.churn
pipe = Pipeline([("prep", ColumnTransformer([("num", SimpleImputer(), [f"x{i}" for i in range(8)]),
                                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])),
                 ("model", xgb.XGBClassifier(n_estimators=100, max_depth=6))]).fit(X, y)
sio.dump(pipe, f"{out}/model.skops")
X.head(500).to_json(f"{out}/rows.json", orient="records")
'''


def cli(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, "cli.py", *args, "--json"], cwd=ROOT, env=os.environ | env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"cli.py {' '.join(args)} failed: {done.stdout[-1000:]} {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="imported-serving-bench-"))
    env = {"LEANOPS_HOME": str(home / "ws"), "LEANOPS_SCHEDULER": "off", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "1", "LEANOPS_ADMIN_PASSWORD": "bench-admin-pass-1"}
    print(f"workspace {home}; a notebook fits an XGBoost pipeline on {ROWS:,} rows …", flush=True)
    subprocess.run([sys.executable, "-c", NOTEBOOK, str(home), str(ROWS)], check=True, cwd=home)
    cli(env, "init")
    cli(env, "dataset", "add", "bench", str(home / "data.csv"))
    imported = cli(env, "model", "import", MODEL, str(home / "model.skops"), "--dataset", "bench",
                   "--target", "churn")
    print(f"imported v{imported['version']} ({imported['estimator']}), f1 {imported['metrics']['f1']:.3f}, gates "
          f"{'passed' if imported['gates']['passed'] else 'failed'}", flush=True)
    cli(env, "promote", MODEL, str(imported["version"]), "--force", "--reason", "bench")
    token = cli(env, "token", "create", "--role", "viewer", "--name", "bench", "--owner", "admin")["token"]
    settings_env = env | {"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'ws' / 'mlflow.db'}"}
    rows = json.loads((home / "rows.json").read_text())
    ports = {"leanops": base.free_port(), "mlflow": base.free_port()}
    logs = {k: home / f"{k}.log" for k in ports}
    procs = {
        "leanops": base.start([sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port",
                               str(ports["leanops"])], settings_env, logs["leanops"]),
        "mlflow": base.start([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion",
                              "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"]),
                              "--workers", "2"], settings_env | MLFLOW_ENV, logs["mlflow"]),
    }
    try:
        base.wait_ready(ports["leanops"], "/health/ready", procs["leanops"], logs["leanops"], timeout=300)
        base.wait_ready(ports["mlflow"], "/ping", procs["mlflow"], logs["mlflow"], timeout=300)
        auth = {"Authorization": f"Bearer {token}"}
        requests = {
            "leanops": [base._request(ports["leanops"], f"/v1/models/{MODEL}/predict",
                                      json.dumps({"records": [r]}).encode(), auth) for r in rows],
            "mlflow": [base._request(ports["mlflow"], "/invocations", json.dumps({"dataframe_records": [r]}).encode(),
                                     {}) for r in rows],
        }
        for key in requests:  # warm up
            base.load(ports[key], requests[key], 2, CONCURRENCY)
        rps: dict[str, list[float]] = {k: [] for k in requests}
        cpu: dict[str, float] = {k: 0.0 for k in requests}
        served: dict[str, int] = {k: 0 for k in requests}
        errors = 0
        loads = []
        for round_no in range(ROUNDS):
            for key in ("mlflow", "leanops"):
                before = base.group_cpu(procs[key].pid)
                result = base.load(ports[key], requests[key], ROUND_SECONDS, CONCURRENCY)
                cpu[key] += base.group_cpu(procs[key].pid) - before
                served[key] += result.requests
                errors += result.errors
                rps[key].append(result.rps)
            loads.append(os.getloadavg()[0])
            print(f"  round {round_no + 1}: MLflow {rps['mlflow'][-1]:7.1f} req/s, LeanOps {rps['leanops'][-1]:7.1f} "
                  f"req/s (load average {loads[-1]:.1f})", flush=True)
    finally:
        for proc in procs.values():
            base.stop(proc)
    ratios = [a / b for a, b in zip(rps["leanops"], rps["mlflow"], strict=True)]
    median = statistics.median(ratios)
    print(f"\nsingle-record requests at concurrency {CONCURRENCY}, {ROUNDS} interleaved rounds of {ROUND_SECONDS:g} s "
          f"(load average {min(loads):.1f} … {max(loads):.1f} on {os.cpu_count()} CPUs):")
    mlflow_label = "mlflow models serve --workers 2" + (f" (OMP_NUM_THREADS={MLFLOW_ENV['OMP_NUM_THREADS']})"
                                                        if MLFLOW_ENV else "")
    for key, label in (("mlflow", mlflow_label), ("leanops", "LeanOps cli.py serve (1 process)")):
        print(f"  {label:<52} median {statistics.median(rps[key]):7.1f} req/s (spread {min(rps[key]):.1f} … "
              f"{max(rps[key]):.1f}); server CPU {cpu[key] / max(served[key], 1) * 1000:.2f} ms/request")
    print(f"  throughput LeanOps / MLflow: median {median:.2f} (spread {min(ratios):.2f} … {max(ratios):.2f}); "
          f"goal ≥ 3: {'met' if median >= 3 else 'NOT met'}")
    print(f"  server CPU per request MLflow / LeanOps: "
          f"{(cpu['mlflow'] / max(served['mlflow'], 1)) / (cpu['leanops'] / max(served['leanops'], 1)):.2f}")
    if errors:
        print(f"{errors} requests failed")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
