"""Issue 14 (1): data sent for prediction must not become markup or script in the Evidently report.

Unseen categories are replaced by a placeholder before Evidently sees them, and whatever does reach
the JSON Evidently embeds in a <script> (known categories, column names) has ``<``, ``>`` and ``&``
escaped. The drift check's own statistics still see the real values.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from core.monitoring import drift, report
from core.training import reference

PAYLOAD = "</script><script>document.title='pwned'</script>"
COLUMN = "plan<img src=x onerror=alert(1)>"


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(10, 2, rows), COLUMN: rng.choice(["basic", "pro", "team"], rows)})


def build(train: pd.DataFrame) -> dict:
    return reference.build(train, task="classification", predictions=np.zeros(len(train), int),
                           target=pd.Series(np.zeros(len(train), int)))


def data_script(page: str) -> tuple[str, str]:
    """The two JSON values of Evidently's data <script>, as written in the page (parsed to find their ends)."""
    found = re.search(r"<script>\s*var (metric_[0-9a-f]{32}) = ", page)
    assert found, "Evidently's data <script> is missing"
    decoder = json.JSONDecoder()
    _, end = decoder.raw_decode(page, found.end())
    second = re.compile(rf";\s*var additional_graphs_{found.group(1)} = ").match(page, end)
    assert second
    _, end2 = decoder.raw_decode(page, second.end())
    assert re.compile(r";\s*</script>").match(page, end2)
    return page[found.end():end], page[second.end():end2]


@pytest.fixture(scope="module")
def attacked() -> tuple[dict, pd.DataFrame, str]:
    ref = build(frame(3000, seed=1))
    current = frame(400, seed=2)
    current.loc[:99, COLUMN] = PAYLOAD  # a quarter of the rows: a category the reference never saw
    page = report.build_html(ref, current, sample_rows=400, share=0.5, title="churn v1 <b>window</b>")
    return ref, current, page


def test_an_unseen_script_category_and_a_markup_column_name_stay_text(attacked):
    _, _, page = attacked
    assert "</script><script>document.title" not in page
    assert "pwned" not in page  # the unseen value itself never reaches the report
    assert "<img src=x" not in page  # the column name only in escaped form ...
    assert "plan\\u003cimg src=x onerror=alert(1)\\u003e" in page  # ... in the data JSON
    assert report.UNSEEN in page
    assert "<b>window</b>" not in page and "churn v1 &lt;b&gt;window&lt;/b&gt;" in page  # the header's title


def test_the_data_script_holds_no_markup_and_reads_back_unchanged(attacked):
    _, _, page = attacked
    dashboard, graphs = data_script(page)
    for text in (dashboard, graphs):
        assert not re.search(r"[<>&]", text)  # nothing in it can close the script or open a comment
    decoded = json.dumps(json.loads(dashboard), ensure_ascii=False)
    assert COLUMN in decoded and report.UNSEEN in decoded  # the real name, once the browser decodes it
    assert page.count("</script>") == 4  # Evidently's own four script blocks and no more


def test_known_categories_are_escaped_too():
    """A payload the reference knows (e.g. trained on logged traffic) is not masked; the escaping holds it."""
    train = frame(3000, seed=1)
    train.loc[:299, COLUMN] = PAYLOAD
    current = frame(400, seed=2)
    current.loc[:49, COLUMN] = PAYLOAD
    page = report.build_html(build(train), current, sample_rows=400, share=0.5, title="t")
    assert "</script><script>document.title" not in page
    assert "\\u003c/script\\u003e\\u003cscript\\u003edocument.title='pwned'" in page
    dashboard, _ = data_script(page)
    assert PAYLOAD in json.dumps(json.loads(dashboard), ensure_ascii=False)  # same value after decoding


def test_drift_statistics_still_see_the_unseen_category(attacked):
    ref, current, _ = attacked
    column = drift.compare(ref, current, thresholds=drift.Thresholds()).columns[COLUMN]
    assert column["new_categories"] == [PAYLOAD] and column["new_category_rows"] == 100
    assert column["drifted"] and PAYLOAD in column["categories"]
    assert current[COLUMN].eq(PAYLOAD).sum() == 100  # the caller's frame is not changed by the report


def test_unseen_values_map_to_the_placeholder_or_the_references_other_bucket():
    ref = build(frame(500, seed=1))
    cur = pd.DataFrame({"x": [1.0, 2.0, 3.0], COLUMN: ["pro", "<b>new</b>", None]})
    masked = report.current_sample(cur, list(ref["columns"]), rows=10, reference=ref)
    assert masked[COLUMN].tolist() == ["pro", report.UNSEEN, None]
    ref["columns"][COLUMN]["frequencies"]["__other__"] = 3  # training folded rare categories
    assert report.mask_unseen(cur, ref)[COLUMN].tolist() == ["pro", "__other__", None]


def test_json_escaping_survives_a_script_end_inside_a_value():
    value = {"a": "x</script><!--<script>&", "b": [1.5, None, "\u2028"]}
    page = (f"<html><head><script>\n    var metric_{'0' * 32} = {json.dumps(value)};\n"
            f"    var additional_graphs_metric_{'0' * 32} = {json.dumps({'g': '</SCRIPT >'})};\n</script></head>"
            "<body></body></html>")
    safe = report.escape_embedded_json(page)
    assert safe.count("</script>") == 1 and "<!--" not in safe and "</SCRIPT" not in safe
    dashboard, graphs = data_script(safe)
    assert json.loads(dashboard) == value and json.loads(graphs) == {"g": "</SCRIPT >"}
    assert report.escape_embedded_json(safe) == safe  # idempotent: stored reports can be escaped again


def test_an_unrecognised_layout_is_refused():
    with pytest.raises(report.UnrecognisedReport):
        report.escape_embedded_json("<html><body><script>var data = {};</script></body></html>")
