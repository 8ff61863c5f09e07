"""Dataset versions a team can trust by default (both backends): every implied version is the newest whose
certificate passed and that is not deprecated; deprecate/restore are audited (core, API); certificates use
quantile ranges with a tolerated share, a row-count change only warns unless the policy makes it a check, and
a European export gets a hint instead of a bare dtype failure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from core.actors import Actor
from core.data import datasets, quality
from core.data.profile import compute_profile
from core.data.tables import read_table
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.database import transaction
from db.models import AuditEvent, utcnow
from tests.support.training import *  # noqa: F403  (the workspace fixtures)

ALICE, VIC = Actor("alice", "scientist"), Actor("vic", "viewer")


def frame(rows: int = 300, seed: int = 0, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"income": rng.lognormal(10, 1, rows).round(2) * scale,
                         "age": rng.integers(18, 80, rows), "plan": rng.choice(["basic", "pro"], rows)})


def register(factory, settings, data, **kw) -> datasets.Registration:
    with transaction(factory) as s:
        return datasets.register(s, actor=ALICE, name="loans", data=data, filename="loans.csv",
                                 store=settings.home, source="test", settings=settings, **kw)


def test_the_default_is_the_newest_certified_version_not_deprecated(factory, settings) -> None:
    register(factory, settings, frame(seed=1))
    register(factory, settings, frame(seed=2))
    bad = frame(seed=3).astype({"age": str})
    bad["age"] = bad["age"] + " years"
    assert not register(factory, settings, bad).certificate.passed  # v3: newest, failed
    with factory() as s:
        assert datasets.default_version(s, name="loans").version == 2
        assert datasets.resolve(s, ref="loans").version == 2  # a bare name everywhere (train, retrain, score)
        assert datasets.resolve(s, ref="loans:3").version == 3  # a number is always honoured
    with transaction(factory) as s:
        view = datasets.deprecate(s, actor=ALICE, name="loans", version=2, reason="duplicated rows from a bad join")
    assert view.deprecated and not view.trusted and view.deprecation_reason == "duplicated rows from a bad join"
    with factory() as s:
        assert datasets.default_number(s, name="loans") == 1
    with transaction(factory) as s:
        datasets.deprecate(s, actor=ALICE, name="loans", version=1, reason="superseded")
    with factory() as s, pytest.raises(NotFound) as nothing:
        datasets.resolve(s, ref="loans")
    assert "v3 failed its certificate, v2 is deprecated, v1 is deprecated" in str(nothing.value)
    assert "loans:VERSION" in str(nothing.value)
    with transaction(factory) as s:
        datasets.restore(s, actor=ALICE, name="loans", version=2)
    with factory() as s:
        assert datasets.default_number(s, name="loans") == 2
        events = [(e.action, e.details.get("version"), e.actor) for e in s.scalars(
            select(AuditEvent).where(AuditEvent.action.like("dataset.version_%ed")).order_by(AuditEvent.seq))
            if e.action != "dataset.version_registered"]
    assert events == [("dataset.version_deprecated", 2, "alice"), ("dataset.version_deprecated", 1, "alice"),
                      ("dataset.version_restored", 2, "alice")]


def test_deprecation_needs_a_reason_and_the_right_role(factory, settings) -> None:
    register(factory, settings, frame())
    with pytest.raises(InvalidInput, match="needs a reason"), transaction(factory) as s:
        datasets.deprecate(s, actor=ALICE, name="loans", version=1, reason="  ")
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        datasets.deprecate(s, actor=VIC, name="loans", version=1, reason="bad")
    with pytest.raises(InvalidInput, match="not deprecated"), transaction(factory) as s:
        datasets.restore(s, actor=ALICE, name="loans", version=1)
    with pytest.raises(NotFound, match="no version 7"), transaction(factory) as s:
        datasets.deprecate(s, actor=ALICE, name="loans", version=7, reason="bad")


def test_a_bigger_sample_of_the_same_data_passes_its_quantile_ranges() -> None:
    """v1's min/max as the range failed 99 of 860k rows of the same data; quantile ranges with a tolerated
    share do not (a long-tailed column: log-normal income)."""
    small, big = frame(2000, seed=1), frame(100_000, seed=2)
    spec = quality.infer_schema(_profile(small))
    assert spec["columns"]["income"]["max"] < big["income"].max()  # the tail goes beyond the inferred range ...
    cert = quality.certify(big, profile=_profile(big), spec=spec, schema_version=1, previous_rows=2000, at=utcnow())
    ranges = [c for c in cert.checks if c["check"] == "range"]
    assert ranges and all(c["passed"] for c in ranges), ranges  # ... by less than the tolerated share
    # and the row-count change (+4900 %) is a warning, not a failure ...
    assert cert.passed and [c["check"] for c in cert.warnings] == ["row count change"]
    # ... unless the policy makes it a check
    blocked = quality.certify(big, profile=_profile(big), spec=spec, schema_version=1, previous_rows=2000,
                              at=utcnow(), row_change_blocks=True)
    assert not blocked.passed and [c["check"] for c in blocked.failed] == ["row count change"]
    # a real shift still fails: a tenth of the rows ten times larger
    shifted = big.copy()
    shifted.loc[shifted.index[::10], "age"] = 800
    cert = quality.certify(shifted, profile=_profile(shifted), spec=spec, schema_version=1, previous_rows=100_000,
                           at=utcnow())
    assert [c["column"] for c in cert.failed] == ["age"]


def test_a_european_export_gets_a_hint(factory, settings) -> None:
    register(factory, settings, frame(seed=1))
    eu = frame(seed=2)
    text = eu.to_csv(sep=";", decimal=",", index=False).encode()
    reg = register(factory, settings, text)
    assert not reg.certificate.passed
    [dtype] = [c for c in reg.certificate.failed if c["check"] == "dtype"]
    assert dtype["column"] == "income" and "decimal commas" in dtype["hint"]
    assert reg.certificate.summary().startswith("dtype income: text, expected number (values look like numbers "
                                                "with decimal commas")


@pytest.mark.parametrize(("values", "expected", "says"), [
    (["12,5", "1.234,56", "3,0"], "float", "decimal commas"),
    (["a;b", "c;d", "e;f"], "string", "';' as its separator"),
    (["cafÃ©", "naÃ¯ve", "plain"], "string", "not saved as UTF-8"),
    (["12.5", "x", "3"], "float", None),
])
def test_format_hints(values, expected, says) -> None:
    hint = quality.format_hint(pd.Series(values, dtype=object), expected)
    assert (hint is None) if says is None else (says in hint)


def _profile(data: pd.DataFrame) -> dict:
    table = read_table(data, filename="x.parquet")
    return compute_profile(table.frame, table.arrow, row_hashes=table.row_hashes)


def test_the_api_deprecates_and_restores(factory, workspace) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.accounts import auth
    from tests.support.api import bearer

    settings = workspace
    register(factory, settings, frame(seed=1))
    register(factory, settings, frame(seed=2))
    with transaction(factory) as s:
        token, _ = auth.create_token(s, actor=Actor("root", "admin"), role="scientist", name="ci")
        viewer, _ = auth.create_token(s, actor=Actor("root", "admin"), role="viewer", name="v")
    with TestClient(create_app(settings, factory=factory)) as client:
        url = "/v1/datasets/loans/versions/2"
        assert client.post(f"{url}/deprecate", json={"reason": "x"}, headers=bearer(viewer)).status_code == 403
        assert client.post(f"{url}/deprecate", json={}, headers=bearer(token)).status_code == 422
        done = client.post(f"{url}/deprecate", json={"reason": "bad join"}, headers=bearer(token))
        assert done.status_code == 200, done.text
        assert done.json() == {"name": "loans", "version": 2, "deprecated": True, "reason": "bad join",
                               "default_version": 1}
        back = client.post(f"{url}/restore", headers=bearer(token))
        assert back.json()["default_version"] == 2 and back.json()["deprecated"] is False
        assert client.post("/v1/datasets/loans/versions/9/restore", headers=bearer(token)).status_code == 404
