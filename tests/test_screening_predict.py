"""Ranking stage with a tiny fake ensemble (the real one is the classifier's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from superionic.screening import columns as C
from superionic.screening.predict import (
    FAR,
    FEATURIZABLE,
    KNOWN_GOOD,
    KNOWN_POOR,
    NEAR,
    NEIGHBORS,
    NEW,
    P,
    P_HIGH,
    P_LOW,
    P_STD,
    PAPER_CANDIDATE,
    RANK,
    STATUS,
    applicability,
    md_handoff,
    rank,
    ranking_sweep,
    score_formulas,
    standardize,
    votes_histogram,
)

FEATURES = ["f1", "f2"]
SCREEN = OmegaConf.create({"ad_neighbors": 3, "ad_quantile": 0.95, "n_neighbors_shown": 2, "interval": 0.8})


class FakeEnsemble:
    """Split-model j of member m says superionic when f1 > threshold_m + j/100;
    its calibrated probability is a logistic of the same margin."""

    feature_columns = FEATURES
    member_names = ["gb", "lgbm"]
    n_splits = 10
    thresholds = {"gb": 0.0, "lgbm": 0.05}

    def assess(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        out = pd.DataFrame(index=X.index)
        label = np.ones(len(X), dtype=bool)
        probas = []
        for m in self.member_names:
            cut = self.thresholds[m] + np.arange(self.n_splits) / 100
            margin = X["f1"].to_numpy()[None, :] - cut[:, None]
            p = 1 / (1 + np.exp(-10 * margin))
            votes = (margin > 0).sum(axis=0)
            out[f"votes_{m}"] = votes
            out[f"proba_{m}"] = p.mean(axis=0)
            out[f"unanimous_{m}"] = votes == self.n_splits
            label &= votes == self.n_splits
            probas.append(p)
        out["ensemble_label"] = label
        return out, np.vstack(probas)


def _train(seed=0, n=60):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 2)), columns=FEATURES)
    frame["reduced_formula"] = [f"Li{i + 1}Cl" for i in range(n)]
    frame["label"] = (frame["f1"] > 0).astype(int)
    frame["sigma"] = np.where(frame["label"] == 1, 1e-3, 1e-8)
    frame["family"] = ["halide" if i % 2 else None for i in range(n)]
    frame["chemsys"] = "Cl-Li"
    return frame


def _scored():
    formulas = pd.Series(["Li1Cl", "LiBr", "LiI", "Li3N", "LiZ"])
    # gb cuts 0.00..0.09, lgbm cuts 0.05..0.14: f1 = 0.12 gets 10 and 7 votes
    features = pd.DataFrame({"f1": [1.0, 0.2, 0.12, -1.0, np.nan], "f2": [np.nan, 0.0, 30.0, 0.0, np.nan]})
    return score_formulas(formulas, features, FakeEnsemble(), _train(), SCREEN)


def test_probability_spread_votes_domain_and_status():
    out, threshold = _scored()
    assert out["votes_gb"].tolist()[:4] == [10, 10, 10, 0]
    assert out["votes_lgbm"].tolist()[:4] == [10, 10, 7, 0]
    assert out[PAPER_CANDIDATE].tolist() == [True, True, False, False, False]
    # P is the mean over all 20 split-models; the interval brackets it
    assert out[P].iloc[0] > 0.99 and out[P].iloc[3] < 0.01
    ok = out[FEATURIZABLE]
    assert (out.loc[ok, P_LOW] <= out.loc[ok, P] + 1e-12).all() and (out.loc[ok, P] <= out.loc[ok, P_HIGH] + 1e-12).all()
    assert out[P_STD].iloc[2] > out[P_STD].iloc[0]  # close to the cuts: split-models disagree
    # an all-missing row is unfeaturizable: no probability, no flag
    assert not out[FEATURIZABLE].iloc[4] and np.isnan(out[P].iloc[4]) and out[C.AD_FLAG].iloc[4] == ""
    # f2 = 30 sigma away from every training material: far
    assert out[C.AD_FLAG].tolist()[:4] == [NEAR, NEAR, FAR, NEAR]
    assert threshold > 0
    # "Li1Cl" is a training formula with f1 > 0 in the seeded table
    label = int(_train()["label"].iloc[0])
    assert out[STATUS].iloc[0] == (KNOWN_GOOD if label else KNOWN_POOR)
    assert out[STATUS].tolist()[1:] == [NEW] * 4
    # neighbours: two per row, formula (family, sigma)
    assert out[NEIGHBORS].iloc[0].count(";") == 1 and "S" not in out[NEIGHBORS].iloc[4]
    assert "(?," in out[NEIGHBORS].iloc[1] or "(halide," in out[NEIGHBORS].iloc[1]


def test_ranking_is_deterministic_and_orders_by_p_then_spread():
    scores, _ = _scored()
    rows = pd.DataFrame({
        C.TASK_ID: ["mp-9", "mp-3", "mp-1", "mp-2", "mp-5"],
        C.REDUCED_FORMULA: ["LiBr", "LiI", "Li1Cl", "LiBr", "LiZ"],
        C.CHEMSYS: ["Br-Li", "I-Li", "Cl-Li", "Br-Li", "Li-Z"],
        C.V_OX: [4.0] * 5,
        C.V_OX_SOURCE: ["wang2024"] * 5,
    })
    rows[C.FORMULA] = rows[C.REDUCED_FORMULA]
    first = rank(rows, scores, _train())
    again = rank(rows.sample(frac=1.0, random_state=3), scores, _train())
    pd.testing.assert_frame_equal(first, again)
    assert first[RANK].tolist() == [1, 2, 3, 4, 5]
    assert first[C.TASK_ID].tolist()[0] == "mp-1"
    # two polymorphs of LiBr share P and spread: the material id breaks the tie
    assert first[C.TASK_ID].tolist()[1:3] == ["mp-2", "mp-9"]
    assert first[C.TASK_ID].tolist()[-1] == "mp-5"  # unscored last
    assert first["chemsys_in_training"].tolist()[0]
    handoff = md_handoff(first, top=2)
    assert handoff[C.TASK_ID].tolist() == ["mp-2", "mp-9"]  # mp-1 is in the training data


def test_sweep_counts_survivors_per_tolerance():
    scores, _ = _scored()
    funnel = pd.DataFrame({
        C.TASK_ID: ["a", "b", "c"], C.REDUCED_FORMULA: ["LiBr", "LiI", "LiZ"],
        C.PASS_NO_TM: [True] * 3, C.PASS_BAND_GAP: [True] * 3, C.E_HULL: [0.0, 0.02, 0.04],
        C.V_OX_STATUS: ["pass", "pass", "unknown"],
    })
    sweep = ranking_sweep(funnel, scores, [0.05, 0.0, 0.025], p_min=0.5).set_index("ehull_max")
    assert sweep["survivors"].tolist() == [1, 2, 2]
    assert sweep["unknown_window"].tolist() == [0, 0, 1]
    assert sweep["p>=0.5_in_domain"].tolist() == [1, 1, 1]  # LiI is far from the training data


def test_missing_feature_column_fails_with_name():
    features = pd.DataFrame({"f1": np.zeros(3)})
    with pytest.raises(ValueError, match="f2"):
        score_formulas(pd.Series(["a", "b", "c"]), features, FakeEnsemble(), _train(), SCREEN)


def test_applicability_threshold_and_bad_settings():
    train = _train()[FEATURES]
    tz, qz = standardize(train, train.iloc[:5] * 0 + 100.0)
    dist, threshold = applicability(tz, qz, k=3, quantile=0.9)
    assert (dist > threshold).all()
    with pytest.raises(ValueError, match="screen.ad_quantile"):
        applicability(tz, tz, k=3, quantile=1.5)
    with pytest.raises(ValueError, match="screen.ad_neighbors"):
        applicability(tz, tz, k=0, quantile=0.5)


def test_votes_histogram_counts_every_scored_row():
    scores, _ = _scored()
    hist = votes_histogram(scores, FakeEnsemble.member_names, FakeEnsemble.n_splits)
    assert hist["gb"].sum() == 4 and hist.loc[10, "gb"] == 3 and hist.loc[7, "lgbm"] == 1


def test_pool_scoring_on_a_real_two_worker_cluster_matches_in_process():
    """screen.workers > 1: the ensemble scores chunks on a real two-process Dask LocalCluster."""
    import sys

    import cloudpickle

    from superionic.screening.predict import assess_on_cluster

    # the fake ensemble lives in this test module, which the worker processes cannot import
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(23, 2)), columns=FEATURES)
    cluster = OmegaConf.create({"kind": "local", "n_workers": 2, "address": None})
    local_votes, local_p = FakeEnsemble().assess(X)
    votes, p = assess_on_cluster(FakeEnsemble(), X, cluster, n_workers=2, chunk_size=5)
    pd.testing.assert_frame_equal(votes, local_votes)
    np.testing.assert_array_equal(p, local_p)
    formulas = pd.Series([f"Li{i + 1}Br" for i in range(23)])
    spread, _ = score_formulas(formulas, X, FakeEnsemble(), _train(), SCREEN,
                               assess=lambda Z: assess_on_cluster(FakeEnsemble(), Z, cluster, 2, 7))
    in_process, _ = score_formulas(formulas, X, FakeEnsemble(), _train(), SCREEN)
    pd.testing.assert_frame_equal(spread, in_process)
