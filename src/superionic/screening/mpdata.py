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
MP2024_E_HULL = f"{MP_DIR}/mp2024_energy_above_hull.csv.gz"
MP2024_LI_GAPS = f"{MP_DIR}/mp2024_li_band_gap.csv"

# Coverage of ``mp2024_li_band_gap.csv`` (datasets README: the observed ranges,
# the publisher states no filter): every Li material of the release with
# band gap >= 0.5 eV and E_hull < 0.1 eV/atom. A Li material absent from it
# therefore has a gap below 0.5 eV, unless its E_hull is >= 0.1, when its gap
# is simply unknown.
GAP_FILE_MIN_GAP = 0.5
GAP_FILE_MAX_E_HULL = 0.1


def _read(path: Path, text: list[str], numeric: list[str], encoding: str = "utf-8") -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (data_dir is set in conf/config.yaml)")
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in text}, encoding=encoding)
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as error:
        raise ValueError(f"{path}: unreadable ({type(error).__name__}: {error})") from error
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


def read_mp2024_e_hull(data_dir: str | Path) -> pd.DataFrame:
    """Every material of the 2024 release with MP's own energy above hull."""
    path = Path(data_dir) / MP2024_E_HULL
    frame = _read(
        path, [C.RAW_MATERIAL_ID, C.RAW_FORMULA_2024, C.RAW_UNIT_CELL], [C.RAW_NSITES, C.RAW_E_ABOVE_HULL]
    )
    _check_unique(frame, C.RAW_MATERIAL_ID, path)
    return frame


def read_mp2024_li_gaps(data_dir: str | Path) -> pd.DataFrame:
    """Band gaps of the 2024 Li materials the gap file covers (UTF-8 with BOM)."""
    path = Path(data_dir) / MP2024_LI_GAPS
    frame = _read(path, [C.GAP_ID, C.GAP_FORMULA], [C.GAP_E_HULL, C.GAP_BAND_GAP], encoding="utf-8-sig")
    _check_unique(frame, C.GAP_ID, path)
    return frame


def _check_unique(frame: pd.DataFrame, column: str, path: Path) -> None:
    duplicated = frame[column].duplicated()
    if duplicated.any():
        raise ValueError(f"{path}: duplicated {column}: {frame.loc[duplicated, column].tolist()[:5]}")
