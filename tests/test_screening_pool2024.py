"""2024 pool: Li detection, and the band-gap rule for materials absent from the gap file."""

from __future__ import annotations

import numpy as np
import pandas as pd

from superionic.screening import columns as C
from superionic.screening.pool2024 import (
    GAP_BELOW_COVERAGE,
    GAP_FROM_FILE,
    GAP_FROM_POLYMORPH,
    GAP_UNKNOWN,
    build_pool_2024,
)

MATERIALS = pd.DataFrame(
    {
        C.RAW_MATERIAL_ID: ["mp-1", "mp-2", "mp-3", "mp-4", "mp-5", "mp-6", "mp-7", "mp-8"],
        C.RAW_FORMULA_2024: ["Li2O", "Li2O", "LiCl", "Li3N", "LiAl", "NaCl", "LuF3", "Li10Ge(PS6)2"],
        C.RAW_UNIT_CELL: ["Li8 O4", "Li4 O2", "Li4 Cl4", "Li3 N1", "Li1 Al1", "Na4 Cl4", "Lu2 F6", "Li20 Ge2 P4 S24"],
        C.RAW_NSITES: [12, 6, 8, 4, 2, 8, 8, 50],
        C.RAW_E_ABOVE_HULL: [0.0, 0.05, 0.0, 0.0, 0.2, 0.0, 0.0, 0.02],
    }
)
GAPS = pd.DataFrame(
    {
        C.GAP_ID: ["mp-1", "mp-3"],
        C.GAP_FORMULA: ["Li2O", "LiCl"],
        C.GAP_E_HULL: [0.0, 0.0],
        C.GAP_BAND_GAP: [5.0, 6.4],
    }
)


def test_gap_file_absence_rule_and_polymorph_proxy():
    pool, unparsed, checks = build_pool_2024(MATERIALS, GAPS)
    by_id = pool.set_index(C.TASK_ID)
    # Li found on the parsed composition: Lu (LuF3) and Na are not Li
    assert list(by_id.index) == ["mp-1", "mp-2", "mp-3", "mp-4", "mp-5", "mp-8"]
    assert by_id.loc["mp-1", C.BAND_GAP_NOTE] == GAP_FROM_FILE and by_id.loc["mp-1", C.BAND_GAP] == 5.0
    # a polymorph whose formula the file lists under another id takes that gap, flagged
    assert by_id.loc["mp-2", C.BAND_GAP_NOTE] == GAP_FROM_POLYMORPH and by_id.loc["mp-2", C.BAND_GAP] == 5.0
    # absent, formula not listed, E_hull < 0.1: gap below 0.5 eV, the value stays unknown
    assert by_id.loc["mp-4", C.BAND_GAP_NOTE] == GAP_BELOW_COVERAGE and np.isnan(by_id.loc["mp-4", C.BAND_GAP])
    assert by_id.loc["mp-8", C.BAND_GAP_NOTE] == GAP_BELOW_COVERAGE
    # absent with E_hull >= 0.1: outside the file's coverage, unknown
    assert by_id.loc["mp-5", C.BAND_GAP_NOTE] == GAP_UNKNOWN
    assert by_id.loc["mp-8", C.REDUCED_FORMULA] == "Li10Ge(PS6)2" or by_id.loc["mp-8", C.CHEMSYS] == "Ge-Li-P-S"
    assert by_id.loc["mp-8", C.CHEMSYS] == "Ge-Li-P-S"
    assert unparsed.empty
    assert checks["gap_rows_not_in_li_pool"] == 0 and checks["gap_file_formulas"] == 2


def test_gap_rows_outside_the_pool_are_counted():
    gaps = pd.concat([GAPS, pd.DataFrame({C.GAP_ID: ["mp-99"], C.GAP_FORMULA: ["LiF"], C.GAP_E_HULL: [0.0],
                                          C.GAP_BAND_GAP: [0.2]})], ignore_index=True)
    _, _, checks = build_pool_2024(MATERIALS, gaps)
    assert checks["gap_rows_not_in_li_pool"] == 1 and checks["gap_rows_below_min_gap"] == 1
