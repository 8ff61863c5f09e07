"""The Evidently data-drift report (HTML) for a drift check, made on a sample so it opens fast.

LeanOps keeps no training rows, so Evidently's reference frame is drawn from the stored reference
statistics: numeric columns by inverse-CDF sampling of the 1,000-point quantile sample (with the
training share of missing values), categorical columns from the category counts. The report says
so in its header. The check's own figures (core/monitoring/drift.py, on every current row) are the ones
LeanOps acts on; Evidently's, on the sample and with its own defaults, may differ slightly.

The report is third-party HTML built from data anyone with a predict token can send, so it is made
inert as text: a category the reference never saw is shown as ``UNSEEN`` (or counted in the
reference's ``__other__`` bucket, as the check does), and ``<``, ``>``, ``&`` inside the JSON that
Evidently embeds in a ``<script>`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` so no value or column
name can close the script or open a comment. The dashboard still shows it only in a sandboxed,
opaque-origin frame (ui.drift_view.show_report).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.training.reference import OTHER

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from core.settings import Settings

log = logging.getLogger(__name__)

UNSEEN = "(unseen category)"  # what the report shows instead of a category the reference never saw


def reports_dir(settings: Settings) -> Path:
    return settings.home / "reports" / "drift"


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


def current_sample(frame: pd.DataFrame, columns: list[str], *, rows: int, seed: int = 0,
                   reference: dict[str, Any] | None = None) -> pd.DataFrame:
    """Up to ``rows`` random rows of the model's columns; categorical values as text, like the reference.

    With ``reference``, its numeric columns become floats and each categorical value it never saw
    becomes a placeholder (``mask_unseen``): only the reference's own categories reach the report.
    """
    picked = frame[columns]
    if len(picked) > rows:
        picked = picked.sample(n=rows, random_state=seed)
    picked = picked.reset_index(drop=True)
    if reference is None:
        return picked
    picked = picked.copy()
    for c in columns:
        if reference["columns"][c].get("type") == "numeric":
            picked[c] = pd.to_numeric(picked[c], errors="coerce").astype(float)
        else:
            picked[c] = _map_distinct(picked[c], lambda v: None if _missing(v) else str(v))
    return mask_unseen(picked, reference)


def _missing(value: Any) -> bool:
    missing = pd.isna(value)
    return bool(missing) if np.ndim(missing) == 0 else False


def _map_distinct(values: pd.Series, fn: Any) -> pd.Series:
    """``values.map(fn)`` as objects, calling ``fn`` once per distinct value (a sample has 50,000 rows
    and a handful of categories); missing values map as ``fn(None)``."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists): value by value
        return values.map(fn).astype(object)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [fn(u) for u in uniques]
    mapped[-1] = fn(None)
    return pd.Series(mapped[codes], index=values.index, dtype=object)


def mask_unseen(frame: pd.DataFrame, reference: dict[str, Any]) -> pd.DataFrame:
    """``frame`` with each categorical value the reference does not know replaced by a placeholder.

    The placeholder is the reference's ``__other__`` bucket when it folded rare categories (the
    drift check counts unseen values there too), else ``UNSEEN``. Missing values stay missing.
    Only the report's copy changes: the check's statistics (core.monitoring.drift) use the real values.
    """
    out = frame.copy()
    for name, summary in reference["columns"].items():
        if name not in out.columns or summary.get("type") == "numeric":
            continue
        known = {str(k) for k in (summary.get("frequencies") or {})}
        placeholder = OTHER if OTHER in known else UNSEEN
        out[name] = _map_distinct(out[name], lambda v, known=known, placeholder=placeholder:
                                  None if _missing(v) else str(v) if str(v) in known else placeholder)
    return out


EVIDENTLY_METHODS = {"ks": "ks", "chisquare": "chisquare", "wasserstein": "wasserstein",
                     "jensenshannon": "jensenshannon"}  # the check's per-column method → Evidently's stattest


