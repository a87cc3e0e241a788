"""Small, dependency-free Markdown rendering for generated reports."""

from __future__ import annotations

import math

import pandas as pd


def _cell(value: object, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return format(value, floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """Render a DataFrame as a GitHub-flavoured Markdown table."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v, floatfmt) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
