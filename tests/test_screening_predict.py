"""Prediction stage with a tiny fake ensemble (the real one is the classifier's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from superionic.screening import columns as C
from superionic.screening.predict import (
    FAR,
    FEATURIZABLE,
    NEAR,
    PROBA_MEAN,
    applicability,
    candidate_table,
    predict_survivors,
    votes_histogram,
)

FEATURES = ["f1", "f2"]


class FakeEnsemble:
    """Split-model j of member m says superionic when f1 > threshold_m + j/100."""

    feature_columns = FEATURES
    member_names = ["gb", "lgbm"]
    n_splits = 10
    thresholds = {"gb": 0.0, "lgbm": 0.05}

    def vote(self, X: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=X.index)
        label = np.ones(len(X), dtype=bool)
        for m in self.member_names:
            cut = self.thresholds[m] + np.arange(self.n_splits) / 100
            votes = (X["f1"].to_numpy()[:, None] > cut[None, :]).sum(axis=1)
            out[f"votes_{m}"] = votes
            out[f"proba_{m}"] = votes / self.n_splits
            out[f"unanimous_{m}"] = votes == self.n_splits
            label &= votes == self.n_splits
        out["ensemble_label"] = label
        return out


def _train(seed=0, n=60):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 2)), columns=FEATURES)
    frame["reduced_formula"] = [f"Li{i + 1}Cl" for i in range(n)]
    frame["label"] = (frame["f1"] > 0).astype(int)
    return frame


def _survivors():
    return pd.DataFrame(
        {
            C.TASK_ID: ["mp-1", "mp-2", "mp-3", "mp-4", "mp-5"],
            C.FORMULA: ["Li1Cl", "LiBr", "LiI", "Li3N", "LiZ"],
            C.REDUCED_FORMULA: ["Li1Cl", "LiBr", "LiI", "Li3N", "LiZ"],
            C.BAND_GAP: [5.0, 4.0, 3.0, 1.1, 2.0],
            C.E_HULL: [0.0] * 5,
            C.V_OX: [4.0] * 5,
            C.N_MISSING_PHASES: [0, 0, 1, 0, 0],
            C.MISSING_PHASES: ["", "", "LiI3", "", ""],
        }
    )


def test_votes_unanimity_candidates_and_training_overlap():
    survivors = _survivors()
    # gb cuts 0.00..0.09, lgbm cuts 0.05..0.14: f1 = 0.12 gets 10 and 7 votes
    features = pd.DataFrame(
        {"f1": [1.0, 0.2, 0.12, -1.0, np.nan], "f2": [np.nan, 0.0, 30.0, 0.0, np.nan]}, index=survivors.index
    )
    out, metrics = predict_survivors(survivors, features, FakeEnsemble(), _train(), k=3, quantile=0.95)
    assert out["votes_gb"].tolist()[:4] == [10, 10, 10, 0]
    assert out["votes_lgbm"].tolist()[:4] == [10, 10, 7, 0]
    assert out[C.CANDIDATE].tolist() == [True, True, False, False, False]
    # a partly missing row is scored (the pipelines impute); an all-missing
    # row is unfeaturizable: reported, no votes, never a candidate
    assert not out[FEATURIZABLE].iloc[4] and pd.isna(out["votes_gb"].iloc[4])
    assert metrics["n_not_featurizable"] == 1 and metrics["n_candidates"] == 2
    assert metrics["n_unanimous_gb"] == 3 and metrics["n_unanimous_lgbm"] == 2
    # f2 = 30 sigma away from every training material: far
    assert out[C.AD_FLAG].tolist()[:4] == [NEAR, NEAR, FAR, NEAR]
    # "Li1Cl" is a training formula with label f1 > 0
    assert out[C.IN_TRAINING].tolist() == [True, False, False, False, False]
    assert metrics["n_candidates_in_training"] == 1
    table = candidate_table(out, FakeEnsemble.member_names)
    assert table[C.TASK_ID].tolist() == ["mp-1", "mp-2"]
    assert table[PROBA_MEAN].iloc[0] == pytest.approx(1.0)
    hist = votes_histogram(out, FakeEnsemble.member_names, FakeEnsemble.n_splits)
    assert hist["gb"].sum() == 4 and hist.loc[10, "gb"] == 3 and hist.loc[7, "lgbm"] == 1


def test_missing_feature_column_fails_with_name():
    survivors = _survivors()
    features = pd.DataFrame({"f1": np.zeros(5)}, index=survivors.index)
    with pytest.raises(ValueError, match="f2"):
        predict_survivors(survivors, features, FakeEnsemble(), _train(), k=3, quantile=0.95)


def test_applicability_threshold_and_bad_settings():
    train = _train()[FEATURES]
    dist, threshold = applicability(train, train.iloc[:5] * 0 + 100.0, k=3, quantile=0.9)
    assert (dist > threshold).all()
    with pytest.raises(ValueError, match="screen.ad_quantile"):
        applicability(train, train, k=3, quantile=1.5)
    with pytest.raises(ValueError, match="screen.ad_neighbors"):
        applicability(train, train, k=0, quantile=0.5)
