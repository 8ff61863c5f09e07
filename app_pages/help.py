"""Help: a short glossary of the words the pages use, one click from every page (the sidebar's Help)."""

import streamlit as st

st.title("Help")
st.caption("What the words on these pages mean. Every page's selection is in its address: copy the address to "
           "show a teammate the same model, version, drift check or job (they sign in first, then land there).")

TERMS = [
    ("Certificate", "The quality check every dataset version gets when it is registered: schema (columns and "
     "types), missing values, ranges and duplicates against the dataset's earlier versions. A version whose "
     "certificate failed is never picked by default (training, retraining, drift reference); a deprecated "
     "version neither. The Datasets page shows each check with its result."),
    ("Gates", "The policy's conditions a model version must pass before it can become the champion: a metric "
     "floor (e.g. F1 at least 0.85), beating the current champion by the improvement margin, fairness limits, "
     "a passed certificate of its training data, and approval when the policy asks for it. Registry shows each "
     "gate with what was observed and what was required; promotion is refused while one fails (only an admin's "
     "Force promote overrides, and that is flagged everywhere)."),
    ("Champion and challenger", "The champion serves predictions. A retrained version that passes its gates "
     "becomes the challenger: it can be shadow-scored on live records and promoted (or rolled back) in one "
     "click, with confirmation."),
    ("Approval", "With `approval.required` in the policy, a version is promoted through a request: a "
     "scientist or approver clicks Request promotion, an approver (not the one who trained it) approves on "
     "Registry. Approvers see waiting requests on the Overview and their count in the sidebar."),
    ("Drift verdict rules", "Each column is compared with the training data: KS (numbers) or chi-squared "
     "(categories) for small windows, normalised Wasserstein or Jensen-Shannon distance for large ones. A "
     "tested column only counts when its p-value stays below the threshold after the Benjamini-Hochberg "
     "correction across columns and its shift is at least the effect floor (0.05 standard deviations, or 0.05 "
     "Jensen-Shannon, by default). The data counts as drifted when the model's outputs drifted, a drifted "
     "column is among the model's most important, the drifted columns carry enough of its importance, or at "
     "least the drift share of the columns drifted. The Drift page names the rule that fired."),
    ("Evidently report", "A third-party report shown beside LeanOps' verdict, run on a sample with the same "
     "per-column tests and thresholds; it judges columns one by one, without LeanOps' correction, effect floors "
     "or the model's importance, so the two can differ (the Drift page says so above the report)."),
    ("CBPE and DLE", "Estimates of live performance before labels arrive. CBPE (confidence-based performance "
     "estimation) turns a classifier's calibrated probabilities into an expected F1/accuracy; DLE (direct loss "
     "estimation) trains a small model of a regressor's errors. Both are fitted at training and shown with a "
     "band; they are wrong when the relation between inputs and labels itself changes (concept drift)."),
    ("Audit log", "Every change, in a hash chain with signed checkpoints: Verify integrity finds an edited, "
     "deleted or reordered event."),
]

for term, text in TERMS:
    st.subheader(term, anchor=term.lower().replace(" ", "-"))
    st.markdown(text)
