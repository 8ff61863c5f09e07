"""Champion latency with shadow scoring on vs off, over HTTP against `cli.py serve` as a process (issue 18).

One server serves a 100-tree random-forest champion with a 20-tree challenger. Rounds of single-record
requests at concurrency 8 alternate between `shadow.enabled: true` and `false` in policies.yaml (the server
re-reads it every 5 s), so background noise hits both alike; the champion's throughput and p50/p99 are
printed for each (shadow work skipped under overload is counted in `leanops_shadow_skipped_total`).
Run by hand: `.venv/bin/python bench/shadow.py`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving import MODEL, Load, _request, build_workspace, free_port, load, start, stop, wait_ready  # noqa: E402

ROUNDS, ROUND_SECONDS, SETTLE = 4, 5.0, 6.0


def policy(home: Path, enabled: bool) -> None:
    (home / "policies.yaml").write_text(
        "default:\n  metrics: {classification: {}, regression: {}}\n"
        f"models:\n  {MODEL}:\n    shadow: {{enabled: {str(enabled).lower()}, sample: 1.0}}\n")


def add_challenger(home: Path, env: dict[str, str]) -> int:
    from core.settings import get_settings
    from db.session import make_engine, make_session_factory
    from tests.support import mlflow_models
    from tests.support.api import LeanOpsStore

    uri, artifacts = env["LEANOPS_MLFLOW_URI"], env["LEANOPS_ARTIFACTS"]
    engine = make_engine(env["LEANOPS_DB_URL"])
    settings = get_settings(home=home, db_url=env["LEANOPS_DB_URL"], mlflow_uri=uri, artifacts=artifacts,
                            scheduler="off")
    store = LeanOpsStore(uri, artifacts, {"rf20": mlflow_models.log_model(uri, artifacts, "rf20")},
                         factory=make_session_factory(engine), settings=settings)
    version = store.register("rf20", MODEL)
    store.move(MODEL, version, "challenger")
    engine.dispose()
    return version


def shadow_counts(port: int, auth: dict[str, str]) -> dict[str, float]:
    """``leanops_shadow_scored_records_total`` and ``leanops_shadow_skipped_total`` by reason, from /metrics."""
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=auth)
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("leanops_shadow_scored_records_total"):
            counts["scored"] = counts.get("scored", 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith("leanops_shadow_skipped_total"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[f"skipped {reason}"] = counts.get(f"skipped {reason}", 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    print(f"workspace {home}; training the champion (rf 100) and a challenger (rf 20) …", flush=True)
    env, token, _model, rows = build_workspace(home)
    add_challenger(home, env)
    policy(home, True)
    port, log = free_port(), home / "serve.log"
    proc = start([sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        wait_ready(port, "/health", proc, log)
        auth = {"Authorization": f"Bearer {token}"}
        requests = [_request(port, f"/v1/models/{MODEL}/predict", json.dumps({"records": [r]}).encode(), auth)
                    for r in rows[:500]]
        load(port, requests, 2.0)  # warm-up (the challenger loads on its first shadow item)
        results: dict[bool, list[Load]] = {True: [], False: []}
        for _ in range(ROUNDS):
            for enabled in (True, False):
                policy(home, enabled)
                time.sleep(SETTLE)
                results[enabled].append(load(port, requests, ROUND_SECONDS))
        print(f"\nchampion, single-record requests at concurrency 8, {ROUNDS} × {ROUND_SECONDS:g} s each:")
        merged = {k: Load(sum(r.requests for r in v), sum(r.errors for r in v), sum(r.seconds for r in v),
                          [x for r in v for x in r.latencies]) for k, v in results.items()}
        for enabled, label in ((False, "shadow off"), (True, "shadow on")):
            m = merged[enabled]
            print(f"  {label:<11} {m.rps:8.1f} req/s   p50 {m.pct(0.5):7.1f} ms   p99 {m.pct(0.99):7.1f} ms   "
                  f"errors {m.errors}")
        on, off = merged[True], merged[False]
        print(f"  shadow work while loaded (records scored, requests skipped): {shadow_counts(port, auth)}")
        print(f"  on/off: throughput {on.rps / off.rps:.2f}×, p50 {on.pct(0.5) / off.pct(0.5):.2f}×, "
              f"p99 {on.pct(0.99) / off.pct(0.99):.2f}×")
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
