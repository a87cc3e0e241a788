"""Readers for the raw conductivity sources in ``<data_dir>/conductivity/``.

Each reader maps one publisher's layout onto :data:`columns.RAW_COLUMNS` and
nothing more: no cleaning, no filtering, so every raw row can be accounted
for downstream. Row numbers are spreadsheet-style (the header is row 1).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from superionic.data import columns as C


class SourceFormatError(ValueError):
    """A source file lacks a column the reader needs."""


@dataclass(frozen=True)
class Source:
    name: str
    filename: str
    citation: str
    # True when every row is a room-temperature measurement by construction
    # (the file has no temperature column).
    room_temperature_only: bool
    # Structure family for every row when the whole file is one family.
    family: str | None
    columns: dict[str, str]  # raw column -> tidy column
    read: Callable[[Path], pd.DataFrame]


# What a damaged file raises while being read: empty, binary, truncated, not a zip.
UNREADABLE = (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, zipfile.BadZipFile, EOFError)


def _read_csv(path: Path) -> pd.DataFrame:
    # utf-8-sig strips the BOM of xu2020_na_li_test.csv; keep_default_na=False
    # so that a formula such as "NaN" (sodium nitride) stays a string.
    try:
        return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except UNREADABLE as exc:
        raise ValueError(f"{path}: unreadable CSV ({type(exc).__name__}: {exc})") from exc


def _read_excel(path: Path) -> pd.DataFrame:
    try:
        return pd.read_excel(path, dtype=str, keep_default_na=False)
    except (*UNREADABLE, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: unreadable spreadsheet ({type(exc).__name__}: {exc})") from exc


_XU2020 = "Xu, Zong & Hippalgaonkar, J. Phys. Commun. 4, 055015 (2020)"
# Both Xu files share one layout ("Vcalc" is their computed cell volume).
_XU2020_COLUMNS = {"Formula": C.FORMULA_RAW, "S": C.SIGMA_RAW, "a": C.LATTICE_A, "c": C.LATTICE_C, "Vcalc": C.VOLUME}

SOURCES: dict[str, Source] = {
    source.name: source
    for source in [
        Source(
            name="kang2023",
            filename="kang2023_database.xlsx",
            citation="Kang, Kim & Min, J. Phys. Chem. C 127, 19335 (2023)",
            room_temperature_only=True,
            family=None,
            columns={
                "Formula": C.FORMULA_RAW,
                "Ionic conductivity (S/cm)": C.SIGMA_RAW,
                "Type": C.FAMILY,
                "Spacegroup": C.SPACE_GROUP,
                "Source": C.DOI,
            },
            read=_read_excel,
        ),
        Source(
            name="xu2020_nasicon_train",
            filename="xu2020_nasicon_train.csv",
            citation=_XU2020,
            room_temperature_only=True,
            family="NASICON",
            columns=_XU2020_COLUMNS,
            read=_read_csv,
        ),
        Source(
            name="xu2020_na_li_test",
            filename="xu2020_na_li_test.csv",
            citation=_XU2020,
            room_temperature_only=True,
            family=None,
            columns=_XU2020_COLUMNS,
            read=_read_csv,
        ),
        Source(
            name="liverpool2023",
            filename="liverpool2023_subset.csv",
            citation="Hargreaves et al., npj Comput. Mater. 9, 9 (2023), via OBELiX LiIonDatabase.csv",
            room_temperature_only=False,
            family=None,
            columns={
                "composition": C.FORMULA_RAW,
                "target": C.SIGMA_RAW,
                "temperature": C.TEMPERATURE_C,
                "source": C.DOI,
                "family": C.FAMILY,
            },
            read=_read_csv,
        ),
        Source(
            name="obelix2025",
            filename="obelix2025_subset.csv",
            citation="Therrien et al., OBELiX (2025)",
            room_temperature_only=True,
            family=None,
            columns={
                "Reduced Composition": C.FORMULA_RAW,
                "Ionic conductivity (S cm-1)": C.SIGMA_RAW,
                "Space group #": C.SPACE_GROUP,
                "a": C.LATTICE_A,
                "c": C.LATTICE_C,
                "DOI": C.DOI,
                "Family": C.FAMILY,
            },
            read=_read_csv,
        ),
    ]
}

_OBELIX_ANGLES = ("a", "b", "c", "alpha", "beta", "gamma")


def _cell_volume(frame: pd.DataFrame) -> pd.Series:
    """Triclinic cell volume from a, b, c, alpha, beta, gamma (degrees)."""
    a, b, c, alpha, beta, gamma = (pd.to_numeric(frame[k], errors="coerce") for k in _OBELIX_ANGLES)
    ca, cb, cg = (np.cos(np.radians(x)) for x in (alpha, beta, gamma))
    return a * b * c * np.sqrt(1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg)


def read_source(name: str, data_dir: str | Path) -> pd.DataFrame:
    """Read one source into the raw tidy layout; raise if a column is missing."""
    if name not in SOURCES:
        raise KeyError(f"unknown conductivity source {name!r}; known: {sorted(SOURCES)}")
    source = SOURCES[name]
    path = Path(data_dir) / "conductivity" / source.filename
    if not path.exists():
        raise FileNotFoundError(f"{path}: source {name!r} not found (check data_dir)")
    frame = source.read(path)
    missing = [col for col in source.columns if col not in frame.columns]
    if missing:
        raise SourceFormatError(f"{path}: missing column(s) {missing}")
    tidy = frame[list(source.columns)].rename(columns=source.columns)
    if name == "obelix2025":
        missing = [col for col in _OBELIX_ANGLES if col not in frame.columns]
        if missing:
            raise SourceFormatError(f"{path}: missing column(s) {missing}")
        tidy[C.VOLUME] = _cell_volume(frame).map(lambda v: "" if np.isnan(v) else repr(v))
    for col in C.RAW_COLUMNS:
        if col not in tidy.columns:
            tidy[col] = np.nan
    tidy = tidy.replace("", np.nan)
    if source.family is not None:
        tidy[C.FAMILY] = tidy[C.FAMILY].fillna(source.family)
    tidy[C.SOURCE] = name
    tidy[C.ROW] = np.arange(2, len(tidy) + 2)
    return tidy[C.RAW_COLUMNS].reset_index(drop=True)
