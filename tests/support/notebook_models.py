"""A notebook, run as its own process: plain pandas, scikit-learn, XGBoost and skops, nothing from LeanOps.

``python tests/support/notebook_models.py OUT MARKER`` writes into OUT:

- ``churn.csv`` (the data), ``rows.json`` (rows to score) and the notebook's own predictions of them
  (``pipe_pred.json``, ``xgb_pred.json``);
- ``pipe.skops``: a scikit-learn pipeline (impute + one-hot + XGBClassifier) saved with skops;
- ``xgb.json``: a bare XGBoost booster in its own JSON format (``xgb.train``);
- ``payload.pkl``, ``payload.joblib``, ``payload.skops``: files that create ``MARKER`` if anything loads them
  (a pickle's ``__reduce__`` calls ``open(MARKER, "w")``; the skops file names this script's own class, whose
  ``__setstate__`` writes it).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import skops.io as sio
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


class Payload:
    """Runs code when unpickled or loaded: what an attacker's model file does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # pickle and joblib call open(marker, "w") when loading
        return (open, (self.marker, "w"))

    def __setstate__(self, state):  # skops would call this when constructing the object
        Path(state["marker"]).write_text("ran")

    def __getstate__(self):
        return {"marker": self.marker}

    def predict(self, X):
        return X


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"age": rng.integers(18, 80, rows).astype(float), "income": rng.normal(50, 15, rows).round(2),
                       "plan": rng.choice(["basic", "pro", "max"], rows)})
    df["churn"] = ((df["age"] < 40) ^ (df["income"] < 45)).astype(int)
    return df


def main(out: Path, marker: str) -> None:
    df = frame(500, 0)
    df.to_csv(out / "churn.csv", index=False)
    frame(700, 1).to_csv(out / "churn_v2.csv", index=False)
    X, y = df.drop(columns="churn"), df["churn"]
    pipe = Pipeline([
        ("prep", ColumnTransformer([("num", SimpleImputer(strategy="median"), ["age", "income"]),
                                    ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])),
        ("model", xgb.XGBClassifier(n_estimators=40, max_depth=3, learning_rate=0.3))]).fit(X, y)
    sio.dump(pipe, out / "pipe.skops")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(X[["age", "income"]], label=y),
                        40)
    booster.save_model(out / "xgb.json")
    rows = X.head(25)
    (out / "rows.json").write_text(rows.to_json(orient="records"))
    (out / "pipe_pred.json").write_text(json.dumps(pipe.predict(rows).tolist()))
    proba = booster.predict(xgb.DMatrix(rows[["age", "income"]]))
    (out / "xgb_pred.json").write_text(json.dumps((proba >= 0.5).astype(int).tolist()))
    (out / "payload.pkl").write_bytes(pickle.dumps(Payload(marker)))
    joblib.dump(Payload(marker), out / "payload.joblib")
    sio.dump(Payload(marker), out / "payload.skops")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
