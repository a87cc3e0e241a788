"""Pool stage: reading (the ``NaN`` formula), Li selection, anion classes."""

from __future__ import annotations

import pandas as pd
import pytest

from superionic.screening import columns as C
from superionic.screening.anions import classify_formula
from superionic.screening.mpdata import ALL_POLYMORPHS, FORMATION_ENERGY, read_all_polymorphs, read_formation_energies
from superionic.screening.pool import build_pool, pool_metrics, task_id_sort_key


def _write(tmp_path, relative, text):
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_nan_formula_survives_reading(tmp_path):
    _write(
        tmp_path,
        ALL_POLYMORPHS,
        "task_id,pretty_formula,band_gap\nmp-1,NaN,0.5\nmp-2,LiNaN2,1.0\nmp-3,Li3N,1.1\nmp-4,NA,0.0\n",
    )
    _write(tmp_path, FORMATION_ENERGY, "task_id,composition,formation_energy_per_atom\nmp-1,NaN,-0.1\n")
    frame = read_all_polymorphs(tmp_path)
    assert frame[C.RAW_PRETTY_FORMULA].tolist() == ["NaN", "LiNaN2", "Li3N", "NA"]
    assert read_formation_energies(tmp_path)[C.RAW_COMPOSITION].tolist() == ["NaN"]
    pool, unparsed = build_pool(frame)
    # NaN is sodium nitride (no Li); "NA" is no formula and is reported, not dropped
    assert pool[C.TASK_ID].tolist() == ["mp-2", "mp-3"]
    assert unparsed[C.RAW_PRETTY_FORMULA].tolist() == ["NA"]
    metrics = pool_metrics(frame, pool, unparsed)
    assert metrics["n_unparsed_formulas"] == 1 and metrics["n_li_entries"] == 2


def test_empty_band_gap_fails_loudly(tmp_path):
    _write(tmp_path, ALL_POLYMORPHS, "task_id,pretty_formula,band_gap\nmp-1,LiF,\n")
    with pytest.raises(ValueError, match="band_gap"):
        read_all_polymorphs(tmp_path)


def test_pool_keeps_li_by_element_not_by_substring():
    frame = pd.DataFrame(
        {
            C.RAW_TASK_ID: ["mp-10", "mp-9", "mp-100", "mvc-3"],
            C.RAW_PRETTY_FORMULA: ["LiF", "Li2O", "TlCl", "LiCl"],
            C.RAW_BAND_GAP: [8.0, 5.0, 2.0, 6.0],
        }
    )
    pool, _ = build_pool(frame)
    # Tl is not Li; task ids sort numerically within their prefix
    assert pool[C.TASK_ID].tolist() == ["mp-9", "mp-10", "mvc-3"]
    assert pool[C.CHEMSYS].tolist() == ["Li-O", "F-Li", "Cl-Li"]
    assert pool[C.ANION_CLASS].tolist() == ["oxide", "halide", "halide"]


def test_task_id_sort_key_rejects_unknown_format():
    with pytest.raises(ValueError, match="task id"):
        task_id_sort_key(pd.Series(["mp-1", "weird"]))


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("Li3PO4", "oxide"),  # P is the cation of a phosphate
        ("Li2CO3", "oxide"),
        ("LiClO4", "oxide"),  # perchlorate: Cl is +7
        ("LiOH", "oxide"),  # H is +1
        ("Li3PS4", "sulfide"),
        ("Li2Se", "selenide"),
        ("LiAlCl4", "halide"),
        ("LiPF6", "halide"),
        ("Li3InBr3Cl3", "halide"),  # mixed halogens stay halide
        ("Li3N", "nitride"),
        ("LiNH2", "nitride"),
        ("LiBH4", "hydride"),  # H more electronegative than B
        ("LiH", "hydride"),
        ("Li3P", "phosphide"),
        ("Li2C2", "carbide"),
        ("Li3OCl", "mixed-anion"),  # antiperovskite: O2- and Cl-
        ("Li6PS5Cl", "mixed-anion"),  # argyrodite
        ("LiAl", "other"),  # intermetallic
        ("Li", "other"),
    ],
)
def test_anion_classification(formula, expected):
    assert classify_formula(formula)[0] == expected
