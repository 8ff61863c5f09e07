"""Plotly figures of a training run, drawn from the plain plot data stored with the run."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ui.charts import SERIES

HEIGHT = 360
FAIRNESS_KEYS = ("demographic_parity_ratio", "demographic_parity_difference", "equalized_odds_difference")


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    # the app's neutral series colours: the theme's first colour is red, which reads as "bad" on a chart
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=HEIGHT, colorway=SERIES,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def confusion_matrix(plots: dict[str, Any]) -> go.Figure:
    cm = plots["confusion_matrix"]
    fig = px.imshow(cm["matrix"], x=cm["labels"], y=cm["labels"], text_auto=True, color_continuous_scale="Blues",
                    aspect="auto")
    fig.update_xaxes(type="category")  # class labels like 0 and 1 are names, not positions
    fig.update_yaxes(type="category")
    return _layout(fig, "Confusion matrix (holdout)", "predicted", "actual")


def roc(plots: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for label, c in plots["roc"].items():
        fig.add_scatter(x=c["fpr"], y=c["tpr"], mode="lines", name=f"{label} (AUC {c['auc']:.3f})")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="chance")
    return _layout(fig, "ROC curve", "false positive rate", "true positive rate")


def precision_recall(plots: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for label, c in plots["pr"].items():
        fig.add_scatter(x=c["recall"], y=c["precision"], mode="lines",
                        name=f"{label} (AP {c['average_precision']:.3f})")
    return _layout(fig, "Precision–recall curve", "recall", "precision")


def residuals(plots: dict[str, Any]) -> go.Figure:
    r = plots["residuals"]
    fig = px.scatter(x=r["predicted"], y=r["residual"], opacity=0.6)
    fig.add_hline(y=0, line_color="grey")
    return _layout(fig, "Residuals (holdout sample)", "predicted", "actual − predicted")


def importance(plots: dict[str, Any]) -> go.Figure:
    frame = pd.DataFrame(plots["importance"]).sort_values("mean")
    fig = px.bar(frame, x="mean", y="feature", error_x="std", orientation="h")
    return _layout(fig, "Permutation importance (drop in holdout score)", "importance", "")


def fairness_table(plots: dict[str, Any]) -> pd.DataFrame:
    by_group = plots["fairness"]["by_group"]
    return pd.DataFrame([{"group": g, **values} for g, values in by_group.items()])


def compare(metrics: pd.DataFrame, shown: list[str]) -> go.Figure:
    """Grouped bars of the ``shown`` metrics, one colour per run (``metrics``: a row per metric, a column per run)."""
    runs = [c for c in metrics.columns if c != "best"]
    long = metrics.loc[shown, runs].reset_index().melt(id_vars="metric", var_name="run", value_name="value")
    fig = px.bar(long, x="metric", y="value", color="run", barmode="group")
    fig.update_xaxes(type="category")
    return _layout(fig, "Holdout metrics", "", "")


def search_parallel(search: dict[str, Any], metric: str | None) -> go.Figure | None:
    """Parallel coordinates of a search: one line per candidate, an axis per hyperparameter, the CV score last
    (and as the colour), so which settings go with a high score shows at a glance. None below two candidates."""
    candidates = search.get("candidates") or []
    if len(candidates) < 2:
        return None
    score = f"CV {metric or 'score'}"  # the search ranks candidates by the run's primary metric
    frame = pd.DataFrame([{**c["params"], score: c["mean"]} for c in candidates])
    dimensions = []
    for column in frame.columns:
        values = frame[column]
        if column != score and values.nunique(dropna=False) < 2:
            continue  # a parameter every candidate shares says nothing here
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            dimensions.append({"label": column, "values": values.astype(float)})
        else:  # words (and None/True/False) on an axis of their own positions, labelled with the words
            words = values.astype(str)
            order = sorted(words.unique())
            dimensions.append({"label": column, "values": words.map(order.index), "tickvals": list(range(len(order))),
                               "ticktext": order})
    fig = go.Figure(go.Parcoords(line={"color": frame[score], "colorscale": "Viridis", "showscale": True,
                                       "colorbar": {"title": score}}, dimensions=dimensions))
    fig.update_layout(height=HEIGHT + 60, margin={"l": 60, "r": 60, "t": 110, "b": 30},  # axis names sit on top
                      title=f"{str(search.get('method', '')).title()} search: parameters against the {score}")
    return fig
