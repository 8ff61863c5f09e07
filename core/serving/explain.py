"""Why the model said what it said about one record: each raw input column's contribution.

``explain(model, frame)`` returns, per record, a base value and one contribution per raw input column such that
**base + Σ contributions = the explained output** (exactly, up to floating point), for every kind of model:

* **XGBoost / LightGBM** (alone or as a pipeline's last step): exact TreeSHAP from the library's own
  contribution output (``pred_contribs`` / ``pred_contrib``), in its raw output space.
* **scikit-learn trees** (random forest, extra trees, decision tree, gradient boosting, histogram gradient
  boosting): exact TreeSHAP from the ``shap`` package's ``TreeExplainer`` (raw output).
* **Linear models** (logistic/ridge/linear regression, linear SVMs …): exact contributions
  ``coef × (x − mean)`` in the transformed space, the mean taken over ``background`` rows when given (else 0,
  i.e. the base is the intercept).
* **Anything else (the documented fallback)**: sampled Shapley values over the raw columns against one
  baseline record (each numeric column's median and each other column's most frequent value, over
  ``background`` or else over the records explained), averaged over ``PERMUTATIONS`` antithetic column
  orders. Every order splits ``f(x) − f(baseline)`` exactly, so additivity holds exactly; the split between
  columns is an estimate. It costs ``PERMUTATIONS × columns`` predictions per record.

Which output is explained: for a regressor, the prediction. For a classifier, the output for the positive
class (``classes[1]``) when there are two classes, else for the class predicted for that record — as a
**probability** for random forests, extra trees, decision trees and the fallback, and as **log-odds** (the
raw margin) for logistic regression, gradient boosting, histogram gradient boosting, XGBoost and LightGBM.
``Explanation.explained`` says which, in words.

Contributions in the transformed space (one-hot columns, scaled numbers) are summed back to the raw input
column each came from (every one-hot column of ``contract`` adds up to ``contract``'s contribution).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput

PERMUTATIONS = 4  # column orders of the fallback (two antithetic pairs)
SKLEARN_TREES = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
                 "DecisionTreeClassifier", "DecisionTreeRegressor", "GradientBoostingClassifier",
                 "GradientBoostingRegressor", "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
                 "IsolationForest")
PROBABILITY_TREES = ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier")
_explainers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class Explanation:
    """Per record: ``base`` + Σ ``values`` (one per raw column in ``columns``) = ``output``."""

    columns: list[str]
    values: np.ndarray  # (records, columns)
    base: np.ndarray  # (records,)
    output: np.ndarray  # (records,) the explained output
    explained: str  # which output, in words
    method: str  # how the contributions were computed

    def records(self) -> list[dict[str, float]]:
        return [dict(zip(self.columns, map(float, row), strict=True)) for row in self.values]

    def top(self, i: int, k: int = 10) -> list[tuple[str, float]]:
        """Record ``i``'s ``k`` largest contributions by size."""
        order = np.argsort(-np.abs(self.values[i]))[:k]
        return [(self.columns[j], float(self.values[i, j])) for j in order]


def explain(model: Any, frame: pd.DataFrame, *, background: pd.DataFrame | None = None) -> Explanation:
    """Contributions of each column of ``frame`` (the raw records, the model's input columns) to ``model``'s
    output on each record; see the module docstring for what is explained and how.

    Raises:
        InvalidInput: the model could not transform or predict these records.
    """
    columns = [str(c) for c in frame.columns]
    prep, est = _split(model)
    name = type(est).__name__
    try:
        if _tree_library(est) or name in SKLEARN_TREES or _is_linear(est):
            X, mapping = _transformed(prep, frame, columns)
            reference = None
            if background is not None and len(background) and _is_linear(est):
                reference = _transformed(prep, background[list(frame.columns)], columns)[0]
            phi, base, explained, method = _exact(est, X, background=reference)
            values = _to_raw(phi, mapping, len(columns))
        else:
            values, base, explained, method = _fallback(model, frame, background)
    except InvalidInput:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"these records could not be explained: {str(exc).splitlines()[0] if str(exc) else exc}") \
            from None
    return Explanation(columns, values, base, base + values.sum(axis=1), explained, method)


# -- the pipeline: transformed features and the raw column each came from --------------------------

def _split(model: Any) -> tuple[Any, Any]:
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline) and len(model.steps) > 1:
        return model[:-1], model[-1]
    if isinstance(model, Pipeline):
        return None, model[-1]
    return None, model


