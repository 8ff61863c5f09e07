"""Datasets page (AppTest): versions table, certificate, profile charts, diff, runs, schema editing,
SQL registration with one-line errors, and the same page with 1 or 200 versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.actors import cli_actor
from core.data import datasets, lineage, schemas
from core.platform import job_queue
from core.platform.database import transaction

PAGE = "app_pages/datasets.py"


def churn(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 80, rows), "charges": rng.normal(60, 15, rows).round(2),
                         "plan": rng.choice(["basic", "pro"], rows)})


def register(factory, settings, frame: pd.DataFrame, name: str = "churn") -> datasets.Registration:
    with transaction(factory) as s:
        return datasets.register(s, actor=cli_actor(), name=name, data=frame, store=settings.home,
                                 source="test")


def by_label(widgets, label: str) -> Any:  # the widget with that label
    return next(w for w in widgets if w.label == label)


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def test_no_datasets_yet_and_viewers_cannot_register(open_page) -> None:
    at = open_page(PAGE, role="viewer")
    assert not at.exception
    assert "No datasets yet" in at.info[0].value
    assert not [b for b in at.button if b.label == "Register version"]
    assert not [t for t in at.text_input if t.label == "Dataset name"]


def test_one_version_shows_table_certificate_profile_and_no_runs(open_page, factory, settings) -> None:
    reg = register(factory, settings, churn())
    at = open_page(PAGE, role="viewer")
    assert not at.exception
    versions = at.dataframe[1].value
    assert versions.to_dict("records")[0] | {"created at": None} == {
        "version": 1, "description": "", "sha256": reg.version.sha256[:12], "rows": 200, "columns": 3,
        "certificate": "passed",
        "source": "test", "created by": "cli:" + reg.version.created_by.removeprefix("cli:"), "created at": None}
    assert "Certificate passed" in texts(at)
    assert len(at.get("plotly_chart")) == 1 + 3  # missing share + one chart per column
    assert "No runs yet: training runs on churn:1 will be listed here." in texts(at)
    assert "Only one version so far" in texts(at)


def test_a_failing_version_lists_its_failures_first_and_diffs_against_the_previous(open_page, factory,
                                                                                    settings) -> None:
    register(factory, settings, churn())
    bad = churn(seed=1)
    bad["age"] = bad["age"] * 12
    register(factory, settings, bad)
    with transaction(factory) as s:
        lineage.link_run(s, actor=cli_actor(), ref="churn:1", run_id="abc123", model_name="churn-model",
                         model_version=1)
    at = open_page(PAGE, role="viewer")
    assert at.selectbox(key="ds_version").value == 2
    assert "Certificate failed: 1 of" in texts(at)
    checks = at.dataframe[2].value
    assert checks.iloc[0].to_dict() | {"expected": None} == {
        "result": "failed", "check": "range", "column": "age", "observed": checks.iloc[0]["observed"], "expected": None,
        "hint": ""}
    assert checks.iloc[0]["observed"].startswith("min 216, max")
    assert [m.label for m in at.metric][:1] == ["Rows v1 → v2"]
    diff = next(d.value for d in at.dataframe if "PSI" in d.value.columns)
    assert diff.set_index("column").loc["age", "changed"] == "changed"

    at.selectbox(key="ds_version").set_value(1).run()
    runs = next(d.value for d in at.dataframe if "run" in d.value.columns)
    assert runs.to_dict("records")[0]["run"] == "abc123"


def test_register_without_a_file_says_so(open_page) -> None:
    at = open_page(PAGE, role="scientist")
    by_label(at.text_input, "Dataset name").input("churn")
    by_label(at.button, "Register version").click().run()
    assert at.error[0].value == "Choose a CSV or Parquet file to upload first."


def test_admin_adds_a_source_and_a_query_becomes_a_version(open_page, factory, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh.db"
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'")
    at = open_page(PAGE, role="admin")
    by_label(at.text_input, "Source name").input("wh")
    by_label(at.text_input, "Database URL").input(f"sqlite:///{warehouse}")
    by_label(at.button, "Add source").click().run()
    assert not at.error

    by_label(at.text_input, "Dataset name").input("from-sql")
    by_label(at.selectbox, "Source database").select("wh").run()
    by_label(at.text_area, "SQL query").input("SELECT * FROM nope")
    by_label(at.button, "Run query and register").click().run()
    assert [e.value for e in at.error] == ["the query failed on source 'wh': no such table: nope"]
    by_label(at.text_area, "SQL query").input("SELECT a, b FROM t")
    by_label(at.button, "Run query and register").click().run()
    assert at.success[0].value == "Registered from-sql version 1: 2 rows, certificate passed."
    with factory() as s:
        assert datasets.resolve(s, ref="from-sql").source_query == "SELECT a, b FROM t"
    assert follow_ups(factory) == [{"dataset": "from-sql", "version": 1, "via_api": False}]


def follow_ups(factory) -> list[dict[str, Any]]:
    """The retrain.consider jobs queued with each new version (a retrain may follow, by policy)."""
    with factory() as s:
        return [job.params for job in job_queue.list_jobs(s, kind="retrain.consider")]


def test_an_uploaded_file_becomes_a_version_that_asks_what_follows(open_page, factory) -> None:
    at = open_page(PAGE, role="scientist")
    by_label(at.text_input, "Dataset name").input("churn")
    at.file_uploader[0].set_value(("churn.csv", churn().to_csv(index=False).encode(), "text/csv"))
    by_label(at.button, "Register version").click().run()
    assert not at.exception and not at.error
    assert at.success[0].value == "Registered churn version 1: 200 rows, certificate passed."
    assert follow_ups(factory) == [{"dataset": "churn", "version": 1, "via_api": False}]


def test_scientist_edits_the_schema(open_page, factory, settings) -> None:
    register(factory, settings, churn())
    at = open_page(PAGE, role="scientist")
    styles = " ".join(h.proto.body for h in at.get("html"))  # JSON is edited in the code font (issue 19 item 5)
    assert ".st-key-schema-text-churn-1 textarea {font-family: 'Source Code Pro'" in styles
    editor = by_label(at.text_area, "Schema (JSON)")
    editor.input("{not json").run()
    by_label(at.button, "Save schema").click().run()
    assert at.error[0].value.startswith("the schema is not valid JSON")
    editor = by_label(at.text_area, "Schema (JSON)")
    editor.input('{"columns": {"age": {"dtype": "integer", "min": 0, "max": 2000}}, "strict": false}').run()
    by_label(at.button, "Save schema").click().run()
    assert not at.error
    with factory() as s:
        assert schemas.current_schema(s, name="churn").version == 2


def test_two_hundred_versions_render_like_two(open_page, factory, settings) -> None:
    """The same page with 2 and with 200 versions; how long each takes is bench/dataset_register.py's --page."""
    for seed in range(2):
        register(factory, settings, churn(rows=20, seed=seed))
    few = open_page(PAGE, role="viewer")
    for seed in range(2, 200):
        register(factory, settings, churn(rows=20, seed=seed))
    # The versions were added behind the page's back (the page's own writes clear its caches), so drop the
    # lists it cached for up to 5 s: the second visit must not depend on how fast 198 registrations were.
    st.cache_data.clear()
    many = open_page(PAGE, role="viewer")
    assert not many.exception
    assert [t.label for t in many.tabs] == [t.label for t in few.tabs]
    assert len(many.get("plotly_chart")) == len(few.get("plotly_chart"))
    table = many.dataframe[1].value
    assert len(table) == 20 and table["version"].tolist() == list(range(200, 180, -1))
    assert not [n for n in few.number_input if n.label == "Page"]
    pager = by_label(many.number_input, "Page")
    assert pager.max == 10
    pager.set_value(10).run()
    assert many.dataframe[1].value["version"].tolist() == list(range(20, 0, -1))


def test_first_version_says_its_certificate_passes_by_construction_and_descriptions_show(open_page, factory,
                                                                                        settings) -> None:
    with transaction(factory) as s:
        datasets.register(s, actor=cli_actor(), name="churn", data=churn(), store=settings.home, source="test",
                          description="January export")
        datasets.register(s, actor=cli_actor(), name="churn", data=churn(seed=1), store=settings.home,
                          source="test", description="February, with late payers")
    at = open_page(PAGE)
    listing = next(d.value for d in at.dataframe if "sha256" in d.value.columns)
    assert listing["description"].tolist() == ["February, with late payers", "January export"]
    assert "v2: February\\, with late payers" in texts(at)  # typed text, shown as literal text
    assert "passes by construction" not in texts(at)  # v2 is checked against v1's schema
    at.selectbox(key="ds_version").set_value(1).run()
    assert "v1: January export" in texts(at)
    assert "passes by construction" in texts(at)
