"""Readers for the Materials Project snapshot and the Wang 2024 windows.

Every reader uses ``keep_default_na=False``: the formula ``NaN`` (sodium
nitride) is a real formula, not a missing value. Numeric columns are then
converted explicitly, so a genuinely empty number fails loudly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from superionic.screening import columns as C

MP_DIR = "materials_project"
ALL_POLYMORPHS = f"{MP_DIR}/mp2019_band_gap_all_polymorphs.csv"
FORMATION_ENERGY = f"{MP_DIR}/mp2019_formation_energy.csv"
WANG_ESW = "stability_window/wang2024_esw.csv"


def _read(path: Path, text: list[str], numeric: list[str]) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in text})
    missing = [c for c in [*text, *numeric] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & (frame[column].astype(str).str.strip() != "")
        if bad.any() or values.isna().any():
            rows = (frame.index[values.isna()] + 2).tolist()[:10]
            raise ValueError(f"{path}: non-numeric or empty {column!r} at file rows {rows}")
        frame[column] = values.astype(float)
    return frame


def read_all_polymorphs(data_dir: str | Path) -> pd.DataFrame:
    path = Path(data_dir) / ALL_POLYMORPHS
    frame = _read(path, [C.RAW_TASK_ID, C.RAW_PRETTY_FORMULA], [C.RAW_BAND_GAP])
    _check_unique(frame, C.RAW_TASK_ID, path)
    return frame


def read_formation_energies(data_dir: str | Path) -> pd.DataFrame:
    path = Path(data_dir) / FORMATION_ENERGY
    frame = _read(path, [C.RAW_TASK_ID, C.RAW_COMPOSITION], [C.RAW_FORMATION_ENERGY])
    _check_unique(frame, C.RAW_TASK_ID, path)
    return frame


def read_wang_esw(data_dir: str | Path) -> pd.DataFrame:
    path = Path(data_dir) / WANG_ESW
    return _read(path, [C.WANG_FORMULA], [C.WANG_RED, C.WANG_OX])


def _check_unique(frame: pd.DataFrame, column: str, path: Path) -> None:
    duplicated = frame[column].duplicated()
    if duplicated.any():
        raise ValueError(f"{path}: duplicated {column}: {frame.loc[duplicated, column].tolist()[:5]}")