def same_tests(columns: dict[str, dict[str, Any]] | None) -> tuple[dict[str, str], dict[str, float]]:
    """The check's own test and threshold per column, for Evidently (so its per-column verdicts use the
    same test at the same threshold; its headline still judges the columns one by one)."""
    methods: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    for name, col in (columns or {}).items():
        method = EVIDENTLY_METHODS.get(str(col.get("method")))
        if method is not None and col.get("threshold") is not None:
            methods[name], thresholds[name] = method, float(col["threshold"])
    return methods, thresholds


def build_html(reference: dict[str, Any], current: pd.DataFrame, *, sample_rows: int, share: float,
               title: str, checked: dict[str, dict[str, Any]] | None = None) -> str:
    """Run Evidently's DataDriftPreset on samples of both sides and return the HTML page.

    ``checked`` (the check's per-column results) makes Evidently use the check's test and threshold per column.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(reference["columns"])
    numeric = [c for c in columns if reference["columns"][c].get("type") == "numeric"]
    categorical = [c for c in columns if c not in numeric]
    cur = current_sample(current, columns, rows=sample_rows, reference=reference)
    ref = reference_frame(reference, rows=sample_rows)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    methods, thresholds = same_tests(checked)
    preset = DataDriftPreset(drift_share=share, per_column_method=methods or None,
                             per_column_threshold=thresholds or None)
    snapshot = Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition))
    try:
        page = escape_embedded_json(snapshot.get_html_str(as_iframe=False))
    except UnrecognisedReport as exc:  # fail closed: no third-party HTML we could not make inert
        log.warning("Evidently report withheld: %s", exc)
        return withheld_page(title, str(exc))
    note = (f'<div style="font-family:sans-serif;padding:8px 12px;background:#fff8e1;border-bottom:1px solid #e0c060">'
            f"<b>{html.escape(title)}</b><br>Evidently DataDriftPreset on {len(cur):,} current rows (a random sample "
            f"when there are more) against {len(ref):,} reference rows <i>drawn from the reference statistics "
            "stored at training time</i> (quantile samples and category counts; LeanOps keeps no training rows). "
            f"Categories the reference never saw are shown as <i>{html.escape(UNSEEN)}</i> (or in "
            f"<i>{OTHER}</i> when training folded rare ones); the check's own table names them. "
            "Each column uses the check's own test and threshold; the LeanOps check itself uses every current row, "
            "corrects its tests across columns, ignores shifts below its effect floors and weighs the model's "
            "importance: its verdicts are the ones stored and acted on.</div>")
    at = page.find("<body>")
    return page[: at + 6] + note + page[at + 6:] if at >= 0 else note + page


class UnrecognisedReport(ValueError):
    """Evidently's HTML is not laid out as expected, so its embedded data could not be made inert."""


# Evidently 0.7's file template (evidently/legacy/utils/dashboard.py, file_html_template): one
# <script> in <head> holding `var metric_<uuid hex> = {json}; var additional_graphs_<same> = {json};`.
_DATA_START = re.compile(r"<script>\s*var (metric_[0-9a-f]{32}) = ")
_DECODER = json.JSONDecoder()
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_UNSAFE = re.compile("[<>&\u2028\u2029]")


def escape_json_text(text: str) -> str:
    """JSON text with ``<``, ``>``, ``&`` (and U+2028/9) as ``\\uXXXX`` escapes: the same value, inert in HTML.

    Outside strings JSON has none of these characters, so replacing them everywhere only rewrites
    string contents, which JSON and JavaScript read back unchanged.
    """
    return _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group()], text)


def _json_end(page: str, start: int) -> int:
    try:
        return _DECODER.raw_decode(page, start)[1]  # the parser, not a search for "</script>", finds the end
    except json.JSONDecodeError as exc:
        raise UnrecognisedReport(f"the embedded data at offset {start} is not JSON ({exc.msg})") from None


