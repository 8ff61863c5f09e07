"""Training page: the form's version defaults to the newest certified, not deprecated version, never to a newer
one whose certificate failed."""

from __future__ import annotations

from tests.pages.test_datasets_page import churn, register


def test_the_form_defaults_to_the_last_certified_version(open_page, factory, settings) -> None:
    register(factory, settings, churn(seed=1))
    bad = churn(seed=2)
    bad["age"] = bad["age"].astype(str) + " years"
    assert not register(factory, settings, bad).certificate.passed  # v2: the newest, failed
    at = open_page("app_pages/training.py", role="scientist")
    assert not at.exception
    version = next(s for s in at.selectbox if s.label == "Version")
    assert version.value == 1 and version.options[:2] == ["2", "1 (default)"]
