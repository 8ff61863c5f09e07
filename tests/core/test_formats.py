"""Numbers and structured values as people read them (issue 19 item 5): one helper for the dashboard and the PDF."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import formats


@pytest.mark.parametrize(("value", "shown"), [
    (0.8123456789012345, "0.812"),  # a gate value, not 16 digits
    (12.3456, "12.3"),
    (123.456, "123"),
    (999.4, "999"),
    (999.99, "1,000"),  # rounds up to a thousand: separators, not "1e+03"
    (1234.5, "1,234"),
    (1_000_000_000.0, "1,000,000,000"),
    (-1500.2, "-1,500"),
    (0.05, "0.05"),
    (-0.01234, "-0.0123"),
    (0.0000123, "1.23e-5"),  # tiny values: a short exponent
    (0, "0"),
    (0.0, "0"),
    (None, "—"),
    (float("nan"), "n/a"),
    (float("inf"), "∞"),
    (True, "yes"),
])
def test_number(value, shown) -> None:
    assert formats.number(value) == shown


def test_number_takes_more_digits_when_asked() -> None:
    assert formats.number(0.8123456, digits=4) == "0.8123"


@pytest.mark.parametrize(("value", "shown"), [(12345, "12,345"), (7, "7"), (None, "—"), (1234.0, "1,234")])
def test_count(value, shown) -> None:
    assert formats.count(value) == shown


@pytest.mark.parametrize(("p", "shown"), [(0.0004, "< 0.001"), (0.04567, "0.0457"), (None, "—"), (1.0, "1")])
def test_p_value(p, shown) -> None:
    assert formats.p_value(p) == shown


def test_percent() -> None:
    assert formats.percent(0.1234) == "12.3%" and formats.percent(None) == "—"
    assert formats.percent(0.5, digits=0) == "50%"


@pytest.mark.parametrize(("value", "shown"), [
    ({"n_estimators": 200, "max_depth": None, "learning_rate": 0.1},
     "n_estimators: 200; max_depth: —; learning_rate: 0.1"),
    ([0.81234, 0.5], "0.812, 0.5"),
    (">= 0.7", ">= 0.7"),  # a rule is shown as written
    (False, "no"),
    (123456, "123,456"),  # a large count gets separators; small ints (seeds, versions) stay as typed
    (42, "42"),
    ({}, "—"),
    (datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), "2026-01-02 03:04:05 UTC"),
])
def test_value(value, shown) -> None:
    assert formats.value(value) == shown


def test_shorten_says_it_cut_and_never_splits_a_number() -> None:
    details = '{"accuracy": 0.8123456789, "f1": 0.7987654321, "rows": 12345}'
    cut = formats.shorten(details, 40)
    assert cut.endswith("…") and len(cut) <= 40
    assert cut == '{"accuracy": 0.8123456789, "f1"…'  # at a separator, not inside 0.7987654321
    assert formats.shorten("short", 40) == "short"
    assert formats.shorten("abcdefghijklmnopqrstuvwxyz", 10) == "abcdefghi…"  # nothing to cut at: hard cut, marked


def test_shorten_refuses_a_limit_too_small_for_the_ellipsis() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        formats.shorten("text", 1)


def test_bin_labels_read_as_ranges_with_separators() -> None:
    assert formats.bin_labels([0, 1000.5, 25000, 1e6, 2e6]) == [
        "< 1,000", "1,000 – 25,000", "25,000 – 1,000,000", "≥ 1,000,000"]
    assert formats.bin_labels([0.000012345, 0.5]) == ["1.23e-5"]
    assert formats.bin_labels([]) == []


def test_flat_rows_make_a_table_of_nested_values() -> None:
    assert formats.flat_rows({"model": {"n_estimators": 200, "inner": {"alpha": 0.123456}}, "seed": 7, "tags": []}) == [
        ("model.n_estimators", "200"), ("model.inner.alpha", "0.123"), ("seed", "7"), ("tags", "—")]


def test_group_table_has_one_row_per_group_and_every_measure() -> None:
    header, rows = formats.group_table({"f": {"count": 120, "f1": 0.81234}, "m": {"count": 80, "accuracy": 0.9}})
    assert header == ["group", "count", "f1", "accuracy"]
    assert rows == [["f", "120", "0.812", "—"], ["m", "80", "—", "0.9"]]


def test_versions_are_category_labels() -> None:
    assert formats.versions([1, 2, 10]) == ["v1", "v2", "v10"]