def escape_embedded_json(page: str) -> str:
    """Evidently's page with the JSON of its data ``<script>`` escaped (``escape_json_text``).

    The data block is found by Evidently's template and each JSON value is delimited by parsing it,
    so a ``</script>`` or ``<!--`` inside a value cannot end the block early.

    Raises:
        UnrecognisedReport: the page does not have the expected data block.
    """
    found = _DATA_START.search(page)
    if found is None or page.find("<body", 0, found.start()) >= 0:
        raise UnrecognisedReport("no Evidently data <script> in the page's <head>")
    dashboard_id, pos = found.group(1), found.end()
    parts = [page[:pos]]
    end = _json_end(page, pos)
    parts.append(escape_json_text(page[pos:end]))
    second = re.compile(rf";\s*var additional_graphs_{dashboard_id} = ").match(page, end)
    if second is None:
        raise UnrecognisedReport("the Evidently data <script> has no additional_graphs value after its dashboard")
    parts.append(page[end:second.end()])
    end2 = _json_end(page, second.end())
    parts.append(escape_json_text(page[second.end():end2]))
    close = re.compile(r";\s*</script>").match(page, end2)
    if close is None:
        raise UnrecognisedReport("the Evidently data <script> does not end after its two values")
    parts.append(page[end2:])
    return "".join(parts)


def withheld_page(title: str, reason: str) -> str:
    """What is stored instead of a report whose data could not be made inert."""
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body style=\"font-family:sans-serif\">"
            f"<p><b>{html.escape(title)}</b></p><p>The Evidently report was withheld: {html.escape(reason)}. "
            "The drift check itself is stored and complete.</p></body></html>")


def write(settings: Settings, html_text: str) -> Path:
    """Write the report under the workspace atomically (a temp file renamed); returns its path.

    The file is ``reports/drift/pending-<uuid>.html`` until its check is committed, then renamed
    to ``<check id>.html`` (core.monitoring.checks).
    """
    folder = reports_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pending-{uuid.uuid4().hex}.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html_text, encoding="utf-8")
    os.replace(tmp, path)
    return path


# -- off the verdict's path: a check keeps a sample, a follow-up job builds the page -------------------

def sample_path(report_path: Path) -> Path:
    """Where the sample for a check's report waits (beside the report it becomes)."""
    return report_path.with_suffix(".sample.parquet")


def write_sample(settings: Settings, reference: dict[str, Any], current: pd.DataFrame, *, rows: int) -> Path:
    """Keep the report's current-side sample (``current_sample``: unseen categories already masked) as
    ``reports/drift/<uuid>.sample.parquet``, already where its check's report (``report_for``) expects it:
    the ``drift.report`` job, queued in the check's transaction, may start the moment that commits. The
    job reads it, builds the HTML and deletes it; ``sweep_samples`` removes one whose check never was."""
    folder = reports_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.sample.parquet"
    tmp = path.with_suffix(".tmp")
    current_sample(current, list(reference["columns"]), rows=rows, reference=reference).to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def report_for(sample: Path) -> Path:
    """The report a kept sample becomes (``sample_path`` the other way round)."""
    return sample.with_name(sample.name.removesuffix(".sample.parquet") + ".html")


def sweep_samples(settings: Settings, *, older_than_s: float) -> list[Path]:
    """Delete kept samples older than ``older_than_s``: their check was never committed (a crash before
    it), or their report job never ran (cancelled, or lost with its worker). People's rows are not kept."""
    import time

    cutoff, swept = time.time() - older_than_s, []
    for path in reports_dir(settings).glob("*.sample.parquet"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                swept.append(path)
        except FileNotFoundError:  # its report job finished at the same moment
            continue
    return swept


def build_for_check(factory: sessionmaker[Session], settings: Settings, check_id: int) -> Path | None:
    """Build the Evidently HTML of a stored check from its kept sample; returns the report's path.

    Idempotent: a report already built is left alone; a check without a kept sample (run without a
    report, or its sample already used) gets None.
    """
    from core.training import runs
    from db.models import DriftCheck

    with factory() as session:
        row = session.get(DriftCheck, check_id)
        if row is None or not row.report_path:
            return None
        target = Path(row.report_path)
        reference = runs.reference_for(session, model=row.model, version=row.version)
        title = f"{row.model} v{row.version} · {row.window}"
        share = row.threshold
        columns = row.columns
    if target.exists():
        return target
    kept = sample_path(target)
    if not kept.exists():
        return None
    current = pd.read_parquet(kept)
    page = build_html(reference, current, sample_rows=max(len(current), 1), share=share, title=title,
                      checked=columns)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    kept.unlink(missing_ok=True)  # people's rows are kept no longer than the report needs them
    return target
