"""The Evidently data-drift report (HTML) for a drift check, made on a sample so it opens fast.

LeanOps keeps no training rows, so Evidently's reference frame is drawn from the stored reference
statistics: numeric columns by inverse-CDF sampling of the 1,000-point quantile sample (with the
training share of missing values), categorical columns from the category counts. The report says
so in its header. The check's own figures (core/monitoring/drift.py, on every current row) are the ones
LeanOps acts on; Evidently's, on the sample and with its own defaults, may differ slightly.
"""

from __future__ import annotations

import html
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def reports_dir(home: Path) -> Path:
    return home / "reports" / "drift"


def reference_frame(reference: dict[str, Any], *, rows: int, seed: int = 0) -> pd.DataFrame:
    """A stand-in for the training data, drawn from the stored reference statistics."""
    rng = np.random.default_rng(seed)
    rows = max(1, min(rows, int(reference.get("rows") or rows)))
    out: dict[str, Any] = {}
    for name, summary in reference["columns"].items():
        count = max(int(summary.get("count") or 0), 1)
        null_share = int(summary.get("nulls") or 0) / count
        if summary.get("type") == "numeric":
            q = np.asarray(summary.get("quantiles") or [np.nan], float)
            values = np.interp(rng.random(rows), np.linspace(0, 1, q.size), q) if q.size > 1 else np.full(rows, q[0])
            values[rng.random(rows) < null_share] = np.nan
            out[name] = values
        else:
            freq = summary.get("frequencies") or {"": 1}
            p = np.asarray(list(freq.values()), float)
            values = rng.choice(np.asarray(list(freq.keys()), dtype=object), size=rows, p=p / p.sum())
            values[rng.random(rows) < null_share] = None
            out[name] = values
    return pd.DataFrame(out)


def current_sample(frame: pd.DataFrame, columns: list[str], *, rows: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``rows`` random rows of the model's columns; categorical values as text, like the reference."""
    picked = frame[columns]
    if len(picked) > rows:
        picked = picked.sample(n=rows, random_state=seed)
    return picked.reset_index(drop=True)


def build_html(reference: dict[str, Any], current: pd.DataFrame, *, sample_rows: int, share: float,
               title: str) -> str:
    """Run Evidently's DataDriftPreset on samples of both sides and return the HTML page."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(reference["columns"])
    numeric = [c for c in columns if reference["columns"][c].get("type") == "numeric"]
    categorical = [c for c in columns if c not in numeric]
    cur = current_sample(current, columns, rows=sample_rows)
    for c in numeric:
        cur[c] = pd.to_numeric(cur[c], errors="coerce").astype(float)
    for c in categorical:
        cur[c] = cur[c].map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    ref = reference_frame(reference, rows=sample_rows)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset(drift_share=share)], include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition))
    page = snapshot.get_html_str(as_iframe=False)
    note = (f'<div style="font-family:sans-serif;padding:8px 12px;background:#fff8e1;border-bottom:1px solid #e0c060">'
            f"<b>{html.escape(title)}</b><br>Evidently DataDriftPreset on {len(cur):,} current rows (a random sample "
            f"when there are more) against {len(ref):,} reference rows <i>drawn from the reference statistics "
            "stored at training time</i> (quantile samples and category counts; LeanOps keeps no training rows). "
            "The LeanOps check itself uses every current row; its verdicts are the ones stored and acted on.</div>")
    at = page.find("<body>")
    return page[: at + 6] + note + page[at + 6:] if at >= 0 else note + page


def write(home: Path, html_text: str) -> Path:
    """Write the report under the workspace atomically (a temp file renamed); returns its path.

    The file is ``reports/drift/pending-<uuid>.html`` until its check is committed, then renamed
    to ``<check id>.html`` (core.monitoring.checks).
    """
    folder = reports_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pending-{uuid.uuid4().hex}.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html_text, encoding="utf-8")
    os.replace(tmp, path)
    return path
