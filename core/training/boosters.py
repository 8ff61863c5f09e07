"""A bare XGBoost or LightGBM booster (imported in its own format) served like any LeanOps model.

``BoosterModel`` takes raw named columns and predicts labels (classification) or values (regression), with
class probabilities where the booster's objective gives them. It holds the booster object itself; skops
persists an XGBoost/LightGBM booster as that library's own model bytes (no pickle), so the whole model is one
skops file with one hash, loaded with LeanOps' allow-list (``core.training.model_files``).

A booster knows neither the class labels nor (when it was trained on a bare array) the column names: the
labels come from the dataset version it is evaluated on, in sorted order (the order ``LabelEncoder`` gives,
which is what the notebook used to turn them into 0, 1, …), and unnamed features are that dataset's columns in
order. It carries no preprocessing and no training recipe, so a retrain cannot refit it: it needs a new import.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from core.errors import InvalidInput

GENERIC = ("f", "Column_")  # the names XGBoost and LightGBM give columns of a bare array: f0 …, Column_0 …


class BoosterModel:
    """A booster with its task, input columns and (for a classifier) class labels; see the module docstring."""

    def __init__(self, booster: Any, *, library: str, task: str, kind: str, n_features: int,
                 features: list[str] | None, n_classes: int = 0) -> None:
        self.booster = booster
        self.library = library  # xgboost | lightgbm
        self.task = task  # classification | regression
        self.kind = kind  # binary | multi_proba | multi_label | values
        self.n_features = n_features
        self.features = features  # None until bound to a dataset when the booster has no names of its own
        self.n_classes = n_classes
        self.classes: list[Any] | None = None

    # -- reading --------------------------------------------------------------------------------------

    @classmethod
    def read(cls, data: bytes, *, form: str, label: str) -> BoosterModel:
        """The booster in ``data`` (``form``: xgboost-json, xgboost-ubj or lightgbm-text), read by its own library."""
        if form.startswith("xgboost"):
            return cls._read_xgboost(data, label=label)
        return cls._read_lightgbm(data, label=label)

    @classmethod
    def _read_xgboost(cls, data: bytes, *, label: str) -> BoosterModel:
        import xgboost as xgb

        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(data))
            config = json.loads(booster.save_config())
        except Exception as exc:  # noqa: BLE001 - XGBoost's own parser said no
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise InvalidInput(f"{label} refused: XGBoost could not read it ({first})") from None
        objective = str(config["learner"]["objective"]["name"])
        n_classes = int(config["learner"]["learner_model_param"].get("num_class") or 0)
        if objective == "binary:logistic":
            task, kind, n_classes = "classification", "binary", 2
        elif objective == "multi:softprob":
            task, kind = "classification", "multi_proba"
        elif objective == "multi:softmax":
            task, kind = "classification", "multi_label"
        elif objective.startswith(("reg:", "count:")):
            task, kind = "regression", "values"
        else:
            raise InvalidInput(f"{label} refused: XGBoost objective {objective!r} is not supported; supported: "
                               "binary:logistic, multi:softprob, multi:softmax, reg:*, count:*")
        names = list(booster.feature_names or [])
        return cls(booster, library="xgboost", task=task, kind=kind, n_features=int(booster.num_features()),
                   features=names if names and not _generic(names) else None, n_classes=n_classes)

    @classmethod
    def _read_lightgbm(cls, data: bytes, *, label: str) -> BoosterModel:
        import lightgbm as lgb

        try:
            booster = lgb.Booster(model_str=data.decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - LightGBM's own parser said no
            raise InvalidInput(f"{label} refused: LightGBM could not read it ({str(exc).splitlines()[0][:200]})") \
                from None
        objective = str(booster.dump_model(num_iteration=0).get("objective") or "regression").split()[0]
        n_classes = 0
        if objective in ("binary", "cross_entropy", "xentropy"):
            task, kind, n_classes = "classification", "binary", 2
        elif objective in ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"):
            task, kind, n_classes = "classification", "multi_proba", int(booster.dump_model(num_iteration=0)
                                                                          .get("num_class") or 0)
        elif objective in ("lambdarank", "rank_xendcg", "xendcg"):
            raise InvalidInput(f"{label} refused: LightGBM objective {objective!r} (ranking) is not supported")
        else:
            task, kind = "regression", "values"
        names = list(booster.feature_name())
        return cls(booster, library="lightgbm", task=task, kind=kind, n_features=int(booster.num_feature()),
                   features=names if names and not _generic(names) else None, n_classes=n_classes)

    def describe(self) -> str:
        return f"{self.library} Booster ({self.kind.replace('_', ' ')}, {self.n_features} features)"

    # -- binding to a dataset -------------------------------------------------------------------------

    def bind(self, *, columns: list[str], target_values: Any, ref: str, label: str) -> None:
        """Name unnamed features after ``columns`` (in order) and take a classifier's labels from the target.

        Raises:
            InvalidInput: the column count or the class count does not match the dataset.
        """
        if self.features is None:
            if len(columns) != self.n_features:
                raise InvalidInput(f"{label} refused: the booster takes {self.n_features} unnamed features but "
                                   f"{ref} has {len(columns)} feature columns ({', '.join(columns[:20])}); train it on "
                                   "a pandas DataFrame so it knows its column names")
            self.features = list(columns)
        if self.task == "classification":
            classes = np.unique(np.asarray(target_values))
            if self.n_classes and len(classes) != self.n_classes:
                raise InvalidInput(f"{label} refused: the booster predicts {self.n_classes} classes but the target "
                                   f"in {ref} has {len(classes)} ({', '.join(map(str, classes[:20]))})")
            self.classes = [c.item() if isinstance(c, np.generic) else c for c in classes]

    # -- the estimator interface ----------------------------------------------------------------------

    @property
    def feature_names_in_(self) -> np.ndarray:
        return np.asarray(self.features or [], dtype=object)

    @property
    def classes_(self) -> np.ndarray:
        if self.classes is None:
            raise AttributeError("classes_")  # a regressor (hasattr says no)
        return np.asarray(self.classes)

    def _raw(self, X: Any) -> np.ndarray:
        import pandas as pd

        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=self.features)
        missing = [c for c in self.features or [] if c not in frame.columns]
        if missing:
            raise KeyError(f"columns missing: {', '.join(missing)}")
        values = frame[list(self.features or [])].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        if self.library == "xgboost":
            import xgboost as xgb

            matrix = xgb.DMatrix(values, feature_names=list(self.booster.feature_names or []) or None,
                                 missing=np.nan)
            return np.asarray(self.booster.predict(matrix))
        return np.asarray(self.booster.predict(values, num_threads=getattr(self, "num_threads", 0)))  # 0: OpenMP's

    def one_thread(self) -> None:
        """Predict on one thread per call (``core.serving.cache.one_thread_per_call``)."""
        if self.library == "xgboost":
            self.booster.set_param({"nthread": 1})
        else:
            self.num_threads = 1

    @property
    def predict_proba(self) -> Any:
        """Class probabilities (absent, as ``hasattr`` sees it, for a regressor or a label-only objective)."""
        if self.task != "classification" or self.kind == "multi_label":
            raise AttributeError("predict_proba")
        return self._proba

    def _proba(self, X: Any) -> np.ndarray:
        raw = self._raw(X)
        if self.kind == "binary":
            raw = raw.reshape(-1)
            return np.column_stack([1.0 - raw, raw])
        return raw.reshape(len(raw), -1)

    def predict(self, X: Any) -> np.ndarray:
        raw = self._raw(X)
        if self.task == "regression":
            return raw.reshape(-1)
        if self.kind == "binary":
            index = (raw.reshape(-1) >= 0.5).astype(int)
        elif self.kind == "multi_label":
            index = raw.reshape(-1).astype(int)
        else:
            index = np.argmax(raw.reshape(len(raw), -1), axis=1)
        return self.classes_.take(index)


def _generic(names: list[str]) -> bool:
    return all(any(n == f"{p}{i}" for p in GENERIC) for i, n in enumerate(names))
