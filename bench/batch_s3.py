"""Batch scoring of Parquet on S3, process against process: in one process vs on a Dask cluster, beside the same rows
scored from a local file (issue 25 item 4).

    .venv/bin/python bench/batch_s3.py [--rows 1000000] [--objects 4] [--runs 3] [--model linear] [--keep DIR]

Set-up (not timed): ``bench/batch.py``'s rows (ROWS × 25 columns + id) and workspace (a champion of ``--model``,
default the linear pipeline, whose predict is cheap, so the figures show the command's own cost), a local S3
stand-in (moto's server: the real protocol over HTTP, objects in its memory) holding the rows as OBJECTS Parquet
objects under ``s3://bench/in/``, and a Dask cluster of local processes (``dask scheduler`` + ``dask worker
--nworkers 2 --nthreads 1``, the workers running LeanOps' code as the deployment guide says).

Timed, each as a whole process, interleaved, RUNS times (the median is the figure):

- ``cli.py score bench --input rows.parquet --out scored.parquet --id-column id`` (local file, one process);
- ``cli.py score bench --input s3://bench/in/ --out s3://bench/out/ --id-column id`` in this process;
- the same with ``LEANOPS_DASK_ADDRESS`` naming the cluster.

On a machine of two cores the cluster cannot beat one process by much: it shows what the partitioned path costs
(S3 round trips, the log rows sent back, the run folder published) and that it scales out, not a speed-up.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.batch import cached_bytecode, set_up  # noqa: E402
from bench.drift import timed  # noqa: E402

KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="linear")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    print(f"batch scoring on S3: {args.rows:,} rows × 25 columns in {args.objects} objects; {args.model} champion",
          flush=True)
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="leanops-bench-s3-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            env = cached_bytecode(set_up(folder, args.rows, 20_000, 0, args.model)) if not (folder / "ws").exists() \
                else cached_bytecode({k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
                    "LEANOPS_HOME": str(folder / "ws"), "LEANOPS_SCHEDULER": "off",
                    "MLFLOW_DISABLE_TELEMETRY": "true"})
            s3_port, dask_port = free_port(), free_port()
            log = (folder / "services.log").open("wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                                          stdout=log, stderr=log))
            wait_port(s3_port, procs[-1], "the S3 stand-in")
            workers_env = env | {"PYTHONPATH": str(ROOT)}
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                           "127.0.0.1", "--port", str(dask_port), "--dashboard-address", ":0"],
                                          cwd=ROOT, env=workers_env, stdout=log, stderr=log))
            wait_port(dask_port, procs[-1], "the Dask scheduler")
            address = f"tcp://127.0.0.1:{dask_port}"
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nworkers", "2", "--nthreads", "1", "--dashboard-address", ":0"],
                                          cwd=ROOT, env=workers_env, stdout=log, stderr=log))
            endpoint = f"http://127.0.0.1:{s3_port}"
            s3_env = env | {"LEANOPS_S3_ENDPOINT_URL": endpoint, "LEANOPS_S3_ACCESS_KEY_ID": KEY,
                            "LEANOPS_S3_SECRET_ACCESS_KEY": SECRET, "LEANOPS_S3_REGION": REGION}
            upload = f"""
import boto3, pyarrow.parquet as pq, io, sys
s3 = boto3.client("s3", endpoint_url="{endpoint}", aws_access_key_id="{KEY}", aws_secret_access_key="{SECRET}",
                  region_name="{REGION}")
s3.create_bucket(Bucket="bench")
table = pq.read_table(sys.argv[1])
n, k = table.num_rows, int(sys.argv[2])
for i in range(k):
    sink = io.BytesIO()
    pq.write_table(table.slice(i * n // k, (i + 1) * n // k - i * n // k), sink, row_group_size=100_000)
    s3.put_object(Bucket="bench", Key=f"in/part-{{i}}.parquet", Body=sink.getvalue())
"""
            subprocess.run([sys.executable, "-c", upload, str(folder / "rows.parquet"), str(args.objects)], check=True)
            time.sleep(3)  # the workers register
            print(f"set-up done; cluster {address}, S3 stand-in {endpoint}", flush=True)
            timings: dict[str, list[float]] = {"file": [], "s3 here": [], "s3 dask": []}
            for run in range(1, args.runs + 1):
                line = f"run {run}:"
                for name, argv, run_env in (
                        ("file", ["--input", str(folder / "rows.parquet"), "--out", str(folder / f"out-{run}.parquet")],
                         env),
                        ("s3 here", ["--input", "s3://bench/in/", "--out", "s3://bench/out/"], s3_env),
                        ("s3 dask", ["--input", "s3://bench/in/", "--out", "s3://bench/out/"],
                         s3_env | {"LEANOPS_DASK_ADDRESS": address})):
                    s, mb, code, _, err = timed([sys.executable, "cli.py", "score", "bench", *argv, "--id-column", "id",
                                                 "--json"], run_env)
                    if code != 0:
                        raise SystemExit(f"{name} failed ({code}):\n{err[-3000:]}")
                    timings[name].append(s)
                    line += f" {name} {s:6.2f} s (peak RSS {mb:4.0f} MB) ·"
                print(line + f" load average {os.getloadavg()[0]:.2f}", flush=True)
            med = {k: statistics.median(v) for k, v in timings.items()}
            print(f"median of {args.runs}: local file {med['file']:.2f} s; S3 in this process {med['s3 here']:.2f} s "
                  f"({med['s3 here'] / med['file']:.2f}× the file); S3 on the Dask cluster {med['s3 dask']:.2f} s "
                  f"({med['s3 dask'] / med['file']:.2f}× the file, {med['s3 here'] / med['s3 dask']:.2f}× faster than "
                  f"in this process); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
