"""Serving speed, side by side in one run on the same registered model (run by hand: `make bench`).

Starts, on 127.0.0.1 only, LeanOps' API twice (prediction logging on, and off) and
`mlflow models serve -m models:/NAME@champion --env-manager local`, all serving one random-forest
pipeline registered in a temporary workspace. Then, with a small keep-alive HTTP client (the same
for every server), it measures:

1. single-record requests at concurrency 8 and 16: throughput and p99 latency, LeanOps (logging on,
   `cli.py serve` as it starts by default: one process) vs `mlflow models serve --workers 2` (MLflow's
   best on two cores: one worker serves less than half as much); LeanOps with `--workers 2` too, for
   reference (its micro-batcher sees half the concurrency in each process: batches half as large, so
   more CPU per request, which on a shared two-core machine costs more than a second process gains);
2. what logging costs: LeanOps logging on vs off;
3. one 10,000-record request to LeanOps (JSON records, and an Arrow stream) vs a bare
   ``pipeline.predict`` on the same rows in-process (each request timed right after a bare predict;
   the ratio is the median of those pairs, so load from other processes on a shared machine hits both
   sides of each ratio alike).

Load is time-boxed (a few seconds per round, rounds interleaved so background noise hits every
server alike) and goes to 127.0.0.1 only. The goals from issue 6 are printed beside each ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONCURRENCY = 8
ROUND_SECONDS = float(os.environ.get("BENCH_ROUND_SECONDS", 2))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 4))  # rounds per run (each round: every server in turn)
RUNS = int(os.environ.get("BENCH_RUNS", 3))  # issue 29 item 6: three interleaved runs, the median is the figure
BATCH_ROWS = 10_000
BATCH_REPEATS = int(os.environ.get("BENCH_BATCH_REPEATS", 9))  # in RUNS groups: each group's median is a run
MODEL = "churn-bench"
WORKERS = int(os.environ.get("BENCH_WORKERS", 2))  # processes of MLflow's server and of LeanOps' "on2"
LEANOPS_WORKERS = int(os.environ.get("BENCH_LEANOPS_WORKERS", 1))  # processes of LeanOps' "on" server
CONCURRENCIES = (8, 16)
ARROW = "application/vnd.apache.arrow.stream"


# -- a minimal keep-alive HTTP/1.1 client (so the client costs little CPU beside the servers) ----

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = head.decode("latin-1").lower()
    if "transfer-encoding: chunked" in headers:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    length = int(headers.split("content-length:")[1].split("\r\n")[0])
    return status, await reader.readexactly(length)


def _request(port: int, path: str, body: bytes, headers: dict[str, str],
             content_type: str = "application/json") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _load(port: int, requests: list[bytes], seconds: float, concurrency: int) -> Load:
    latencies: list[float] = []
    errors = [0]
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(requests[i % len(requests)])
                status, _ = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors[0] += 1
                i += concurrency
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*[worker(w) for w in range(concurrency)])
    return Load(len(latencies), errors[0], time.perf_counter() - started, latencies)


async def _one(port: int, request: bytes) -> tuple[int, bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(request)
    status, body = await _read_response(reader)
    elapsed = time.perf_counter() - started
    writer.close()
    return status, body, elapsed


def load(port: int, requests: list[bytes], seconds: float, concurrency: int = CONCURRENCY) -> Load:
    return asyncio.run(_load(port, requests, seconds, concurrency))


def one(port: int, request: bytes) -> tuple[int, bytes, float]:
    return asyncio.run(_one(port, request))


# -- the workspace, the model and the servers ----------------------------------------------------

def build_workspace(home: Path) -> tuple[dict[str, str], str, object, list[dict]]:
    """A workspace with one registered random-forest pipeline as champion; returns env, token, model, rows."""
    import mlflow
    import skops.io

    from core.accounts import auth
    from core.actors import cli_actor
    from core.platform import mlflow_store
    from core.platform.database import migrate, transaction
    from core.settings import get_settings
    from db.session import make_engine, make_session_factory
    from tests.support import mlflow_models
    from tests.support.api import LeanOpsStore
    from tests.support.mlflow_models import churn_data, pipeline

    uri, artifacts = f"sqlite:///{home / 'mlflow.db'}", str(home / "artifacts")
    db_url = f"sqlite:///{home / 'leanops.db'}"
    X, y = churn_data(5000)
    fitted = pipeline("rf").fit(X, y)  # 100 trees
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(fitted))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("bench", artifact_location=artifacts)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(fitted, name="model", input_example=X.head(3),
                                        pip_requirements=["scikit-learn", "skops"], skops_trusted_types=trusted)
    # Registered as LeanOps' training registers (its files' sha256 recorded), and made champion through
    # LeanOps (a forced promotion, recorded in its alias history): the API serves nothing else.
    sha256 = mlflow_models.files_sha256(uri, info.model_uri)
    version = int(mlflow.register_model(info.model_uri, MODEL, tags={mlflow_store.MODEL_SHA256_TAG: sha256}).version)
    migrate(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    settings = get_settings(home=home, db_url=db_url, mlflow_uri=uri, artifacts=artifacts, scheduler="off")
    LeanOpsStore(uri, artifacts, {}, factory=factory, settings=settings).move(MODEL, version)
    with transaction(factory) as session:
        token, _ = auth.create_token(session, actor=cli_actor(), role="viewer", name="bench")
    engine.dispose()
    env = {"LEANOPS_HOME": str(home), "LEANOPS_DB_URL": db_url, "LEANOPS_MLFLOW_URI": uri,
           "LEANOPS_ARTIFACTS": artifacts, "LEANOPS_SCHEDULER": "off", "MLFLOW_TRACKING_URI": uri,
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    rows = json.loads(X.to_json(orient="records"))
    model = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
    return env, token, (model, X), rows


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow needs uvicorn
    return subprocess.Popen(cmd, cwd=ROOT, env=os.environ | env | {"PATH": path}, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(port: int, path: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every process of a server's process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def arrow_body(frame) -> bytes:
    """``frame`` as an Arrow IPC stream (what a columnar client sends)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def log_queue_empty(port: int, token: str) -> bool:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("leanops_prediction_log_queue_depth "):
                return float(line.split()[1]) == 0
    return True


