"""The one renderer of the Markdown reports: Jinja templates plus shared number and table filters.

Report modules compute a context (plain data: numbers, strings, lists, dicts)
and call :func:`render` with a template of ``superionic/reports/templates``;
all formatting lives in the templates and the filters below. The environment
is strict: a name the context lacks raises :class:`jinja2.UndefinedError`
naming it, instead of rendering an empty string.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from superionic.reports import markdown

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
MISSING_TEXT = "n/a"


def link(target: str | Path, document: str | Path) -> str:
    """``target`` as a Markdown link written in ``document``: relative to the document's folder, with /."""
    return Path(os.path.relpath(target, Path(document).parent)).as_posix()


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fixed(value: Any, digits: int = 3, missing: str = MISSING_TEXT) -> str:
    """``digits`` decimals for a float; ``missing`` for None/NaN; any other value as text (``{x:.3f}``)."""
    if _is_missing(value):
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt(value: Any, spec: str) -> str:
    """Python's format mini-language: ``{{ x|fmt('.4g') }}`` is ``format(x, '.4g')``."""
    return format(value, spec)


def num(value: Any, spec: str = ".2f", missing: str = "–") -> str:
    """A number as a float through ``spec``; ``missing`` (an en dash) for None, NaN and infinities."""
    if value is None or not math.isfinite(float(value)):
        return missing
    return format(float(value), spec)


def pct(value: float, digits: int = 1) -> str:
    """A fraction as a percentage with a space before the sign: 0.847 -> ``84.7 %``."""
    return f"{100 * value:.{digits}f} %"


def thousands(value: Any) -> str:
    """Thousands separators: 20237 -> ``20,237`` (floats keep their digits: ``{x:,}``)."""
    return f"{value:,}"


def pm(value: float, error: float, digits: int = 3, missing: str | None = None) -> str:
    """A value with its standard error: ``0.812 ± 0.004``. With ``missing``, a value that is not a
    finite number is ``missing`` and so is a non-finite error (``0.49 ± –``) (see :func:`num`)."""
    if missing is not None:
        if value is None or not math.isfinite(float(value)):
            return missing
        spec = f".{digits}f"
        return f"{num(value, spec, missing)} ± {num(error, spec, missing)}"
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def assignments(params: Mapping[str, Any], floatfmt: str = ".4g") -> str:
    """``k=v, ...`` sorted by key, floats through ``floatfmt`` (tuned hyperparameters)."""
    return ", ".join(f"{k}={format(v, floatfmt) if isinstance(v, float) else v}" for k, v in sorted(params.items()))


def md_table(rows: Iterable[Sequence[Any]], header: Sequence[Any], floatfmt: str = ".4g",
             missing: str = "", escape: bool = True, booleans: Sequence[str] | None = None) -> str:
    """Rows of values as a Markdown table (superionic.reports.markdown), header given separately;
    ``booleans``: the texts of true and false cells (``['yes', 'no']``), else ``True``/``False``."""
    return markdown.rows_table(header, rows, floatfmt=floatfmt, missing=missing, escape=escape,
                               booleans=None if booleans is None else tuple(booleans))


def frame_table(frame: Any, floatfmt: str = ".4g", missing: str = "", escape: bool = True,
                booleans: Sequence[str] | None = None) -> str:
    """A DataFrame as a Markdown table (superionic.reports.markdown.table; same options as md_table)."""
    return markdown.table(frame, floatfmt, missing=missing, escape=escape,
                          booleans=None if booleans is None else tuple(booleans))


FILTERS = {
    "fixed": fixed,
    "fmt": fmt,
    "num": num,
    "pct": pct,
    "thousands": thousands,
    "pm": pm,
    "assignments": assignments,
    "md_table": md_table,
    "frame_table": frame_table,
}


@cache
def environment(template_dir: Path = TEMPLATE_DIR) -> jinja2.Environment:
    """The shared environment: strict undefined names, block tags that leave no blank lines, Markdown
    (not HTML) so no autoescaping, and the final newline of a template kept."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    return env


def render(template: str, context: Mapping[str, Any], template_dir: Path = TEMPLATE_DIR) -> str:
    """Render ``template`` (a file name under ``template_dir``) with ``context``."""
    return environment(template_dir).get_template(template).render(**context)
