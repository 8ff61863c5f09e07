"""Datasets: register versions (upload or SQL), then each version's certificate, profile, diff and runs."""

import json

import streamlit as st

from core.data import datasets, quality, schemas, sources
from core.data.tables import TableLimits
from ui import dataset_charts as charts
from ui import dataset_queries as q
from ui import resources, session
from ui.components import act, ago, badge, code, code_area, message, plain
from ui.url_state import keep, seed

PAGE_SIZE = 20
who = session.actor()
settings = resources.settings()
st.title("Datasets")


def show(reg: datasets.Registration, *, clear: bool = False) -> None:
    """Select the version and say how it went; ``clear`` empties the upload form (a new generation of keys)."""
    st.session_state.update(ds_name=reg.version.name, ds_version=reg.version.version)
    if not reg.created:
        said = ("info", message(reg.message))
    elif reg.certificate.passed:
        said = ("success", message(reg.message))
    else:
        said = ("warning", "\n".join([message(reg.message), "", *charts.check_lines(reg.certificate.failed)]))
    st.session_state["ds-registered"] = said
    if clear:
        st.session_state["ds-form-gen"] = gen + 1
    st.rerun()  # the tables below were drawn before this version existed


gen = st.session_state.get("ds-form-gen", 0)  # bumped after a successful upload: the form starts empty


if who.at_least("scientist"):
    with st.container(border=True):
        if said := st.session_state.pop("ds-registered", None):
            getattr(st, said[0])(said[1])
        c1, c2 = st.columns(2)
        name = c1.text_input("Dataset name", placeholder="e.g. churn", key=f"ds-new-name-{gen}").strip()
        description = c2.text_input("Description", placeholder="optional: what is new in this version",
                                    key=f"ds-new-description-{gen}")
        upload_tab, sql_tab = st.tabs(["Upload a file", "Query a source database"])
        with upload_tab:
            upload = st.file_uploader(f"CSV or Parquet, up to {settings.max_upload_mb} MB", type=["csv", "parquet"],
                                      key=f"ds-upload-{gen}")
            if st.button("Register version", type="primary"):
                if upload is None:
                    st.error("Choose a CSV or Parquet file to upload first.")
                elif reg := act(lambda s: datasets.register(
                        s, actor=who, name=name, data=upload, filename=upload.name, store=settings.data_store,
                        settings=settings, source=f"upload:{upload.name}", description=description,
                        max_bytes=settings.max_upload_mb * 2**20, limits=TableLimits.of(settings))):
                    show(reg, clear=True)
        with sql_tab:
            names = [s.name for s in q.source_list()]
            source = st.selectbox("Source database", names, index=None, placeholder="an admin adds sources below")
            sql = st.text_area("SQL query", placeholder="SELECT * FROM features WHERE day >= '2026-01-01'")
            if st.button("Run query and register", disabled=source is None):
                if reg := act(lambda s: sources.register_query(s, settings, actor=who, source=source, sql=sql,
                                                               name=name, description=description)):
                    show(reg)

if who.at_least("admin"):
    with st.expander("Source databases (admin)"):
        st.dataframe([vars(s) for s in q.source_list()], hide_index=True, width="stretch")
        c1, c2, c3 = st.columns([1, 3, 1])
        src_name = c1.text_input("Source name").strip()
        src_url = c2.text_input("Database URL", placeholder="postgresql+psycopg://reader:…@host/db (queried read-only)")
        if c3.button("Add source") and act(lambda s: sources.add_source(s, settings, actor=who, name=src_name,
                                                                        url=src_url)):
            st.rerun()  # the source picker above was drawn before the source existed

overview = q.dataset_table()
if overview.empty:
    st.info("No datasets yet. Register one above, or run `python cli.py dataset add NAME FILE`.")
    st.stop()
COUNT = st.column_config.NumberColumn(format="localized")  # 12,345 rows, not 12345 (and it still sorts)
st.dataframe(overview, hide_index=True, width="stretch", column_config={"latest rows": COUNT})

names = overview["dataset"].tolist()
seed("ds_name", "dataset", names)  # ?dataset=churn&version=3: a link opens that version
if st.session_state.get("ds_name") not in names:
    st.session_state["ds_name"] = names[0]
