"""XGBoost's scikit-learn classifier for any class labels (XGBoost itself takes only 0 … k-1).

``LabelledXGBClassifier`` encodes the labels it is fitted on in sorted order (as ``LabelEncoder`` does) and
decodes its predictions, so a target of "yes"/"no" or 3/7 trains like any other kind. It adds no parameters:
``sklearn.base.clone`` and the search copy it like ``XGBClassifier``. Imported only where an xgboost model is
built or loaded (``import xgboost`` costs a second).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost as xgb


class LabelledXGBClassifier(xgb.XGBClassifier):
    """``XGBClassifier`` that learns and returns the target's own labels."""

    def fit(self, X: Any, y: Any, **kwargs: Any) -> LabelledXGBClassifier:
        values = np.asarray(y)
        labels = np.unique(values)
        self.__dict__.pop("labels_", None)  # XGBoost checks the codes against classes_ while fitting
        super().fit(X, np.searchsorted(labels, values), **kwargs)
        self.labels_ = labels
        return self

    @property
    def classes_(self) -> np.ndarray:
        labels = self.__dict__.get("labels_")
        return labels if labels is not None else np.arange(self.n_classes_)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        return self.labels_.take(np.asarray(super().predict(X, **kwargs)).astype(int))
