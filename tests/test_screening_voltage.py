"""V_ox sources: the documented order, completeness of the 2019 system, and the grouped-CV estimate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from superionic.screening import columns as C
from superionic.screening.esw import WANG_OX_MEDIAN, WANG_RED_MEDIAN
from superionic.screening.voltage import (
    GGA_COMPLETE,
    SOURCE_GGA,
    SOURCE_ML,
    SOURCE_UNKNOWN,
    SOURCE_WANG,
    V_OX_ERROR,
    assign_sources,
    fit_vox_model,
    gga_vs_wang,
    missing_competitors,
)

FORMULAS = pd.DataFrame(
    {
        C.REDUCED_FORMULA: ["Li2O", "LiF", "Li3PO4", "LiBr", "LiI"],
        C.CHEMSYS: ["Li-O", "F-Li", "Li-O-P", "Br-Li", "I-Li"],
    }
)
THERMO_2019 = pd.DataFrame(
    {
        C.REDUCED_FORMULA: ["Li2O", "LiF", "Li3PO4", "LiBr"],
        C.GROUND_STATE: [True, True, True, True],
        C.ON_HULL: [True, True, True, False],
        C.V_OX: [2.9, 6.4, 4.2, 3.5],
        C.V_RED: [0.0, 0.0, 0.7, 0.0],
    }
)
WANG = pd.DataFrame(
    {
        C.REDUCED_FORMULA: ["Li2O", "Li3PO4", "LiBr"],
        WANG_OX_MEDIAN: [3.0, 4.3, 3.4],
        WANG_RED_MEDIAN: [0.0, 0.7, 0.0],
    }
)
# on the 2024 hull: P2O5 (Li-O-P sub-system) and LiF lack a 2019 energy
HULL_2024 = pd.DataFrame(
    {
        C.REDUCED_FORMULA: ["Li2O", "P2O5", "Li3PO4", "LiF", "Li"],
        C.CHEMSYS: ["Li-O", "O-P", "Li-O-P", "F-Li", "Li"],
    }
)
KNOWN_2019 = {"Li2O", "Li3PO4", "LiBr"}


def _sources(ml=None):
    missing = missing_competitors(HULL_2024, KNOWN_2019)
    return assign_sources(FORMULAS, THERMO_2019, missing, WANG, ml, 0.7).set_index(C.REDUCED_FORMULA)


def test_source_order_gga_then_wang_then_unknown():
    table = _sources()
    # complete system on the 2019 hull: own GGA window wins over Wang
    assert table.loc["Li2O", C.V_OX_SOURCE] == SOURCE_GGA and table.loc["Li2O", C.V_OX] == 2.9
    # P2O5 (on the 2024 hull) lacks a 2019 energy: the system is incomplete, Wang takes over
    assert not table.loc["Li3PO4", GGA_COMPLETE] and "P2O5" in table.loc["Li3PO4", "gga_missing_competitors"]
    assert table.loc["Li3PO4", C.V_OX_SOURCE] == SOURCE_WANG and table.loc["Li3PO4", C.V_OX] == 4.3
    # LiF itself has no 2019 energy listed as known: incomplete, and Wang lacks it: unknown
    assert table.loc["LiF", C.V_OX_SOURCE] == SOURCE_UNKNOWN and np.isnan(table.loc["LiF", C.V_OX])
    # above the 2019 hull: its window would be its decomposition products', so Wang
    assert table.loc["LiBr", C.V_OX_SOURCE] == SOURCE_WANG
    assert table.loc["LiI", C.V_OX_SOURCE] == SOURCE_UNKNOWN
    assert table[V_OX_ERROR].isna().all()


def test_estimate_is_the_last_source_and_carries_its_error():
    ml = pd.Series({"LiF": 6.0, "LiI": 3.0, "Li2O": 1.0})
    table = _sources(ml)
    assert table.loc["LiF", C.V_OX_SOURCE] == SOURCE_ML and table.loc["LiF", C.V_OX] == 6.0
    assert table.loc["LiF", V_OX_ERROR] == 0.7
    assert table.loc["Li2O", C.V_OX_SOURCE] == SOURCE_GGA  # an estimate never overrides a computed window
    assert np.isnan(table.loc["LiF", C.V_RED])


def test_agreement_uses_only_rows_with_both_sources():
    both, stats = gga_vs_wang(_sources().reset_index())
    assert both[C.REDUCED_FORMULA].tolist() == ["Li2O"]
    assert stats["v_ox"]["n"] == 1


def test_estimate_error_is_out_of_fold_by_chemical_system():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    y = 3 + X["a"].to_numpy() + 0.1 * rng.normal(size=120)
    groups = np.repeat(np.arange(12), 10)
    model_cfg = OmegaConf.create(
        {"n_estimators": 50, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 5, "cv_folds": 4}
    )
    model, oof, stats = fit_vox_model(X, y, groups, model_cfg, seed=0)
    assert stats["folds"] == 4 and oof["oof_v_ox"].notna().all()
    assert stats["mae_v"] < 0.6 and stats["r2"] > 0.5
    _, oof_again, _ = fit_vox_model(X, y, groups, model_cfg, seed=0)
    pd.testing.assert_frame_equal(oof, oof_again)
    assert model.predict(X.iloc[:2]).shape == (2,)


@pytest.mark.parametrize("formula", ["LiF"])
def test_missing_competitors_skip_elements(formula):
    missing = missing_competitors(HULL_2024, KNOWN_2019)
    assert frozenset({"Li"}) not in missing and formula in missing[frozenset({"F", "Li"})]
