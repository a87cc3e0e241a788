"""Small, dependency-free Markdown rendering for generated reports."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def cell(value: object, floatfmt: str = ".4g", missing: str = "", escape: bool = True,
         booleans: tuple[str, str] | None = None) -> str:
    """One table cell: ``missing`` for None/NaN/pd.NA, floats through ``floatfmt``, booleans as
    ``booleans`` (true text, false text) when given, anything else as text (``|`` and newlines escaped
    unless ``escape`` is false)."""
    if _missing(value):
        return missing
    if booleans is not None and isinstance(value, bool | np.bool_):
        return booleans[0] if value else booleans[1]
    if isinstance(value, float):
        return format(value, floatfmt)
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ") if escape else text


def rows_table(header: Sequence[object], rows: Iterable[Sequence[object]], floatfmt: str = ".4g",
               missing: str = "", escape: bool = True, booleans: tuple[str, str] | None = None) -> str:
    """A GitHub-flavoured Markdown table from a header and rows of values (no trailing newline)."""
    head = "| " + " | ".join(str(c) for c in header) + " |"
    rule = "|" + "|".join("---" for _ in header) + "|"
    body = ["| " + " | ".join(cell(v, floatfmt, missing, escape, booleans) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def table(frame: pd.DataFrame, floatfmt: str = ".4g", missing: str = "", escape: bool = True,
          booleans: tuple[str, str] | None = None) -> str:
    """Render a DataFrame as a GitHub-flavoured Markdown table (column names as they are)."""
    return rows_table(list(frame.columns), frame.itertuples(index=False), floatfmt, missing, escape, booleans)


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The classifier reports' table: floats to 3 decimals, ``n/a`` for missing, cells unescaped."""
    return rows_table(header, rows, floatfmt=".3f", missing="n/a", escape=False)
