"""Rediscovery: the refit never sees a held-out material or chemical system; metrics against random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from superionic.screening import columns as C
from superionic.screening.rediscovery import (
    LABEL,
    assert_no_leak,
    best_polymorph,
    expected_calibration_error,
    labelled_pool,
    rank_pool,
    rediscovery_metrics,
    refit_mask,
)

TRAIN = pd.DataFrame(
    {
        "reduced_formula": ["Li3PS4", "Li3.25P0.95S4", "Li7P3S11", "LiCl", "Li3InCl6", "Li2O", "LiAlO2"],
        "chemsys": ["Li-P-S", "Li-P-S", "Li-P-S", "Cl-Li", "Cl-In-Li", "Li-O", "Al-Li-O"],
        "label": [1, 1, 1, 0, 1, 0, 0],
    }
)
POOL = pd.DataFrame(
    {
        C.REDUCED_FORMULA: ["Li3PS4", "LiCl", "Li2S", "LiAlO2", "Li4GeO4"],
        C.CHEMSYS: ["Li-P-S", "Cl-Li", "Li-S", "Al-Li-O", "Ge-Li-O"],
    }
)


def test_refit_drops_held_out_materials_and_their_whole_chemical_systems():
    labelled = labelled_pool(POOL, TRAIN)
    assert labelled[C.REDUCED_FORMULA].tolist() == ["Li3PS4", "LiAlO2", "LiCl"]
    assert labelled[LABEL].tolist() == [1, 0, 0]
    formulas, systems = set(labelled[C.REDUCED_FORMULA]), set(labelled[C.CHEMSYS])
    kept = TRAIN[refit_mask(TRAIN, formulas, systems)]
    # every Li-P-S material goes, doped or not; the unrelated systems stay
    assert kept["reduced_formula"].tolist() == ["Li3InCl6", "Li2O"]
    assert_no_leak(kept, formulas, systems)
    with pytest.raises(AssertionError, match="Li-P-S"):
        assert_no_leak(TRAIN, formulas, systems)


def test_metrics_against_random_and_deterministic_ranks():
    p = pd.Series({"Li3PS4": 0.9, "LiCl": 0.2, "Li2S": 0.5, "LiAlO2": 0.1, "Li4GeO4": 0.5})
    labelled = labelled_pool(POOL, TRAIN)
    ranks = rank_pool(p)
    # ties (Li2S, Li4GeO4 at 0.5) broken by formula
    assert ranks.to_dict() == {"Li3PS4": 1, "LiCl": 4, "Li2S": 2, "LiAlO2": 5, "Li4GeO4": 3}
    m = rediscovery_metrics(p, labelled, ks=[1, 2])
    assert m["roc_auc_labelled"] == 1.0 and m["roc_auc_pool"] == 1.0
    assert m["at_k"]["1"]["precision"] == 1.0 and m["at_k"]["1"]["random_precision"] == pytest.approx(0.2)
    assert m["at_k"]["2"]["recall"] == 1.0 and m["at_k"]["2"]["random_recall"] == pytest.approx(0.4)
    flipped = rediscovery_metrics(1 - p, labelled, ks=[1])
    assert flipped["roc_auc_labelled"] == 0.0 and flipped["at_k"]["1"]["hits"] == 0


def test_expected_calibration_error():
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(np.array([0.0, 0.0, 1.0, 1.0]), y) == 0.0
    assert expected_calibration_error(np.array([0.5, 0.5, 0.5, 0.5]), y) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1.0, 1.0, 0.0, 0.0]), y) == pytest.approx(1.0)


def test_best_polymorph_is_the_one_that_got_furthest():
    funnel = pd.DataFrame(
        {
            C.REDUCED_FORMULA: ["LiCl", "LiCl", "LiCl"],
            C.TASK_ID: ["mp-1", "mp-2", "mp-3"],
            C.FAILED_AT: ["e_hull", "v_ox", "band_gap"],
            C.E_HULL: [0.1, 0.0, 0.0],
        }
    )
    assert best_polymorph(funnel).loc["LiCl", C.TASK_ID] == "mp-2"
