"""Compressed and encoded bodies against a running ``cli.py serve`` (issue 27 item 1): two Arrow bombs on
predict with a viewer token and a dictionary-encoded Parquet upload are refused (413/422) before they are
decoded: the API process's peak resident memory grows by less than 50 MB and the prediction log by less
than 1 MB."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from tests.support.api import Model, bearer
from tests.support.mlflow_models import records
from tests.support.net import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
ARROW = "application/vnd.apache.arrow.stream"
MB = 2**20


def zstd_zeros(rows: int = 100_000_000) -> bytes:
    """~25 KB: a zstd-compressed stream of 100 M int64 zeros (800 MB once decompressed)."""
    table = pa.table({"tenure_months": pa.array(np.zeros(rows, dtype="int64"))})
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table, max_chunksize=rows)
    return bytes(sink.getvalue().to_pybytes())


def dictionary_strings() -> bytes:
    """~60 KB: one 20 KB string and 10,000 indices pointing at it (200 MB of text once decoded)."""
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(10_000, dtype="int32")), pa.array(["A" * 20_000]))
    table = pa.table({"contract": column})
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def dictionary_parquet() -> bytes:
    """A small Parquet file (a dictionary page of one 20 KB string, 2 M indices): 40 GB of text once read."""
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(2_000_000, dtype="int32")), pa.array(["B" * 20_000]))
    sink = io.BytesIO()
    pq.write_table(pa.table({"contract": column}), sink, compression="zstd", row_group_size=2_000_000)
    return sink.getvalue()


def _peak_rss(pid: int) -> int:
    """The process's resident-memory high-water mark (VmHWM), in bytes: a spike between samples counts."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _footprint(home: Path, db_url: str) -> int:
    """Bytes on disk of the prediction log: the workspace (journal, Parquet partitions) and the SQLite DB."""
    files = list(home.rglob("*"))
    if db_url.startswith("sqlite:///"):
        db = Path(db_url.removeprefix("sqlite:///"))
        files += [p for p in db.parent.glob(db.name + "*")]
    return sum(p.stat().st_size for p in set(files) if p.is_file())


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_arrow_and_parquet_bombs_are_refused_before_they_are_decoded(api_settings, model: Model,
                                                                     tokens: dict) -> None:
    bombs = {"zstd zeros": zstd_zeros(), "dictionary strings": dictionary_strings()}
    parquet = dictionary_parquet()
    assert len(bombs["zstd zeros"]) < 64 * 1024 and len(bombs["dictionary strings"]) < 128 * 1024
    assert len(parquet) < 2 * MB
    port = free_port()
    env = os.environ | {"LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
                        "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri, "LEANOPS_ARTIFACTS": api_settings.artifacts,
                        "LEANOPS_SCHEDULER": "off", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen([sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    seconds: dict[str, float] = {}
    try:
        wait_until(lambda: _status(f"{url}/health/ready") == 200, timeout=120, every=0.25)
        with httpx.Client(timeout=30) as client:
            # warm: one good Arrow predict and one refused upload, so the first-use imports are not counted
            good = pa.Table.from_pylist(records(1))
            sink = pa.BufferOutputStream()
            with ipc.new_stream(sink, good.schema) as writer:
                writer.write_table(good)
            answer = client.post(f"{url}/v1/models/{model.name}/predict", content=sink.getvalue().to_pybytes(),
                                 headers=bearer(tokens["viewer"]) | {"Content-Type": ARROW})
            assert answer.status_code == 200, answer.text
            client.post(f"{url}/v1/datasets/warm/versions", headers=bearer(tokens["scientist"]),
                        files={"file": ("warm.parquet", io.BytesIO(b"PAR1 not parquet"), "application/octet-stream")})
            peak, logged = _peak_rss(proc.pid), _footprint(api_settings.home, api_settings.db_url)
            for what, body in bombs.items():
                started = time.perf_counter()
                answer = client.post(f"{url}/v1/models/{model.name}/predict", content=body,
                                     headers=bearer(tokens["viewer"]) | {"Content-Type": ARROW})
                seconds[what] = time.perf_counter() - started
                assert answer.status_code in (413, 422), (what, answer.status_code, answer.text[:300])
                assert "compressed" in answer.text or "dictionary" in answer.text, answer.text[:300]
            started = time.perf_counter()
            answer = client.post(f"{url}/v1/datasets/bomb/versions", headers=bearer(tokens["scientist"]),
                                 files={"file": ("bomb.parquet", io.BytesIO(parquet), "application/octet-stream")})
            seconds["dictionary parquet"] = time.perf_counter() - started
            assert answer.status_code in (413, 422), answer.text[:300]
            assert "MB of data once read" in answer.text, answer.text[:300]
            grown = _peak_rss(proc.pid) - peak
            log_growth = _footprint(api_settings.home, api_settings.db_url) - logged
        assert grown < 50 * MB, f"the API's peak RSS grew by {grown / MB:.0f} MB"
        assert log_growth < MB, f"the prediction log grew by {log_growth / 1024:.0f} KB"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print("seconds to the refusal:", {k: round(v, 3) for k, v in seconds.items()},
          f"peak RSS growth {grown / MB:.1f} MB, log growth {log_growth} bytes, load {os.getloadavg()}")
