"""Thermo stage on tiny tables: ground states, non-ground states, missing phases, Wang check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from superionic.screening import columns as C
from superionic.screening.esw import compare_windows, worst_outliers
from superionic.screening.pool import build_pool
from superionic.screening.thermo import (
    NOTE_ABOVE_HULL,
    NOTE_ELEMENT,
    NOTE_NO_COMPOSITION,
    NOTE_NOT_GROUND_STATE,
    NOTE_ON_HULL,
    compute_thermo,
    missing_compositions,
)


def _inputs():
    polymorphs = pd.DataFrame(
        {
            C.RAW_TASK_ID: ["mp-1", "mp-2", "mp-3", "mp-4", "mp-5", "mp-6", "mp-7", "mp-8"],
            C.RAW_PRETTY_FORMULA: ["Li2O", "Li2O", "Li2O2", "LiO2", "LiF", "Li", "NaN", "SO3"],
            C.RAW_BAND_GAP: [5.0, 4.5, 2.0, 0.1, 9.0, 0.0, 0.5, 6.0],
        }
    )
    formation = pd.DataFrame(
        {
            C.RAW_TASK_ID: ["mp-1", "mp-3", "mp-4", "mp-7"],
            C.RAW_COMPOSITION: ["Li2O", "Li2O2", "LiO2", "NaN"],
            C.RAW_FORMATION_ENERGY: [-2.0, -1.6, -1.0, -0.1],
        }
    )
    return polymorphs, formation


def test_compute_thermo_marks_every_kind_of_entry():
    polymorphs, formation = _inputs()
    pool, _ = build_pool(polymorphs)
    table, systems = compute_thermo(pool, formation, polymorphs[C.RAW_PRETTY_FORMULA])
    t = table.set_index(C.TASK_ID)
    assert t.loc["mp-1", C.THERMO_NOTE] == NOTE_ON_HULL
    assert t.loc["mp-1", C.V_RED] == 0.0 and t.loc["mp-1", C.V_OX] == pytest.approx(2.8)
    assert t.loc["mp-3", C.V_RED] == pytest.approx(2.8) and t.loc["mp-3", C.V_OX] == pytest.approx(3.2)
    assert t.loc["mp-4", C.THERMO_NOTE] == NOTE_ABOVE_HULL and t.loc["mp-4", C.E_HULL] > 0
    # a second Li2O polymorph: not in the formation-energy file, energy unknown
    assert t.loc["mp-2", C.THERMO_NOTE] == NOTE_NOT_GROUND_STATE
    assert not t.loc["mp-2", C.GROUND_STATE] and np.isnan(t.loc["mp-2", C.E_HULL])
    assert t.loc["mp-5", C.THERMO_NOTE] == NOTE_NO_COMPOSITION
    assert t.loc["mp-6", C.THERMO_NOTE] == NOTE_ELEMENT
    assert t[C.ON_HULL].tolist() == [True, False, True, False, False, False]
    # LiF has no energy: recorded as a missing phase of the F-Li system
    assert t.loc["mp-5", C.MISSING_PHASES] == "LiF" and t.loc["mp-1", C.N_MISSING_PHASES] == 0
    assert systems["system"].tolist() == ["Li-O"]


def test_missing_compositions_ignores_elements_and_known():
    missing = missing_compositions(pd.Series(["Li", "LiF", "Li2O", "MgO", "Li2O2"]), pd.Series(["Li2O", "Li2O2"]))
    assert missing == {frozenset(["F", "Li"]): ["LiF"], frozenset(["Mg", "O"]): ["MgO"]}


def test_wang_comparison_statistics_and_duplicates():
    polymorphs, formation = _inputs()
    pool, _ = build_pool(polymorphs)
    table, _ = compute_thermo(pool, formation, polymorphs[C.RAW_PRETTY_FORMULA])
    wang = pd.DataFrame(
        {
            C.WANG_FORMULA: ["Li2O", "Li2O2", "Li2O2", "LiF"],
            C.WANG_RED: [0.0, 2.7, 2.9, 0.0],
            C.WANG_OX: [3.0, 3.1, 3.5, 6.4],
        }
    )
    matched, check = compare_windows(table, wang)
    assert matched[C.REDUCED_FORMULA].tolist() == ["Li2O", "Li2O2"]  # LiF has no ground state here
    li2o2 = matched.set_index(C.REDUCED_FORMULA).loc["Li2O2"]
    assert li2o2["wang_v_ox"] == pytest.approx(3.3) and li2o2["wang_n_rows"] == 2
    assert li2o2["diff_v_ox"] == pytest.approx(-0.1)
    assert check["v_ox_all"]["mae_v"] == pytest.approx((0.2 + 0.1) / 2)
    assert check["n_matched_on_hull"] == 2
    assert worst_outliers(matched, 1)[C.REDUCED_FORMULA].tolist() == ["Li2O"]