# -- the run -------------------------------------------------------------------------------------

def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    print(f"workspace {home}; training and registering a 100-tree random-forest pipeline …", flush=True)
    env, token, (model, X), rows = build_workspace(home)
    ports = {"on": free_port(), "on2": free_port(), "off": free_port(), "split": free_port(), "mlflow": free_port()}
    logs = {k: home / f"{k}.log" for k in ports}
    serve = [sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port"]
    procs = {
        "on": start([*serve, str(ports["on"]), "--workers", str(LEANOPS_WORKERS)], env, logs["on"]),
        "on2": start([*serve, str(ports["on2"]), "--workers", str(WORKERS)], env, logs["on2"]),
        "off": start([*serve, str(ports["off"])], env | {"LEANOPS_PREDICTION_LOG_ENABLED": "false"}, logs["off"]),
        "split": start([*serve, str(ports["split"])], env | {"LEANOPS_SERVING_SPLIT_THREADS": str(os.cpu_count())},
                       logs["split"]),
        "mlflow": start([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion",
                         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"]),
                         "--workers", str(WORKERS)], env, logs["mlflow"]),
    }
    try:
        for key, path in (("on", "/health"), ("on2", "/health"), ("off", "/health"), ("split", "/health"),
                          ("mlflow", "/ping")):
            wait_ready(ports[key], path, procs[key], logs[key])
        auth = {"Authorization": f"Bearer {token}"}
        predict = f"/v1/models/{MODEL}/predict"
        single = {
            "on": [_request(ports["on"], predict, json.dumps({"records": [r]}).encode(), auth) for r in rows[:500]],
            "on2": [_request(ports["on2"], predict, json.dumps({"records": [r]}).encode(), auth) for r in rows[:500]],
            "off": [_request(ports["off"], predict, json.dumps({"records": [r]}).encode(), auth) for r in rows[:500]],
            "mlflow": [_request(ports["mlflow"], "/invocations", json.dumps({"dataframe_records": [r]}).encode(), {})
                       for r in rows[:500]],
        }
        for key in single:  # warm up: model load, first requests
            load(ports[key], single[key], 1.5)

        merged_at: dict[int, dict[str, Load]] = {}
        runs_at: dict[int, list[dict[str, float]]] = {}
        cpu_at: dict[int, dict[str, float]] = {}
        for concurrency in CONCURRENCIES:
            print(f"\nsingle-record requests, concurrency {concurrency}, {RUNS} runs × {ROUNDS} × {ROUND_SECONDS:g} s "
                  "per server "
                  f"(rounds interleaved; LeanOps logging on with --workers {LEANOPS_WORKERS} and {WORKERS}, MLflow "
                  f"with --workers {WORKERS})", flush=True)
            results: dict[str, list[Load]] = {k: [] for k in single}
            cpu = {k: 0.0 for k in single}
            for run in range(1, RUNS + 1):
                run_cpu = {k: 0.0 for k in single}
                run_loads: dict[str, list[Load]] = {k: [] for k in single}
                for _ in range(ROUNDS):
                    for key in ("mlflow", "on", "on2", "off"):
                        before = group_cpu(procs[key].pid)
                        found = load(ports[key], single[key], ROUND_SECONDS, concurrency)
                        used = group_cpu(procs[key].pid) - before
                        results[key].append(found)
                        run_loads[key].append(found)
                        cpu[key] += used
                        run_cpu[key] += used
                rps = {k: sum(x.requests for x in v) / sum(x.seconds for x in v) for k, v in run_loads.items()}
                per = {k: run_cpu[k] / max(sum(x.requests for x in run_loads[k]), 1) * 1000 for k in single}
                runs_at.setdefault(concurrency, []).append(
                    {"throughput": rps["on"] / rps["mlflow"], "cpu": per["mlflow"] / per["on"],
                     "load": os.getloadavg()[0], "cpu_on": per["on"], "cpu_mlflow": per["mlflow"]})
                last = runs_at[concurrency][-1]
                print(f"  run {run}: throughput LeanOps / MLflow {last['throughput']:5.2f} · server CPU per request "
                      f"LeanOps {per['on']:5.2f} ms, MLflow {per['mlflow']:5.2f} ms ({last['cpu']:4.2f}× less) · "
                      f"load average {last['load']:.2f} on {os.cpu_count()} CPUs", flush=True)
            merged = {k: Load(sum(r.requests for r in v), sum(r.errors for r in v), sum(r.seconds for r in v),
                              [x for r in v for x in r.latencies]) for k, v in results.items()}
            merged_at[concurrency], cpu_at[concurrency] = merged, cpu
            for key, label in (("mlflow", f"MLflow models serve, {WORKERS} workers"),
                               ("on", f"LeanOps, logging on, {LEANOPS_WORKERS} process(es)"),
                               ("on2", f"LeanOps, logging on, {WORKERS} processes"),
                               ("off", "LeanOps, logging off (1 process)")):
                m = merged[key]
                print(f"  {label:<36} {m.rps:8.1f} req/s   p50 {m.pct(0.5):7.1f} ms   p99 {m.pct(0.99):7.1f} ms   "
                      f"server CPU {cpu[key] / max(m.requests, 1) * 1000:5.2f} ms/request   errors {m.errors}")

        print(f"\none {BATCH_ROWS:,}-record request ({BATCH_REPEATS} rounds, each on an idle server, right after "
              "a bare predict so background load hits both alike; medians):", flush=True)
        import pandas as pd

        batch_rows = [rows[i % len(rows)] for i in range(BATCH_ROWS)]
        frame = pd.DataFrame(batch_rows).astype(X.dtypes.to_dict())  # the same rows, as the model was fitted
        model.predict(frame)
        body = json.dumps({"records": batch_rows}).encode()
        big = {key: _request(ports[key], predict, body, auth) for key in ("on", "split")}
        big["arrow"] = _request(ports["on"], predict, arrow_body(frame), auth, content_type=ARROW)
        big["mlflow"] = _request(ports["mlflow"], "/invocations",
                                 json.dumps({"dataframe_records": batch_rows}).encode(), {})
        for key in big:
            one(ports["on" if key == "arrow" else key], big[key])
        times: dict[str, list[float]] = {"bare": [], "on": [], "arrow": [], "split": [], "mlflow": []}
        cpu_batch = {"bare": 0.0, "on": 0.0}
        for _ in range(BATCH_REPEATS):
            started = time.process_time()
            times["bare"].append(_timed(lambda: model.predict(frame)))
            cpu_batch["bare"] += time.process_time() - started
            for key in ("on", "arrow", "split", "mlflow"):
                port = ports["on" if key == "arrow" else key]
                if key != "mlflow":
                    _wait(lambda p=port: log_queue_empty(p, token))
                before = group_cpu(procs["on" if key == "arrow" else key].pid)
                status, answer, elapsed = one(port, big[key])
                if key == "on":
                    cpu_batch["on"] += group_cpu(procs[key].pid) - before
                assert status == 200 and len(json.loads(answer)["predictions"]) == BATCH_ROWS, answer[:300]
                times[key].append(elapsed)
        batch = {key: statistics.median(values) for key, values in times.items()}
        paired = {key: statistics.median(a / b for a, b in zip(times[key], times["bare"], strict=True))
                  for key in ("on", "arrow", "split", "mlflow")}
        bare, leanops_batch, mlflow_batch = batch["bare"], batch["on"], batch["mlflow"]
        print(f"  bare pipeline.predict                    {bare * 1000:8.1f} ms")
        print(f"  LeanOps API (logging on), JSON records   {leanops_batch * 1000:8.1f} ms")
        print(f"  LeanOps API (logging on), Arrow stream   {batch['arrow'] * 1000:8.1f} ms")
        print(f"  LeanOps API, split across {os.cpu_count()} threads       {batch['split'] * 1000:8.1f} ms")
        print(f"  MLflow models serve                      {mlflow_batch * 1000:8.1f} ms")
    finally:
        for proc in procs.values():
            stop(proc)

    ratios = []
    for concurrency in CONCURRENCIES:
        on, ml = merged_at[concurrency]["on"], merged_at[concurrency]["mlflow"]
        ratios += [
            (f"throughput at {concurrency}, LeanOps / MLflow", on.rps / ml.rps, "≥ 3", on.rps / ml.rps >= 3),
            (f"p99 latency at {concurrency}, LeanOps / MLflow", on.pct(0.99) / ml.pct(0.99), "≤ 0.33",
             on.pct(0.99) / ml.pct(0.99) <= 1 / 3),
            (f"throughput at {concurrency}, logging on / off", on.rps / merged_at[concurrency]["off"].rps, "≥ 0.90",
             on.rps / merged_at[concurrency]["off"].rps >= 0.9)]
    on, off, ml = merged["on"], merged["off"], merged["mlflow"]
    cpu = cpu_at[CONCURRENCIES[-1]]
    ratios += [
        ("10,000-record Arrow batch, LeanOps / bare", paired["arrow"], "≤ 1.2", paired["arrow"] <= 1.2),
        ("10,000-record JSON batch, LeanOps / bare", paired["on"], "≤ 1.5", paired["on"] <= 1.5),
    ]
    print("\nratios over every round (goals from issues 6, 18 and 29):")
    for label, value, goal, ok in ratios:
        print(f"  {label:<46} {value:6.2f}   goal {goal:<7} {'met' if ok else 'NOT met'}")
    print(f"\nissue 29's goals, medians of {RUNS} interleaved runs (spread min–max; the figure a user sees is the "
          "throughput and the batch's wall time; server CPU per request is the steadier figure on a shared machine):")
    for concurrency in CONCURRENCIES:
        found = runs_at[concurrency]
        for key, label, goal in (("throughput", "throughput LeanOps / MLflow", 3.0),
                                 ("cpu", "server CPU per request MLflow / LeanOps", None)):
            values = [r[key] for r in found]
            verdict = f"goal ≥ {goal:g}: {'met' if statistics.median(values) >= goal else 'NOT met'}" if goal else ""
            print(f"  concurrency {concurrency}: {label:<40} {statistics.median(values):5.2f} "
                  f"({min(values):.2f}–{max(values):.2f})  {verdict}")
        print(f"  concurrency {concurrency}: server CPU per request, LeanOps "
              f"{statistics.median(r['cpu_on'] for r in found):.2f} ms, MLflow "
              f"{statistics.median(r['cpu_mlflow'] for r in found):.2f} ms; load average "
              f"{', '.join(format(r['load'], '.2f') for r in found)}")
    groups = max(1, BATCH_REPEATS // RUNS)
    for key, goal in (("on", 1.5), ("arrow", 1.2)):
        pairs = [a / b for a, b in zip(times[key], times["bare"], strict=True)]
        per_run = [statistics.median(pairs[i:i + groups]) for i in range(0, len(pairs), groups)][:RUNS]
        print(f"  one 10,000-record {'JSON' if key == 'on' else 'Arrow'} request / in-process predict: "
              f"{statistics.median(per_run):.2f} ({min(per_run):.2f}–{max(per_run):.2f})  goal ≤ {goal:g}: "
              f"{'met' if statistics.median(per_run) <= goal else 'NOT met'}")
    print(f"  load average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for concurrency in CONCURRENCIES:
        on2, ml = merged_at[concurrency]["on2"], merged_at[concurrency]["mlflow"]
        print(f"  (for reference: LeanOps with --workers {WORKERS} at {concurrency}: throughput "
              f"{on2.rps / ml.rps:.2f}, p99 {on2.pct(0.99) / ml.pct(0.99):.2f} of MLflow's)")
    print(f"  (for reference: LeanOps splitting the batch across {os.cpu_count()} threads / bare predict = "
          f"{paired['split']:.2f}; "
          f"MLflow's batch / bare predict = {paired['mlflow']:.2f})")
    print("\nCPU time, which other processes on a shared machine do not distort (load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    print(f"  server CPU per single-record request, MLflow / LeanOps (logging on)   "
          f"{(cpu['mlflow'] / ml.requests) / (cpu['on'] / on.requests):6.2f}")
    print(f"  server CPU per single-record request, logging on / off               "
          f"{(cpu['on'] / on.requests) / (cpu['off'] / off.requests):6.2f}")
    print(f"  CPU of the 10,000-record request (server, logging excluded) / bare   "
          f"{cpu_batch['on'] / cpu_batch['bare']:6.2f}")
    errors = sum(m.errors for results_at in merged_at.values() for m in results_at.values())
    if errors:
        print(f"{errors} requests failed")
    return 0 if not errors else 1


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _wait(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
