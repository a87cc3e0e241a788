"""Small deterministic writers shared by the screening stages.

Every writer writes a temporary file beside the target and renames it, so a
failed or interrupted write never leaves a truncated output behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from superionic.atomic import atomic_write

FLOAT_FORMAT = "%.6g"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer | bool | np.bool_):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float | np.floating):
        value = float(value)
        return None if not np.isfinite(value) else round(value, 6)
    return value


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    text = json.dumps(_plain(data), indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(
        path, lambda tmp: frame.to_csv(tmp, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    )


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: frame.reset_index(drop=True).to_parquet(tmp, index=False))


def report_path(report_dir: str, name: str) -> Path:
    return Path(report_dir) / name
