"""Registry: "Import a model" (a notebook's model file in, LeanOps' evaluation and gates out) and provenance notes."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core.actors import Actor
from core.errors import LeanOpsError
from ui import resources, training_queries
from ui.components import dataset_version, message, plain, verdict
from ui.registry_view import gate_table

RESULT = "import-result"


@st.cache_data(ttl=5)
def _provenance(model: str, version: int) -> tuple[str | None, dict[str, float]]:
    from core.training import imports

    with resources.session_factory()() as session:
        record = imports.of_version(session, model=model, version=version)
    return (record.provenance, record.claimed_metrics) if record is not None else (None, {})


def provenance(model: str, version: int) -> None:
    """The provenance line of an imported version (nothing for a version LeanOps trained)."""
    text, claimed = _provenance(model, version)
    if text is None:
        return
    st.info(f"**Provenance:** {plain(text)}", icon=":material/input:")
    if claimed:
        st.caption("Metrics the notebook claimed (shown for comparison, never used by a gate): "
                   + ", ".join(f"{plain(k)} {v:.4f}" for k, v in claimed.items()))


def panel(who: Actor) -> None:
    """The "Import a model" panel: upload, dataset, target → LeanOps' evaluation and gates of the new version."""
    if not who.at_least("scientist"):
        return
    shown = st.session_state.get(RESULT)
    with st.expander("Import a model", expanded=shown is not None or st.query_params.get("import") == "1",
                     icon=":material/upload_file:"):
        st.caption("A model trained elsewhere (a notebook): a scikit-learn model or pipeline saved with skops "
                   "(`skops.io.dump(model, 'model.skops')`), an XGBoost booster (`.json`/`.ubj`) or a LightGBM "
                   "booster (`.txt`). Pickle and joblib files are refused: loading them runs code. LeanOps "
                   "evaluates the model on the holdout of a certified dataset version and holds it to the gates.")
        upload = st.file_uploader("Model file", key="import-file")
        names = training_queries.dataset_names()
        if not names:
            st.info("No datasets yet: register the data the model predicts on the Datasets page first.")
            return
        left, right = st.columns(2)
        dataset = left.selectbox("Dataset", names, key="import-dataset")
        version = dataset_version(right, "Dataset version", dataset, key=f"import-version-{dataset}")
        columns = training_queries.dataset_shape(dataset, version).columns if dataset and version else []
        left, right = st.columns(2)
        target = left.selectbox("Target column", columns, index=len(columns) - 1 if columns else None,
                                key=f"import-target-{dataset}")
        sensitive = right.selectbox("Sensitive column (fairness)", ["(none)", *columns],
                                    key=f"import-sensitive-{dataset}")
        name = st.text_input("Model name", value="", key="import-name",
                             placeholder="a new name, or an existing model's for a new version")
        claimed = st.text_input("Metrics the notebook reported (optional JSON, shown but never gated)",
                                key="import-claimed", placeholder='{"f1": 0.91}')
        if st.button("Import and evaluate", key="import-go", type="primary"):
            _run(who, upload, dataset=f"{dataset}:{version}", target=target,
                 sensitive=None if sensitive == "(none)" else sensitive, name=name, claimed=claimed)
        if shown is not None:
            _show(shown)


def _run(who: Actor, upload, *, dataset: str, target: str | None, sensitive: str | None, name: str,
         claimed: str) -> None:
    from core.promotion import imports

    if upload is None or not target or not name.strip():
        st.error("Choose a model file, a target column and a model name.")
        return
    try:
        claims = json.loads(claimed) if claimed.strip() else None
    except ValueError:
        st.error('The reported metrics are not JSON: write them as {"f1": 0.91}.')
        return
    try:
        with st.spinner("Reading the file safely and evaluating it on the holdout …"):
            result = imports.import_model(resources.session_factory(), resources.settings(), actor=who,
                                          log=lambda line: None, model=name.strip(), file_name=upload.name,
                                          data=upload.getvalue(), dataset=dataset, target=target,
                                          sensitive=sensitive, claimed_metrics=claims)
    except LeanOpsError as exc:
        st.error(message(exc))
        return
    st.cache_data.clear()
    st.session_state[RESULT] = {k: result[k] for k in ("model", "version", "format", "sha256", "metrics", "gates",
                                                      "estimator", "provenance", "claimed_metrics", "dataset")}
    # open the new version below, where it can be promoted
    st.session_state["reg-model"] = result["model"]
    st.session_state[f"reg-version-{result['model']}"] = result["version"]
    st.rerun()


def _show(result: dict) -> None:
    gates = result["gates"]
    words = "passed every gate: it is the challenger" if gates["passed"] else "did not pass every gate"
    st.success(f"Imported {plain(result['model'])} v{result['version']} ({plain(result['estimator'])}, "
               f"{result['format']}): {words}. Evaluated by LeanOps on the holdout of {plain(result['dataset'])}.")
    st.caption(plain(result["provenance"]))
    rows = [{"metric": k, "LeanOps (holdout)": v, "notebook claimed": result["claimed_metrics"].get(k)}
            for k, v in result["metrics"].items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"LeanOps (holdout)": st.column_config.NumberColumn(format="%.4f"),
                                "notebook claimed": st.column_config.NumberColumn(format="%.4f")})
    st.markdown(f"Gates: **{verdict(gates['passed'])}**")
    gate_table(gates["checks"])
    if st.button("Clear", key="import-clear"):
        st.session_state.pop(RESULT, None)
        st.rerun()
