"""No leakage: imputers and scalers are fitted on training rows only, on every code path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer

import superionic.classifier.zoo as zoo
from superionic.classifier.data import prepare, synthetic_frame
from superionic.classifier.ensemble import fit_ensemble
from superionic.classifier.protocol import (
    evaluate_grouped,
    evaluate_splits,
    fit_split,
    group_labels,
    grouped_splits,
    paper_splits,
)
from superionic.classifier.tune import make_objective

SPEC_TREE = {"_target_": "sklearn.tree.DecisionTreeClassifier", "seed_arg": "random_state", "fixed": {"max_depth": 3}, "search_space": {}, "scale": True}
SPEC_KNN = {"_target_": "sklearn.neighbors.KNeighborsClassifier", "seed_arg": None, "fixed": {}, "search_space": {
    "n_neighbors": {"type": "int", "low": 3, "high": 9}}, "scale": True}


@pytest.fixture
def data():
    frame, feats = synthetic_frame(n_rows=90, n_features=12, seed=3, nan_rate=0.2)
    return prepare(frame, feats)


@pytest.fixture
def fitted_rows(monkeypatch):
    """Replace the pipeline's imputer with one that records which rows it is fitted on."""
    seen: list[set[int]] = []

    class RecordingImputer(SimpleImputer):
        def fit(self, X, y=None):
            assert isinstance(X, pd.DataFrame), "the pipeline must receive the row-indexed frame"
            seen.append(set(X.index.tolist()))
            return super().fit(X, y)

    monkeypatch.setattr(zoo, "SimpleImputer", RecordingImputer)
    return seen


def _assert_train_only(seen, splits):
    assert seen, "no imputer was fitted"
    allowed = [set(tr.tolist()) for tr, _ in splits]
    forbidden = [set(te.tolist()) for _, te in splits]
    for rows in seen:
        matches = [i for i, a in enumerate(allowed) if rows == a]
        assert matches, "an imputer was fitted on rows that are not a split's training part"
        assert not rows & forbidden[matches[0]]


def test_paper_splits_fit_on_training_rows_only(data, fitted_rows):
    splits = paper_splits(data.y, 4, 0.2, seed0=0)
    evaluate_splits(SPEC_TREE, {}, data.X, data.y, splits, range(4))
    assert len(fitted_rows) == 4
    _assert_train_only(fitted_rows, splits)


def test_grouped_cv_fits_on_training_rows_only(data, fitted_rows):
    groups, mask = group_labels(data.frame, "chemsys")
    splits = grouped_splits(data.y, groups, 3, seed=0)
    evaluate_grouped(SPEC_TREE, {}, data.X, data.y, splits, seed=0)
    _assert_train_only(fitted_rows, splits)


def test_ensemble_calibration_does_not_refit_on_held_out_rows(data, fitted_rows):
    fit_ensemble({"tree": SPEC_TREE}, {"tree": {}}, data, n_splits=3, test_size=0.2, seed=0)
    # exactly one imputer fit per split (the calibrator must not refit the pipeline)
    assert len(fitted_rows) == 3
    _assert_train_only(fitted_rows, paper_splits(data.y, 3, 0.2, seed0=0))


def test_tuning_objective_fits_on_training_rows_only(data, fitted_rows):
    import optuna

    objective = make_objective(SPEC_KNN, data.X, data.y, repeats=3, test_size=0.2, seed0=100)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=2)
    _assert_train_only(fitted_rows, paper_splits(data.y, 3, 0.2, seed0=100))


def test_scaler_statistics_come_from_training_rows(data):
    train, test = paper_splits(data.y, 1, 0.25, seed0=7)[0]
    X = data.X.copy()
    # Make the validation rows wildly different: any leak would shift the statistics.
    X.iloc[test] = X.iloc[test] * 1000.0 + 500.0
    model = zoo.build_pipeline(SPEC_TREE, {}, seed=0)
    model.fit(X.iloc[train], data.y[train])
    medians = np.nanmedian(X.iloc[train].to_numpy(), axis=0)
    np.testing.assert_allclose(model.named_steps[zoo.IMPUTE_STEP].statistics_, medians)
    imputed = np.where(np.isnan(X.iloc[train].to_numpy()), medians, X.iloc[train].to_numpy())
    np.testing.assert_allclose(model.named_steps[zoo.SCALE_STEP].mean_, imputed.mean(axis=0))
    assert fit_split(SPEC_TREE, {}, X, data.y, (train, test), seed=0)["pred"].shape == (len(test),)
