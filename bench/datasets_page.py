"""The Datasets page with 200 versions vs with 2, rendered side by side in one run (Streamlit AppTest).

The scenario of tests/pages/test_datasets_page.py::test_two_hundred_versions_render_like_two, timed:
two workspaces (SQLite metadata DB), one dataset of 2 versions and one of 200 (20-row tables), the
page run as a signed-in viewer. After one warm-up of each (imports, first engine), the two are
rendered alternately, each with cold caches (``st.cache_data`` / ``st.cache_resource`` cleared, as a
first visit sees them), best of ``--rounds``. Prints both times and the ratio beside the goal the test
used to assert: 200 versions ≤ 3 × 2 versions + 2 s (the versions table is paged in SQL, 20 a page).

    PYTHONPATH=. .venv/bin/python bench/datasets_page.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGE = ROOT / "app_pages" / "datasets.py"
PASSWORD = "bench-pass-123"


def churn(rows: int, seed: int) -> Any:  # a DataFrame (pandas imported lazily)
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 80, rows), "charges": rng.normal(60, 15, rows).round(2),
                         "plan": rng.choice(["basic", "pro"], rows)})


def workspace(home: Path, versions: int) -> tuple[dict[str, str], int]:
    """A migrated workspace with dataset ``churn`` of ``versions`` versions and a viewer; its env and user id."""
    from core.accounts import auth
    from core.actors import cli_actor
    from core.data import datasets
    from core.platform.database import transaction
    from db.session import make_engine, make_session_factory, migrate

    home.mkdir(parents=True)
    url = f"sqlite:///{home / 'leanops.db'}"
    migrate(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        for seed in range(versions):
            with transaction(factory) as s:
                datasets.register(s, actor=cli_actor(), name="churn", data=churn(20, seed), store=home,
                                  source="bench")
        with transaction(factory) as s:
            user_id = auth.create_user(s, actor=cli_actor(), username="viewer-user", role="viewer",
                                       password="password-123").id
    finally:
        engine.dispose()
    env = {"LEANOPS_HOME": str(home), "LEANOPS_DB_URL": url, "LEANOPS_SCHEDULER": "off",
           "LEANOPS_ADMIN_PASSWORD": PASSWORD}
    return env, user_id


def render_seconds(env: dict[str, str], user_id: int, versions: int) -> float:
    """One cold visit of the page in ``env``'s workspace, checked like the test checks it."""
    import streamlit as st
    from streamlit.logger import set_log_level
    from streamlit.testing.v1 import AppTest

    set_log_level("error")  # "no runtime found" / "missing ScriptRunContext": expected outside `streamlit run`
    os.environ.update(env)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.session_state["user_id"] = user_id
    at.session_state["last_seen"] = time.time()
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"the page failed: {at.exception}")
    shown = at.dataframe[1].value["version"].tolist()
    if shown != list(range(versions, max(versions - 20, 0), -1)):
        raise RuntimeError(f"the versions table shows {shown}, not the newest 20 of {versions}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name in [n for n in os.environ if n.startswith("LEANOPS_")]:
        del os.environ[name]
    work = Path(tempfile.mkdtemp(prefix="leanops-bench-page-"))
    try:
        started = time.perf_counter()
        few_env, few_user = workspace(work / "two", 2)
        many_env, many_user = workspace(work / "two-hundred", 200)
        print(f"workspaces: 2 and 200 versions of a 20-row dataset (made in {time.perf_counter() - started:.1f} s)")
        render_seconds(few_env, few_user, 2)  # warm-ups: imports, plotly, the first engine
        render_seconds(many_env, many_user, 200)
        few, many = [], []
        for r in range(args.rounds):
            few.append(render_seconds(few_env, few_user, 2))
            many.append(render_seconds(many_env, many_user, 200))
            print(f"round {r + 1}: 2 versions {few[-1]:.2f} s | 200 versions {many[-1]:.2f} s")
        best_few, best_many = min(few), min(many)
        goal = best_few * 3 + 2
        print(f"best: 2 versions {best_few:.2f} s, 200 versions {best_many:.2f} s -> ratio {best_many / best_few:.2f}x "
              f"(goal: 200 versions <= 3 x 2 versions + 2 s = {goal:.2f} s): "
              f"{'OK' if best_many <= goal else 'TOO SLOW'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
