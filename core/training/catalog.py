"""The model kinds a user can train, their hyperparameters (defaults, bounds, search ranges), task detection.

Plain data: the Training page builds its form from it, the CLI validates ``--param K=V`` with it, and
``core.training.pipeline`` turns a kind and its values into an sklearn estimator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.errors import InvalidInput

TASKS = ("classification", "regression")
MAX_CLASSES_FOR_INT = 20  # an integer target with at most this many distinct values is a class label


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, default, bounds, and the values a search tries."""

    name: str
    kind: str  # int | float | choice
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    log: bool = False  # searched on a log scale
    grid: tuple[Any, ...] = ()  # the values a grid search tries; no grid = not searched
    search_range: tuple[float, float] | None = None  # what a random search samples (else: the grid)
    help: str = ""
    tasks: tuple[str, ...] = TASKS

    def check(self, value: Any) -> Any:
        """The value coerced to this parameter's type, or InvalidInput saying what is allowed."""
        if self.kind == "choice":
            for choice in self.choices:
                if value == choice or str(value) == str(choice):
                    return choice
            raise InvalidInput(f"parameter {self.name}={value!r} is not allowed; choose one of: "
                               f"{', '.join(map(str, self.choices))}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"parameter {self.name}={value!r} is not a number") from None
        if math.isnan(number) or (self.kind == "int" and number != int(number)):
            raise InvalidInput(f"parameter {self.name}={value!r} must be a whole number")
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise InvalidInput(f"parameter {self.name}={number:g} is out of range; allowed: {self.bounds}")
        return int(number) if self.kind == "int" else number

    @property
    def bounds(self) -> str:
        if self.kind == "choice":
            return " | ".join(map(str, self.choices))
        return f"{self.low:g} … {self.high:g}"

    def distribution(self) -> Any:
        """What a random search samples: ``search_range`` (log-uniform when ``log``), else the grid values."""
        from scipy.stats import loguniform, randint, uniform

        if self.search_range is None or self.kind == "choice":
            return list(self.grid or self.choices or (self.default,))
        low, high = self.search_range
        if self.kind == "int":
            return randint(int(low), int(high) + 1)
        if self.log:
            return loguniform(low, high)
        return uniform(low, high - low)


@dataclass(frozen=True)
class ModelKind:
    key: str
    label: str
    params: tuple[Param, ...]
    build: Callable[[str, dict[str, Any], int], Any] = field(repr=False)
    aliases: tuple[str, ...] = ()

    def params_for(self, task: str) -> tuple[Param, ...]:
        return tuple(p for p in self.params if task in p.tasks)

    def defaults(self, task: str) -> dict[str, Any]:
        return {p.name: p.default for p in self.params_for(task)}


# -- estimators (sklearn imported only when one is built) ------------------------------------------

def _linear(task: str, p: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "classification":
        return LogisticRegression(C=p["C"], max_iter=p["max_iter"], random_state=seed)
    return Ridge(alpha=p["alpha"], random_state=seed)


def _forest(task: str, p: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    max_features = {"sqrt": "sqrt", "log2": "log2", "all": 1.0}[p["max_features"]]
    return cls(n_estimators=p["n_estimators"], max_depth=p["max_depth"] or None,
               min_samples_leaf=p["min_samples_leaf"], max_features=max_features, random_state=seed, n_jobs=-1)


def _hist_gb(task: str, p: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    return cls(learning_rate=p["learning_rate"], max_iter=p["max_iter"], max_leaf_nodes=p["max_leaf_nodes"],
               l2_regularization=p["l2_regularization"], random_state=seed)


def _xgboost(task: str, p: dict[str, Any], seed: int) -> Any:
    # histogram trees on every core; the classifier takes the target's own labels (XGBoost wants 0 … k-1)
    common = dict(n_estimators=p["n_estimators"], max_depth=p["max_depth"], learning_rate=p["learning_rate"],
                  subsample=p["subsample"], colsample_bytree=p["colsample_bytree"],
                  min_child_weight=p["min_child_weight"], reg_lambda=p["reg_lambda"], tree_method="hist",
                  max_bin=p["max_bin"], random_state=seed, n_jobs=-1)
    if task == "classification":
        from core.training.xgb_labels import LabelledXGBClassifier

        return LabelledXGBClassifier(**common)
    from xgboost import XGBRegressor

    return XGBRegressor(**common)


def _lightgbm(task: str, p: dict[str, Any], seed: int) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMClassifier if task == "classification" else LGBMRegressor
    return cls(n_estimators=p["n_estimators"], num_leaves=p["num_leaves"], learning_rate=p["learning_rate"],
               min_child_samples=p["min_child_samples"], subsample=p["subsample"], subsample_freq=1,
               colsample_bytree=p["colsample_bytree"], reg_lambda=p["reg_lambda"], max_bin=p["max_bin"],
               random_state=seed, n_jobs=-1, verbose=-1)


def _dummy(task: str, p: dict[str, Any], seed: int) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if task == "classification":
        return DummyClassifier(strategy=p["strategy"], random_state=seed)
    return DummyRegressor(strategy=p["regression_strategy"])


C, R = ("classification",), ("regression",)
KINDS: dict[str, ModelKind] = {k.key: k for k in (
    ModelKind("linear", "Logistic / ridge regression", (
        Param("C", "float", 1.0, 1e-4, 1e4, log=True, grid=(0.01, 0.1, 1.0, 10.0), search_range=(1e-3, 1e2),
              tasks=C, help="inverse regularisation strength (smaller = simpler model)"),
        Param("max_iter", "int", 1000, 50, 10_000, tasks=C, help="solver iterations"),
        Param("alpha", "float", 1.0, 1e-4, 1e4, log=True, grid=(0.01, 0.1, 1.0, 10.0), search_range=(1e-3, 1e2),
              tasks=R, help="regularisation strength (larger = simpler model)"),
    ), _linear, aliases=("logistic_regression", "logistic", "ridge")),
    ModelKind("random_forest", "Random forest", (
        Param("n_estimators", "int", 100, 10, 1000, grid=(50, 100, 200), search_range=(50, 300),
              help="number of trees"),
        Param("max_depth", "int", 16, 0, 100, grid=(8, 16, 0), help="deepest a tree grows (0 = no limit)"),
        Param("min_samples_leaf", "int", 2, 1, 100, grid=(1, 2, 5), search_range=(1, 10),
              help="fewest rows in a leaf"),
        Param("max_features", "choice", "sqrt", choices=("sqrt", "log2", "all"), grid=("sqrt", "all"),
              help="features considered at each split"),
    ), _forest, aliases=("rf", "forest")),
    ModelKind("hist_gradient_boosting", "Histogram gradient boosting", (
        Param("learning_rate", "float", 0.1, 0.001, 1.0, log=True, grid=(0.05, 0.1, 0.3), search_range=(0.01, 0.5),
              help="shrinkage per step"),
        Param("max_iter", "int", 200, 10, 2000, grid=(100, 200), help="boosting iterations (early stopping on "
                                                                      "more than 10,000 rows)"),
        Param("max_leaf_nodes", "int", 31, 2, 256, grid=(15, 31, 63), search_range=(8, 128), help="leaves per tree"),
        Param("l2_regularization", "float", 0.0, 0.0, 10.0, grid=(0.0, 1.0), search_range=(0.0, 5.0),
              help="L2 penalty on leaf values"),
    ), _hist_gb, aliases=("hgb", "gradient_boosting", "hist_gb")),
    # Gradient-boosted trees of XGBoost and LightGBM: histogram-based, every core, and defaults sized so that
    # 1M rows × 25 columns train in well under the random forest's time (bench/boosting_train.py).
    ModelKind("xgboost", "XGBoost (gradient-boosted trees)", (
        Param("n_estimators", "int", 200, 10, 5000, grid=(100, 200, 400), search_range=(50, 600),
              help="boosting rounds (trees)"),
        Param("max_depth", "int", 6, 1, 16, grid=(4, 6, 8), search_range=(3, 10), help="deepest a tree grows"),
        Param("learning_rate", "float", 0.1, 0.001, 1.0, log=True, grid=(0.05, 0.1, 0.3), search_range=(0.01, 0.3),
              help="shrinkage per round (smaller: more rounds needed, often better)"),
        Param("subsample", "float", 0.8, 0.1, 1.0, grid=(0.8, 1.0), search_range=(0.5, 1.0),
              help="share of rows each tree sees"),
        Param("colsample_bytree", "float", 0.8, 0.1, 1.0, grid=(0.8, 1.0), search_range=(0.5, 1.0),
              help="share of features each tree sees"),
        Param("min_child_weight", "float", 1.0, 0.0, 100.0, grid=(1.0, 5.0), search_range=(0.5, 10.0),
              help="smallest hessian sum in a leaf (larger = simpler trees)"),
        Param("reg_lambda", "float", 1.0, 0.0, 100.0, grid=(0.0, 1.0, 10.0), search_range=(0.0, 10.0),
              help="L2 penalty on leaf weights"),
        Param("max_bin", "int", 256, 16, 1024, help="histogram bins per feature"),
    ), _xgboost, aliases=("xgb",)),
    ModelKind("lightgbm", "LightGBM (gradient-boosted trees)", (
        Param("n_estimators", "int", 200, 10, 5000, grid=(100, 200, 400), search_range=(50, 600),
              help="boosting rounds (trees)"),
        Param("num_leaves", "int", 31, 2, 1024, grid=(15, 31, 63), search_range=(8, 128), help="leaves per tree"),
        Param("learning_rate", "float", 0.1, 0.001, 1.0, log=True, grid=(0.05, 0.1, 0.3), search_range=(0.01, 0.3),
              help="shrinkage per round"),
        Param("min_child_samples", "int", 20, 1, 10_000, grid=(10, 20, 50), search_range=(5, 100),
              help="fewest rows in a leaf"),
        Param("subsample", "float", 0.8, 0.1, 1.0, grid=(0.8, 1.0), search_range=(0.5, 1.0),
              help="share of rows each round sees (bagging every round)"),
        Param("colsample_bytree", "float", 0.8, 0.1, 1.0, grid=(0.8, 1.0), search_range=(0.5, 1.0),
              help="share of features each tree sees"),
        Param("reg_lambda", "float", 0.0, 0.0, 100.0, grid=(0.0, 1.0, 10.0), search_range=(0.0, 10.0),
              help="L2 penalty on leaf values"),
        Param("max_bin", "int", 255, 16, 1023, help="histogram bins per feature"),
    ), _lightgbm, aliases=("lgbm", "lgb")),
    ModelKind("dummy", "Dummy baseline", (
        Param("strategy", "choice", "prior", choices=("prior", "most_frequent", "stratified", "uniform"), tasks=C,
              grid=("prior", "stratified"), help="how the baseline guesses"),
        Param("regression_strategy", "choice", "mean", choices=("mean", "median"), tasks=R, grid=("mean", "median"),
              help="what the baseline predicts"),
    ), _dummy, aliases=("baseline",)),
)}
DEFAULT_KIND = "random_forest"


def get_kind(key: str) -> ModelKind:
    wanted = (key or "").strip().lower().replace("-", "_").replace(" ", "_")
    for kind in KINDS.values():
        if wanted == kind.key or wanted in kind.aliases:
            return kind
    raise InvalidInput(f"model kind {key!r} is unknown; kinds are: {', '.join(KINDS)}")


def check_params(kind: ModelKind, task: str, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given``, each checked against its bounds; unknown names are refused."""
    allowed = {p.name: p for p in kind.params_for(task)}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        names = ", ".join(allowed) or "none"
        raise InvalidInput(f"parameter(s) {', '.join(unknown)} do not apply to {kind.key} for {task}; "
                           f"its parameters are: {names}")
    return {name: p.check(given[name]) if name in given else p.default for name, p in allowed.items()}


# -- task detection --------------------------------------------------------------------------------

def detect_task(target: pd.Series) -> str:
    """classification for text, categorical, boolean and low-cardinality integer targets, else regression."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    if values.empty:
        return "regression"
    whole = pd.api.types.is_integer_dtype(values) or bool((values == values.round()).all())
    return "classification" if whole and values.nunique() <= MAX_CLASSES_FOR_INT else "regression"
