"""Numbers and structured values as people read them: one place for the dashboard and the compliance PDF.

A stored metric is a float with 16 digits (0.8123456789012345); nobody reads past the third. Metrics show
3 significant digits, counts and large values get thousands separators, tiny values a short exponent,
and text that has to be cut says so with an ellipsis, cut between values rather than inside a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

DASH = "—"
ELLIPSIS = "…"


def number(value: float | int | None, *, digits: int = 3) -> str:
    """A measured value (a metric, a statistic, a bin edge) to ``digits`` significant digits.

    0.8123456789012345 → "0.812", 12.3456 → "12.3", 1234.5 → "1,234" (never "1.23e+03": from 1,000 on
    the integer part is shown whole, with separators), 0.0000123 → "1.23e-5", None → "—".
    """
    if value is None or isinstance(value, bool):
        return DASH if value is None else ("yes" if value else "no")
    x = float(value)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(float(f"{x:.{digits}g}")) >= 1000:  # 999.99 rounds to 1,000, not "1e+03"
        return f"{x:,.0f}"
    text = f"{x:.{digits}g}"
    if "e" in text:  # below 1e-4: a short exponent ("1.23e-5", not "1.23e-05")
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


def count(value: int | float | None) -> str:
    """A count with thousands separators: 12345 → "12,345"."""
    if value is None:
        return DASH
    return f"{int(value):,}"


def percent(share: float | None, *, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage: 0.1234 → "12.3%"."""
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return DASH
    return f"{share:.{digits}%}"


def p_value(p: float | None) -> str:
    """A p-value: "< 0.001" below a thousandth (the digits beyond that carry no decision), else 3 digits."""
    if p is None:
        return DASH
    return "< 0.001" if p < 0.001 else number(p)


def value(v: Any) -> str:
    """Any stored value in words: numbers by ``number``/``count``, yes/no, lists joined, mappings as key: value."""
    if v is None:
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return count(v) if abs(v) >= 10_000 else str(v)  # small ints (seeds, depths, versions) as typed
    if isinstance(v, float):
        return number(v)
    if isinstance(v, datetime):
        return f"{v:%Y-%m-%d %H:%M:%S} UTC" if v.utcoffset() is not None else f"{v:%Y-%m-%d %H:%M:%S}"
    if isinstance(v, Mapping):
        return "; ".join(f"{k}: {value(x)}" for k, x in v.items()) or DASH
    if isinstance(v, list | tuple | set):
        return ", ".join(value(x) for x in v) or DASH
    return str(v)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut.

    The cut falls on the last separator (space, comma, semicolon) in the second half of the allowance, so
    a number is never shown half ("0.81" of "0.8123" reads as a different value).
    """
    if limit < 2:
        raise ValueError(f"limit must be at least 2, got {limit}")
    if len(text) <= limit:
        return text
    head = text[:limit - 1]
    cut = max(head.rfind(sep) for sep in (" ", ",", ";"))
    if cut >= limit // 2:
        head = head[:cut]
    return head.rstrip(" ,;:") + ELLIPSIS


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Readable names of histogram bins from their edges; the outer two are open-ended (as drift stores them)."""
    inner = [number(e) for e in list(edges)[1:-1]]
    if not inner:
        return [number(edges[0])] if len(edges) else []
    return [f"< {inner[0]}", *(f"{a} – {b}" for a, b in zip(inner[:-1], inner[1:], strict=True)), f"≥ {inner[-1]}"]


def flat_rows(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested mapping as (dotted key, value in words) rows: a table instead of raw JSON."""
    rows: list[tuple[str, str]] = []
    for key, item in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            rows.extend(flat_rows(item, prefix=f"{name}."))
        else:
            rows.append((name, value(item)))
    return rows


def group_table(by_group: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per-group measures ({group: {measure: value}}) as a header and rows, one row per group."""
    measures: list[str] = []
    for row in by_group.values():
        measures.extend(m for m in row if m not in measures)
    rows = [[str(group), *(value(row.get(m)) for m in measures)] for group, row in by_group.items()]
    return ["group", *measures], rows


def versions(numbers: Iterable[int]) -> list[str]:
    """Version numbers as the category labels of a chart axis: "v1", "v2" (never a 1.5 between them)."""
    return [f"v{n}" for n in numbers]
