"""Datasets page: a scientist deprecates a version with a reason and restores it; the default moves with it."""

from __future__ import annotations

from core.data import datasets
from tests.pages.test_datasets_page import PAGE, by_label, churn, register


def test_deprecate_and_restore_from_the_page(open_page, factory, settings) -> None:
    register(factory, settings, churn(seed=1))
    register(factory, settings, churn(seed=2))
    at = open_page(PAGE, role="scientist")
    assert not at.exception
    assert by_label(at.button, "Deprecate version").disabled  # no reason yet
    by_label(at.text_input, "Reason to deprecate").input("rows duplicated by a bad join")
    at.run()
    by_label(at.button, "Deprecate version").click()
    at.run()
    assert not at.exception
    with factory() as s:
        assert datasets.resolve(s, ref="churn:2").deprecated and datasets.default_number(s, name="churn") == 1
    assert any("is deprecated" in w.value and "bad join" in w.value for w in at.warning)
    by_label(at.button, "Restore version").click()
    at.run()
    with factory() as s:
        assert datasets.default_number(s, name="churn") == 2
    viewer = open_page(PAGE, role="viewer")
    assert not [b for b in viewer.button if b.label in ("Deprecate version", "Restore version")]
