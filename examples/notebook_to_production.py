"""From a notebook to production: an XGBoost pipeline trained with plain pandas/scikit-learn code enters LeanOps.

    .venv/bin/python examples/notebook_to_production.py [WORKSPACE]

1. "The notebook": pandas + scikit-learn + XGBoost, nothing from LeanOps; the fitted pipeline is saved with
   skops (``skops.io.dump``), never pickle or joblib (LeanOps refuses those: loading them runs code).
2. The data the model predicts on is registered as a dataset version (hashed, quality-certified).
3. ``cli.py model import`` reads the file safely (types checked against an allow-list before loading),
   evaluates the model itself on the certified holdout, registers it and prints the gate results.
4. If every gate passed, ``cli.py promote`` makes it the champion that ``cli.py serve`` serves.

Everything goes into WORKSPACE (default: a new temporary folder), never into your own ``.leanops``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebook(folder: Path) -> tuple[Path, Path, float]:
    """What a data scientist's notebook does; returns the data file, the model file and the F1 it claims."""
    import numpy as np
    import pandas as pd
    import skops.io
    import xgboost as xgb
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(42)
    rows = 3000
    df = pd.DataFrame({"tenure_months": rng.integers(0, 72, rows).astype(float),
                       "monthly_charges": rng.normal(70, 20, rows).round(2),
                       "support_calls": rng.poisson(1.5, rows).astype(float),
                       "contract": rng.choice(["monthly", "yearly", "two_year"], rows, p=[0.5, 0.3, 0.2])})
    risk = (df.contract == "monthly") * 1.5 + df.support_calls * 0.6 - df.tenure_months / 24 + rng.normal(0, 0.7, rows)
    df["churn"] = (risk > 0.8).astype(int)
    data = folder / "customers.csv"
    df.to_csv(data, index=False)

    X, y = df.drop(columns="churn"), df["churn"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    pipeline = Pipeline([
        ("prep", ColumnTransformer([
            ("numbers", SimpleImputer(strategy="median"), ["tenure_months", "monthly_charges", "support_calls"]),
            ("contract", OneHotEncoder(handle_unknown="ignore"), ["contract"])])),
        ("model", xgb.XGBClassifier(n_estimators=150, max_depth=4, learning_rate=0.1)),
    ]).fit(X_train, y_train)
    claimed = float(f1_score(y_test, pipeline.predict(X_test), average="macro"))
    model = folder / "churn_xgb.skops"
    skops.io.dump(pipeline, model)  # the safe format: no pickle
    return data, model, claimed


def cli(env: dict[str, str], *args: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    return done.returncode, json.loads(done.stdout)


def main() -> int:
    home = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="leanops-byom-"))
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env |= {"LEANOPS_HOME": str(home / "workspace"), "LEANOPS_SCHEDULER": "off",
            "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    print(f"1. the notebook trains an XGBoost pipeline and saves it with skops (in {home})")
    data, model, claimed = notebook(home)
    print(f"   the notebook says: macro F1 {claimed:.3f} (LeanOps will measure it again itself)")

    print("2. register the data as a certified dataset version")
    cli(env, "init")
    code, version = cli(env, "dataset", "add", "customers", str(data))
    print(f"   customers:{version['version']}  sha256 {version['sha256'][:12]}…  "
          f"certificate {'passed' if version['quality']['passed'] else 'FAILED'}")

    print("3. import the model: read safely, evaluated on the certified holdout, gated")
    code, result = cli(env, "model", "import", "churn_xgb", str(model), "--dataset", "customers",
                       "--target", "churn", "--claimed-metrics", json.dumps({"f1": claimed}))
    if code != 0:
        print(f"   refused: {result['error']}")
        return code
    print(f"   registered churn_xgb v{result['version']} ({result['format']}, {result['estimator']})")
    print(f"   {result['provenance']}")
    print("   LeanOps' own holdout metrics: " + ", ".join(
        f"{k} {v:.3f}" for k, v in result["metrics"].items() if v is not None))
    for check in result["gates"]["checks"]:
        print(f"   gate {'passed' if check['passed'] else 'FAILED'}: {check['name']} (observed {check['observed']}, "
              f"required {check['required']})")

    if not result["gates"]["passed"]:
        print("4. not every gate passed: the version stays registered, not promoted")
        return 1
    code, promoted = cli(env, "promote", "churn_xgb", str(result["version"]), "--reason", "imported from notebook")
    print(f"4. promoted: churn_xgb@champion is v{promoted.get('to_version')}; serve it with "
          f"LEANOPS_HOME={home / 'workspace'} python cli.py serve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