chosen = st.selectbox("Dataset", names, key="ds_name")
keep("dataset", chosen)
pages = max(1, -(-int(overview.set_index("dataset").loc[chosen, "versions"]) // PAGE_SIZE))
page = st.number_input("Page", 1, pages, 1) if pages > 1 else 1
listing = q.versions_page(chosen, int(page), PAGE_SIZE)
st.caption(f"{listing.total} version(s), newest first")
st.dataframe(listing.table, hide_index=True, width="stretch", column_config={"rows": COUNT})

seed("ds_version", "version", listing.numbers, cast=int)
if st.session_state.get("ds_version") not in listing.numbers:
    st.session_state["ds_version"] = listing.numbers[0]
number = st.selectbox("Version", listing.numbers, key="ds_version")
keep("version", number)
view = q.version(chosen, number)
if view.description:
    st.caption(f"v{number}: {plain(view.description)}")
cert_tab, profile_tab, diff_tab, runs_tab, schema_tab = st.tabs(["Certificate", "Profile", "Diff", "Runs", "Schema"])

with cert_tab:
    passed, at, checks = q.certificate(chosen, number)
    failed = int((checks["result"] == "failed").sum())
    verdict = badge("passed", text="Certificate passed") if passed else badge(
        "failed", text=f"Certificate failed: {failed} of {len(checks)} checks")
    st.markdown(f"{verdict} · {view.ref} · sha256 `{view.sha256[:12]}` · schema v{view.schema_version} · "
                f"checked {ago(at)}")
    if number == 1:
        st.caption(":material/info: Version 1's schema was inferred from version 1 itself, so this certificate "
                   "passes by construction: it proves the file was read, not that the data is right. Later "
                   "versions are checked against that schema; review it in the Schema tab.")
    st.dataframe(checks, hide_index=True, width="stretch")
    if view.deprecated:
        st.warning(f"{view.ref} is deprecated (by {plain(view.deprecated_by or '')}: "
                   f"{plain(view.deprecation_reason or '')}): no default picks it.")
    elif not view.certificate_passed:
        st.caption("No default (training, retraining, scoring) picks a version whose certificate failed.")
    if who.at_least("scientist"):
        if view.deprecated:
            if st.button("Restore version", key=f"ds-restore-{view.ref}") and act(
                    lambda s: datasets.restore(s, actor=who, name=chosen, version=number)):
                st.cache_data.clear()
                st.rerun()
        else:
            why = st.text_input("Reason to deprecate", key=f"ds-why-{view.ref}",
                                placeholder="what is wrong with this version")
            if st.button("Deprecate version", key=f"ds-deprecate-{view.ref}", disabled=not why.strip()) and act(
                    lambda s: datasets.deprecate(s, actor=who, name=chosen, version=number, reason=why)):
                st.cache_data.clear()
                st.rerun()

with profile_tab:
    prof = q.profile(chosen, number)
    st.dataframe(charts.profile_table(prof), hide_index=True, width="stretch")
    st.plotly_chart(charts.missing_share(prof), width="stretch")
    by_name = {c["name"]: c for c in prof["columns"]}
    picked = st.multiselect("Columns to chart", list(by_name), default=list(by_name)[:6])
    grid = st.columns(3)
    for i, col in enumerate(picked):
        if (fig := charts.column_chart(by_name[col])) is not None:
            grid[i % 3].plotly_chart(fig, width="stretch", key=f"chart-{col}")

with diff_tab:
    others = [n for n in listing.numbers if n != number]
    if not others:
        st.caption("Only one version so far: nothing to compare with.")
    else:
        base = st.selectbox("Compare with version", others, index=others.index(number - 1) if number > 1 else 0)
        d = q.diff(chosen, base, number)
        c1, c2, c3 = st.columns(3)
        delta = f"{d.row_change:+.1%}" if d.row_change is not None else None
        c1.metric(f"Rows v{d.a} → v{d.b}", f"{d.rows_b:,}", delta)
        c2.metric("Columns added / removed", f"{len(d.added)} / {len(d.removed)}")
        c3.metric("Columns changed", sum(c["changed"] for c in d.columns))
        for label, items in (("Added", d.added), ("Removed", d.removed)):
            if items:
                st.markdown(f"**{label}:** " + ", ".join(code(c) for c in items))
        for r in d.retyped:
            st.markdown(f"**Type changed:** {code(r['column'])} {plain(r['a'])} → {plain(r['b'])}")
        st.dataframe(charts.diff_table(d), hide_index=True, width="stretch")
        if common := [c["column"] for c in d.columns]:
            first_changed = next((i for i, c in enumerate(d.columns) if c["changed"]), 0)
            col = st.selectbox("Distribution of", common, index=first_changed)
            a_cols = {c["name"]: c for c in q.profile(chosen, base)["columns"]}
            if (fig := charts.overlay(a_cols[col], by_name[col], base, number)) is not None:
                st.plotly_chart(fig, width="stretch", key="overlay")

with runs_tab:
    trained = q.runs(chosen, number)
    if trained.empty:
        st.caption(f"No runs yet: training runs on {view.ref} will be listed here.")
    else:
        st.dataframe(trained, hide_index=True, width="stretch")

with schema_tab:
    current = q.schema(chosen)
    st.caption(f"Schema v{current.version} by {plain(current.created_by)}, {ago(current.created_at)}"
               + (f": {plain(current.note)}" if current.note else "") + ". New versions are checked against it.")
    if who.at_least("scientist"):
        text = code_area("Schema (JSON)", json.dumps(current.spec, indent=2), height=320,
                         key=f"schema-text-{chosen}-{current.version}")
        note = st.text_input("What changed", key="schema-note")
        if st.button("Save schema"):
            act(lambda s: schemas.update_schema(s, actor=who, name=chosen, note=note,
                                                        spec=quality.parse_schema_text(text)), success="Schema saved")
    else:
        st.json(current.spec)
