"""A Parquet batch compared a slice at a time (core.monitoring.streamed, issue 29) says what the whole-frame
comparison says: the same counts, KS, PSI and verdict per column (Wasserstein within 1e-3 of a standard
deviation), reading only the model's columns; a file it does not take is left to the whole-table reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.data.tables import TableLimits
from core.errors import InvalidInput
from core.monitoring import drift, streamed
from core.training import reference


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({
        "x": rng.normal(10, 2, rows) + shift * 2,
        "n": rng.poisson(2, rows),  # discrete: ties at the reference's quantile points
        "c": rng.choice(["a", "b", "c"] + (["new"] if shift else []), rows,
                        p=[0.5, 0.3, 0.2] if not shift else [0.4, 0.3, 0.2, 0.1]),
        "flag": rng.random(rows) < 0.2,
    })
    data.loc[data.index % 97 == 0, "x"] = np.nan  # missing values are counted apart
    return data


def build(train: pd.DataFrame) -> dict:
    return reference.build(train, task="classification", predictions=np.zeros(len(train), int),
                           target=pd.Series(np.zeros(len(train), int)))


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_slices_give_the_whole_frames_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shift: float) -> None:
    ref = build(frame(5000, seed=1))
    current = frame(20_000, seed=2, shift=shift)
    path = tmp_path / "batch.parquet"
    # an extra column the model does not use, of a type the whole-table reader refuses: never read
    pq.write_table(pa.Table.from_pandas(current, preserve_index=False)
                   .append_column("blob", pa.array([b"\x00\xff"] * len(current), pa.binary())), path,
                   row_group_size=3000)
    monkeypatch.setattr(streamed, "BATCH_ROWS", 4096)  # several slices, across row groups
    thresholds = drift.Thresholds()
    found = streamed.compare_parquet(path, ref, thresholds=thresholds, limits=TableLimits(), label=path.name,
                                     keep=1500)
    assert found is not None and found.rows == len(current)
    whole = {name: drift.column(ref["columns"][name], current[name], thresholds) for name in ref["columns"]}
    for name, expected in whole.items():
        got = found.results[name]
        assert got["drifted"] == expected["drifted"], name
        for key in ("current_rows", "current_nulls", "current_hist", "reference_hist", "new_categories"):
            assert got.get(key) == expected.get(key), (name, key)
        for key in ("ks", "psi", "chisquare", "current_mean", "current_std"):
            if expected.get(key) is not None:
                assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), (name, key)
        if expected.get("method") == "wasserstein":
            assert got["distance"] == pytest.approx(expected["distance"], abs=1e-3), name
    # the sample: 1,500 distinct rows of the file, the model's columns only, in file order
    assert list(found.sample.columns) == list(ref["columns"])
    assert len(found.sample) == 1500
    assert found.sample.merge(current, how="left", indicator=True)["_merge"].eq("both").all()


def test_files_it_does_not_take_are_left_to_the_whole_table_reader(tmp_path: Path) -> None:
    ref = build(frame(2000, seed=1))
    thresholds, limits = drift.Thresholds(), TableLimits()
    csv = tmp_path / "batch.csv"
    frame(100, seed=2).to_csv(csv, index=False)
    assert streamed.compare_parquet(csv, ref, thresholds=thresholds, limits=limits, label="b", keep=10) is None
    lacking = tmp_path / "lacking.parquet"
    frame(100, seed=2).drop(columns="x").to_parquet(lacking)
    assert streamed.compare_parquet(lacking, ref, thresholds=thresholds, limits=limits, label="b", keep=10) is None
    texty = tmp_path / "texty.parquet"
    frame(100, seed=2).astype({"x": str}).to_parquet(texty)  # text in a numeric column: the reader's casts
    assert streamed.compare_parquet(texty, ref, thresholds=thresholds, limits=limits, label="b", keep=10) is None
    with pytest.raises(InvalidInput, match="has 100 rows; the limit is 50"):
        streamed.compare_parquet(_ok(tmp_path), ref,
                                 thresholds=thresholds, limits=TableLimits(rows=50), label="b", keep=10)


def _ok(tmp_path: Path) -> Path:
    path = tmp_path / "ok.parquet"
    frame(100, seed=2).to_parquet(path)
    return path
