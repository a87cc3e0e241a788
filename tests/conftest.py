"""Shared fixtures: a tiny conductivity data directory mirroring the real layouts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_tiny_conductivity(data_dir: Path) -> Path:
    """Five source files in the publishers' layouts, each with a known defect."""
    folder = data_dir / "conductivity"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "Formula": ["Li7La3Zr2O12", "Li3PS4 ", "Na2Mg0.5Zr1.5(PO4)", "Li10GeP2S12"],
            "Type": ["Garnet", "Thio-LISICON", "NASICON", "LGPS"],
            "Crystal system": ["Cubic", "Orthorhombic", "Trigonal", "Tetragonal"],
            "Ionic conductivity (S/cm)": [4e-4, 1.6e-4, 4e-4, 1.2e-2],
            "Reference": ["1", "2", "3", "4"],
            "Spacegroup": [230, 62, 167, None],
            "Unnamed: 6": [None] * 4,
            "Reference index": [1, 2, 3, 4],
            "Source": ["10.1/a", "10.1/b", None, "10.1/d"],
        }
    ).to_excel(folder / "kang2023_database.xlsx", index=False)
    pd.DataFrame(
        {"Formula": ["NaZr2(PO4)3", "Na3Zr2Si2PO12"], "S": ["4.5E-06", "6.7E-04"],
         "a": ["8.79", "9.07"], "c": ["22.8", "22.7"], "Vcalc": ["1529", "1617"]}
    ).to_csv(folder / "xu2020_nasicon_train.csv", index=False)
    (folder / "xu2020_na_li_test.csv").write_text(
        "\ufeffFormula,S,a,c,Vcalc,\n"
        "Li1.3AL0.3Ti1.7(PO4)3,7.00E-04,8.5,20.8,1300,\n"
        "Li1.2Fe0.2HF1.8 (PO4)3,1.00E-05,8.8,22.0,1480,\n"
        "LiCrTa(PO4)3\u2013 0.2Li3PO4,2.00E-06,8.6,21.9,1400,\n",
        encoding="utf-8",
    )
    pd.DataFrame(
        {"ID": [1, 2, 3], "composition": ["Li7La3Zr2O12", "Li3PS4", "Li2O"],
         "source": ["10.1/x", "10.1/y", "10.1/z"], "temperature": [25.0, 100.0, 27.0],
         "target": [1e-4, 1e-3, 1e-9], "log_target": [-4, -3, -9], "family": ["Garnet", "Thio-LISICON", None],
         "ChemicalFamily": ["Oxides", "Sulphides", "Oxides"]}
    ).to_csv(folder / "liverpool2023_subset.csv", index=False)
    pd.DataFrame(
        {"ID": ["a1", "a2"], "Reduced Composition": ["Li4O2", "Xx2O"], "Ionic conductivity (S cm-1)": ["<1E-10", "1e-5"],
         "Space group #": ["225", "12"], "a": ["4.6", "5"], "b": ["4.6", "5"], "c": ["4.6", "5"],
         "alpha": ["90", "90"], "beta": ["90", "90"], "gamma": ["90", "90"], "Family": ["antifluorite", "x"],
         "DOI": ["10.1/o1", "10.1/o2"]}
    ).to_csv(folder / "obelix2025_subset.csv", index=False)
    return data_dir


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Path:
    return write_tiny_conductivity(tmp_path / "datasets")


def fresh_postgres_database() -> str | None:
    """A new, empty database on the CI's PostgreSQL server (SUPERIONIC_TEST_POSTGRES), or None."""
    import os
    import uuid

    server = os.environ.get("SUPERIONIC_TEST_POSTGRES")
    if not server:
        return None
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"
