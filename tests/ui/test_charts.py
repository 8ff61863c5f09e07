"""Chart conventions (issue 19 item 6): axes that fit one or few points, versions as categories, fixed colours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ui import charts

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_period_that_began_a_moment_ago_spans_at_least_an_hour() -> None:
    first, last = charts.time_range([NOW - timedelta(seconds=0.7)], end=NOW)
    assert last - first >= charts.MIN_TIME_SPAN  # not 0.7 s of millisecond ticks
    assert first <= NOW - timedelta(hours=1) and last >= NOW


def test_a_long_history_keeps_its_own_span() -> None:
    first, last = charts.time_range([NOW - timedelta(days=30), NOW - timedelta(days=1)], end=NOW)
    assert NOW - timedelta(days=31) < first < NOW - timedelta(days=30) and NOW < last < NOW + timedelta(days=2)
    assert charts.time_range([]) is None


def test_one_value_gets_a_narrow_band_not_zero_to_one_and_a_half() -> None:
    low, high = charts.value_range([0.81], lower=0.0, upper=1.05)
    assert 0.7 < low < 0.81 < high < 0.92  # Plotly's own default for one point is about 0.31–1.31


def test_value_range_stays_within_the_metric_bounds() -> None:
    low, high = charts.value_range([0.98, 0.99], lower=0.0, upper=1.05)
    assert 0.9 < low < 0.98 and 0.99 < high <= 1.05
    assert charts.value_range([0.0, 1.0], lower=0.0, upper=1.05) == [0.0, 1.05]
    assert charts.value_range([None]) is None


def test_versions_are_categories_with_their_values_written_on_the_points() -> None:
    fig = charts.metric_by_version([1, 2, 3], [0.8123456789, 0.79, 0.8301], metric="f1")
    assert fig.layout.xaxis.type == "category"
    trace = fig.data[0]
    assert list(trace.x) == ["v1", "v2", "v3"]
    assert list(trace.text) == ["0.812", "0.79", "0.83"]
    assert fig.layout.yaxis.range[0] > 0.6 and fig.layout.yaxis.range[1] <= 1.05


def test_reference_and_current_have_one_colour_each_and_neither_is_red() -> None:
    assert charts.SERIES_COLOURS == {"reference": charts.REFERENCE, "current": charts.CURRENT}
    assert charts.BAD not in charts.SERIES_COLOURS.values()
