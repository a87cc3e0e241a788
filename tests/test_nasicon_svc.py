"""Tolerance-factor SVC: boundary equation, CV metrics, experimental recall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from superionic.nasicon import data as nd
from superionic.nasicon.svc import Boundary, boundary_of, experimental_recall, fit_descriptor, make_model


def _toy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = np.stack([rng.uniform(0, 3, n), rng.uniform(0, 700, n)], axis=1)
    stable = 0.2 * x[:, 0] + x[:, 1] / 700 + 0.05 * rng.standard_normal(n) < 0.45
    return x, stable


@pytest.mark.parametrize("flip", [False, True])
def test_boundary_equation_reproduces_model_predictions(flip):
    x, stable = _toy()
    if flip:  # t2 pointing the other way gives the other relation
        x[:, 1] = -x[:, 1]
    model = make_model(1.0, 0).fit(x, stable)
    b = boundary_of(model)
    assert b.relation == (">" if flip else "<")
    rng = np.random.default_rng(9)
    grid = np.stack([rng.uniform(-1, 4, 5000), rng.uniform(-900, 900, 5000) * (-1 if flip else 1)], axis=1)
    np.testing.assert_array_equal(b.predict(grid[:, 0], grid[:, 1]), model.predict(grid))
    assert "t1 + t2" in b.text("a", "b")


def test_boundary_predict_relations():
    b = Boundary(alpha=0.5, beta=1.0, relation="<")
    np.testing.assert_array_equal(b.predict(np.array([0.0, 2.0]), np.array([0.5, 0.5])), [True, False])


def _frame(x, stable, n_test=60):
    n = len(stable)
    split = np.array(["train"] * (n - n_test) + ["test"] * n_test)
    exp_group = np.array([""] * n, dtype=object)
    exp_group[:6] = "reported"
    exp_group[6:8] = "new"
    return pd.DataFrame(
        {
            nd.COMP: [f"C{i}" for i in range(n)],
            nd.SPLIT: split,
            nd.STABLE: stable,
            nd.TARGET: np.where(stable, -10.0, 10.0),
            nd.EXP_GROUP: exp_group,
            nd.NA_FEATURE: np.tile([1.0, 3.0], n // 2),
            nd.NA_RICH: np.tile([False, True], n // 2),
        }
    )


def test_fit_descriptor_metrics_and_probabilities():
    x, stable = _toy()
    frame = _frame(x, stable)
    res = fit_descriptor(x, frame, folds=5, c=1.0, seed=0)
    assert res["equation_agrees_with_model"]
    assert 0.8 < res["cv"]["val_accuracy_mean"] <= 1.0
    assert 0.8 < res["cv"]["train_accuracy_mean"] <= 1.0
    p = res["p_stable"]
    assert ((p > 0) & (p < 1)).all()
    # Higher decision value (stable side) means higher P_stable.
    order = np.argsort(res["decision"])
    assert np.all(np.diff(p[order]) >= -1e-12)
    # Same seed, same numbers.
    again = fit_descriptor(x, frame, folds=5, c=1.0, seed=0)
    assert again["cv"] == res["cv"]


def test_experimental_recall_counts():
    x, stable = _toy()
    frame = _frame(x, stable)
    pred = np.zeros(len(frame), bool)
    pred[[0, 1, 6]] = True  # two reported (Na 1 and Na 3), one new (Na 1)
    table, recall = experimental_recall(frame, {"search": pred})
    assert recall["all"]["n"] == 8 and recall["all"]["search"] == 3
    assert recall["reported"]["search"] == 2 and recall["new"]["search"] == 1
    assert recall["na_poor"]["search"] == 2 and recall["na_rich"]["search"] == 1
    assert len(table) == 8


@pytest.mark.parametrize("d", [1, 3])
def test_linear_boundary_any_dimension_reproduces_model(d):
    from superionic.nasicon.svc import LinearBoundary, linear_boundary_of

    rng = np.random.default_rng(d)
    x = rng.uniform(0, 5, (400, d)) * np.array([1.0, 100.0, 0.01][:d])
    stable = x @ (np.array([1.0, -0.02, 80.0][:d])) + 0.3 * rng.standard_normal(400) < np.median(x[:, 0])
    model = make_model(1.0, 0).fit(x, stable)
    b = linear_boundary_of(model)
    assert isinstance(b, LinearBoundary) and len(b.coef) == d - 1
    grid = rng.uniform(-1, 6, (3000, d)) * np.array([1.0, 100.0, 0.01][:d])
    np.testing.assert_array_equal(b.predict(*grid.T), model.predict(grid))
    assert f"t{d} {b.relation}" in b.text(*[f"f{k}" for k in range(d)])
    frame = _frame(x, stable)
    res = fit_descriptor(x, frame, folds=3, c=1.0, seed=0)
    assert res["equation_agrees_with_model"]