def _transformed(prep: Any, frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The features the estimator sees (dense floats) and, per feature, the index of its raw column."""
    if prep is None:
        X = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        return X, np.arange(len(columns))
    X = prep.transform(frame)
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    return X, _feature_map(prep, columns, X.shape[1])


_maps: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def _feature_map(prep: Any, columns: list[str], width: int) -> np.ndarray:
    with _lock:
        known = _maps.get(prep)
    if known is not None and len(known) == width:
        return known
    found = _walk(prep, columns, width)
    with _lock:
        _maps[prep] = found
    return found


def _walk(prep: Any, columns: list[str], width: int) -> np.ndarray:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    steps = list(prep.named_steps.values()) if isinstance(prep, Pipeline) else [prep]
    ct = next((s for s in steps if isinstance(s, ColumnTransformer)), None)
    if ct is None:
        if width == len(columns):
            return np.arange(width)
        raise InvalidInput(f"the model's preprocessing makes {width} features from {len(columns)} columns and "
                           "has no ColumnTransformer to say which column each came from")
    index = {c: i for i, c in enumerate(columns)}
    names_in = [str(c) for c in getattr(ct, "feature_names_in_", columns)]
    mapping = np.full(width, -1, dtype=np.int64)
    for name, trans, cols in ct.transformers_:
        part = ct.output_indices_.get(name)
        if part is None or part.stop == part.start or trans == "drop":
            continue
        raw = _column_names(cols, names_in)
        span = part.stop - part.start
        if len(raw) == span:
            idx = [index.get(c, -1) for c in raw]
        elif len(raw) == 1:
            idx = [index.get(raw[0], -1)] * span
        else:
            try:
                out = [str(n) for n in trans.get_feature_names_out(raw)]
            except Exception:  # noqa: BLE001 - a transformer without names: nothing to map by
                out = []
            if len(out) != span:
                raise InvalidInput(f"cannot tell which input column each of the {span} features of {name!r} "
                                   "comes from")
            by_length = sorted(raw, key=len, reverse=True)
            idx = [index.get(next((c for c in by_length if n == c or n.startswith(c + "_")), ""), -1) for n in out]
        mapping[part.start:part.stop] = idx
    return mapping


def _column_names(cols: Any, names_in: list[str]) -> list[str]:
    if isinstance(cols, str):
        return [cols]
    if isinstance(cols, slice):
        return names_in[cols]
    values = list(cols) if not callable(cols) else []
    if values and isinstance(values[0], (bool, np.bool_)):
        return [n for n, keep in zip(names_in, values, strict=True) if keep]
    return [names_in[int(v)] if isinstance(v, (int, np.integer)) else str(v) for v in values]


def _to_raw(phi: np.ndarray, mapping: np.ndarray, width: int) -> np.ndarray:
    """Contributions of transformed features summed per raw column (one-hot parts added up)."""
    if np.any(mapping < 0):
        raise InvalidInput("some of the model's features come from no input column the request has")
    join = np.zeros((len(mapping), width))
    join[np.arange(len(mapping)), mapping] = 1.0
    return phi @ join


# -- exact contributions in the transformed space ----------------------------------------------------

def _tree_library(est: Any) -> str | None:
    """By the classes it is built on (LeanOps' own xgboost kind subclasses XGBClassifier to keep the labels)."""
    for cls in type(est).__mro__:
        for library in ("xgboost", "lightgbm"):
            if cls.__module__.startswith(library):
                return library
    return None


def _is_linear(est: Any) -> bool:
    from sklearn.linear_model._base import LinearClassifierMixin, LinearModel

    return isinstance(est, LinearModel | LinearClassifierMixin) and hasattr(est, "coef_")


def _classes(est: Any) -> list[Any] | None:
    classes = getattr(est, "classes_", None)
    return list(np.asarray(classes).tolist()) if classes is not None else None


def _pick(values: np.ndarray, base: np.ndarray, est: Any, X: np.ndarray, what: str
          ) -> tuple[np.ndarray, np.ndarray, str]:
    """From per-class contributions (records, classes, features) and bases (records, classes): the positive class's
    for two classes, else the predicted class's, named in words."""
    classes = _classes(est)
    k = values.shape[1]
    if k == 1:
        label = f"{what} of class {classes[-1]!r}" if classes else "the prediction"
        return values[:, 0, :], base[:, 0], label
    if k == 2 and classes is not None and len(classes) == 2:
        return values[:, 1, :], base[:, 1], f"{what} of class {classes[1]!r}"
    predicted = (values.sum(axis=2) + base).argmax(axis=1)
    rows = np.arange(len(X))
    return values[rows, predicted, :], base[rows, predicted], f"{what} of the predicted class"


def _exact(est: Any, X: np.ndarray, *, background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, str, str]:
    library = _tree_library(est)
    classifier = _classes(est) is not None
    if library == "xgboost":
        import xgboost as xgb

        booster = est.get_booster()
        best = getattr(est, "best_iteration", None)
        contrib = booster.predict(xgb.DMatrix(X, feature_names=booster.feature_names), pred_contribs=True,
                                  iteration_range=(0, best + 1) if best is not None else (0, 0))
        contrib = contrib.reshape(len(X), -1, X.shape[1] + 1)
        phi, base, label = _pick(contrib[:, :, :-1], contrib[:, :, -1], est, X,
                                 "log-odds" if classifier else "prediction")
        return phi, base, label if classifier else "the prediction", "exact TreeSHAP (XGBoost pred_contribs)"
    if library == "lightgbm":
        contrib = np.asarray(est.predict(X, pred_contrib=True))
        contrib = contrib.reshape(len(X), -1, X.shape[1] + 1)
        phi, base, label = _pick(contrib[:, :, :-1], contrib[:, :, -1], est, X, "log-odds")
        return phi, base, label if classifier else "the prediction", "exact TreeSHAP (LightGBM pred_contrib)"
    if _is_linear(est):
        coef = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
        intercept = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
        mean = np.nanmean(background, axis=0) if background is not None and len(background) else np.zeros(X.shape[1])
        X = np.nan_to_num(X)
        values = coef[None, :, :] * (X - mean)[:, None, :]
        base = np.broadcast_to(intercept + coef @ mean, (len(X), len(intercept))).copy()
        phi, base_one, label = _pick(values, base, est, X, "log-odds")
        return phi, base_one, label if classifier else "the prediction", "exact linear: coef × (x − mean)"
    return _sklearn_tree(est, X)


def _sklearn_tree(est: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    import shap

    with _lock:
        explainer = _explainers.get(est)
    if explainer is None:
        explainer = shap.TreeExplainer(est)
        with _lock:
            _explainers[est] = explainer
    values = np.asarray(explainer.shap_values(X, check_additivity=False), dtype=np.float64)
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    if values.ndim == 2:
        values = values[:, None, :]
    else:  # (records, features, outputs) → (records, outputs, features)
        values = np.transpose(values, (0, 2, 1))
    base = np.broadcast_to(expected, (len(X), values.shape[1])).copy()
    classifier = _classes(est) is not None
    what = "probability" if type(est).__name__ in PROBABILITY_TREES else "log-odds"
    phi, base_one, label = _pick(values, base, est, X, what)
    return phi, base_one, label if classifier else "the prediction", "exact TreeSHAP (shap TreeExplainer)"


# -- the fallback ------------------------------------------------------------------------------------

def _baseline(frame: pd.DataFrame, background: pd.DataFrame | None) -> pd.DataFrame:
    source = background[frame.columns] if background is not None and len(background) else frame
    row = {}
    for col in frame.columns:
        values = source[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            row[col] = values.median()
        else:
            mode = values.mode(dropna=True)
            row[col] = mode.iloc[0] if len(mode) else None
    return pd.DataFrame([row], columns=frame.columns).astype(frame.dtypes.to_dict(), errors="ignore")


def _output_of(model: Any, frame: pd.DataFrame, target: np.ndarray | None) -> np.ndarray:
    if target is None:
        return np.asarray(model.predict(frame), dtype=np.float64).ravel()
    proba = np.asarray(model.predict_proba(frame), dtype=np.float64)
    return proba[np.arange(len(frame)), target]


def _fallback(model: Any, frame: pd.DataFrame, background: pd.DataFrame | None
              ) -> tuple[np.ndarray, np.ndarray, str, str]:
    n, m = len(frame), frame.shape[1]
    classes = _classes(model)
    target: np.ndarray | None = None
    explained = "the prediction"
    if classes is not None and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(frame))
        target = np.full(n, 1) if len(classes) == 2 else proba.argmax(axis=1)
        explained = (f"probability of class {classes[1]!r}" if len(classes) == 2
                     else "probability of the predicted class")
    baseline = _baseline(frame, background)
    start = pd.concat([baseline] * n, ignore_index=True)
    base = _output_of(model, start, target)
    rng = np.random.default_rng(0)
    values = np.zeros((n, m))
    orders = []
    for _ in range(PERMUTATIONS // 2):
        order = rng.permutation(m)
        orders += [order, order[::-1]]
    for order in orders:
        current, previous = start.copy(), base
        for j in order:
            col = frame.columns[j]
            current[col] = frame[col].to_numpy()
            now = _output_of(model, current, target)
            values[:, j] += now - previous
            previous = now
    values /= len(orders)
    return values, base, explained, (f"sampled Shapley values against a baseline record ({len(orders)} column "
                                     "orders; exact additivity)")


def explain_request(model: Any, body: Any, *, version: int, limit: int) -> dict[str, Any]:
    """The explanation part of a predict answer: ``explanations`` (one ``{column: contribution}`` per record),
    ``base_values`` (one per record), ``explained_output`` and ``explanation_method``. ``model`` is the served
    ``LoadedModel``; ``body`` the request's records (``check_body``'s forms, or a ``Frame``).

    Raises:
        Conflict: the alias moved to another version between the prediction and its explanation.
    """
    from core.errors import Conflict
    from core.serving.inference import check_body, check_frame
    from core.serving.signature import Column, Frame, InputSchema

    if model.version != version:
        raise Conflict(f"{model.name}'s {model.alias} moved from v{version} to v{model.version} while the request "
                       "was answered; ask again for its explanation")
    parsed = check_frame(body, limit=limit) if isinstance(body, Frame) else check_body(body, limit=limit)
    if isinstance(parsed, Frame):
        schema = model.schema or InputSchema(tuple(Column(str(k)) for k in parsed.columns), typed=False)
        coerced = schema.coerce_frame(parsed)
    else:
        schema = model.schema or InputSchema(tuple(Column(str(k)) for k in parsed[0]), typed=False)
        coerced = schema.coerce(parsed)
    why = explain(model.model, schema.frame(coerced.columns))
    return {"explanations": why.records(), "base_values": why.base.tolist(), "explained_output": why.explained,
            "explanation_method": why.method}

