"""The launch form of the Training page: dataset, target, task, model and its hyperparameters, search.

``launch_form`` draws the widgets (built from ``core.training.catalog``, so defaults and bounds live in
one place) and returns the raw spec when ``Launch training`` is pressed.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.training.catalog import DEFAULT_KIND, KINDS, TASKS, Param
from ui import queries
from ui import training_queries as q
from ui.components import code, dataset_version, message


def _param_widget(param: Param, key: str, column: Any) -> Any:
    label = param.name.replace("_", " ")
    helptext = f"{param.help} · allowed: {param.bounds}"
    if param.kind == "choice":
        return column.selectbox(label, param.choices, index=param.choices.index(param.default), key=key,
                                help=helptext)
    if param.kind == "int":
        return column.number_input(label, min_value=int(param.low), max_value=int(param.high),
                                   value=int(param.default), step=1, key=key, help=helptext)
    return column.number_input(label, min_value=float(param.low), max_value=float(param.high),
                               value=float(param.default), format="%g", key=key, help=helptext)


def launch_form() -> dict[str, Any] | None:
    names = q.dataset_names()
    if not names:
        st.info("Register a dataset on the Datasets page first (or run `python cli.py init --demo`).")
        return None
    c1, c2 = st.columns([3, 1])
    dataset = c1.selectbox("Dataset", names, key="tr-dataset")
    version = dataset_version(c2, "Version", dataset, key=f"tr-version-{dataset}", prefix="",
                              help="the default is the newest version whose certificate passed and that is not "
                                   "deprecated")
    shape = q.dataset_shape(dataset, version)
    model_name = st.text_input("Model name", value=dataset, key=f"tr-model-name-{dataset}",
                               help="the registered model this run adds a version to; a model keeps the target, "
                                    "task and input columns of its first version").strip()
    # A model name is bound to its target and task (core.training.integrity): default to them; a new
    # model gets no default target, so nobody trains on whatever column happens to be last.
    bound = queries.model_binding(model_name) if model_name else None
    if bound is not None:
        st.caption(f"Model {code(bound.model)} predicts {code(bound.target)} ({bound.task}) since its version "
                   f"{bound.first_version}. To predict something else, use a new model name.")
    c1, c2, c3 = st.columns([2, 1, 2])
    default = shape.columns.index(bound.target) if bound is not None and bound.target in shape.columns else None
    target = c1.selectbox("Target column", shape.columns, index=default, key=f"tr-target-{dataset}-{model_name}",
                          placeholder="choose the column to predict")
    if target is None:
        st.info("Choose the target column: the column this model predicts.")
        return None
    if bound is not None and target != bound.target:
        st.error(message(f"Model '{bound.model}' predicts '{bound.target}' ({bound.task}); training it on "
                         f"'{target}' will be refused. Choose '{bound.target}' or a new model name."))
    detected = bound.task if bound is not None and target == bound.target else shape.tasks[target]
    task = c2.selectbox("Task", TASKS, index=TASKS.index(detected), key=f"tr-task-{shape.ref}-{target}-{model_name}",
                        help=f"detected from the target: {shape.tasks[target]} (text, yes/no and integers with few "
                             "values are classes; other numbers are regression)")
    kinds = list(KINDS)
    kind = c3.selectbox("Model", kinds, index=kinds.index(DEFAULT_KIND), format_func=lambda k: KINDS[k].label,
                        key="tr-model")

    params: dict[str, Any] = {}
    shown = KINDS[kind].params_for(task)
    with st.container(border=True):
        st.caption(f"Hyperparameters of {KINDS[kind].label.lower()} (defaults shown; bounds in each tooltip)")
        columns = st.columns(max(len(shown), 1))
        for param, column in zip(shown, columns, strict=False):
            params[param.name] = _param_widget(param, f"tr-param-{kind}-{task}-{param.name}", column)

    c1, c2, c3 = st.columns(3)
    holdout = c1.slider("Holdout fraction", 0.05, 0.5, 0.2, 0.05, key="tr-holdout")
    seed = c2.number_input("Random seed", 0, 2**31 - 1, 42, key="tr-seed")
    others = [c for c in shape.columns if c != target]
    sensitive = c3.selectbox("Sensitive column (optional)", [None, *others], key=f"tr-sensitive-{dataset}",
                             format_func=lambda c: "— none —" if c is None else c,
                             help="measure per-group metrics and fairness on this column")
    exclude = st.multiselect("Exclude columns", others, key=f"tr-exclude-{dataset}-{target}",
                             help="leave these out of the features (IDs, constant or empty columns)")

    c1, c2, c3 = st.columns([2, 1, 1])
    method = c1.selectbox("Hyperparameter search", ["none", "grid", "random"], key="tr-search",
                          help="cross-validate several candidates on the training rows, then fit the best")
    candidates = c2.number_input("Candidates", 1, 200, 8, key="tr-candidates", disabled=method == "none")
    folds = c3.number_input("CV folds", 2, 20, 3, key="tr-folds", disabled=method == "none")
    allow = allow_schema = False
    if bound is not None and target == bound.target and (
            changes := queries.schema_changes(model_name, shape.ref, target, tuple(exclude))):
        st.warning(message(f"The input columns of {model_name} would change from its version "
                           f"{bound.schema_version}: " + "; ".join(changes)))
        allow_schema = st.checkbox("Confirm the input schema change", key="tr-allow-schema",
                                   help="this version takes other input columns than the model's newest version")

    if not shape.certificate_passed:
        st.warning(f"{shape.ref} failed its quality certificate: training stops unless you allow it.")
        allow = st.checkbox("Train on data that failed its certificate", key="tr-allow")
    if not st.button("Launch training", type="primary", key="tr-launch"):
        return None
    return {"dataset": shape.ref, "target": target, "task": task, "model": kind, "params": params,
            "holdout": holdout, "seed": int(seed), "sensitive": sensitive, "exclude": exclude,
            "search": {"method": method, "candidates": int(candidates), "folds": int(folds)}
            if method != "none" else None,
            "model_name": model_name, "allow_failed_certificate": allow, "allow_schema_change": allow_schema}
