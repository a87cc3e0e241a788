"""Exact pairwise ranking accuracy and the all-pairs 2D descriptor search."""

from __future__ import annotations

import numpy as np
import pytest

from superionic.nasicon.mlr import best_f1_threshold, f1_at
from superionic.nasicon.ranking import pair_search, rankrls_inputs, ranking_accuracy, standardize


def brute_force_accuracy(score, y):
    num, den = 0.0, 0
    for a in range(len(y)):
        for b in range(len(y)):
            if y[a] < y[b]:
                den += 1
                num += 1.0 if score[a] < score[b] else 0.5 if score[a] == score[b] else 0.0
    return num / den


@pytest.mark.parametrize("n", [2, 7, 64, 129])
def test_accuracy_matches_brute_force_with_ties(n):
    rng = np.random.default_rng(n)
    y = rng.integers(0, 6, n).astype(float)
    s = rng.integers(0, 4, n).astype(float)
    if len(set(y)) == 1:
        y[0] += 1
    assert ranking_accuracy(s, y) == pytest.approx(brute_force_accuracy(s, y), abs=1e-12)


def test_accuracy_extremes():
    y = np.arange(10.0)
    assert ranking_accuracy(y, y) == 1.0
    assert ranking_accuracy(-y, y) == 0.0
    assert ranking_accuracy(np.zeros(10), y) == 0.5


def test_rankrls_direction_is_least_squares_on_ranks():
    # The pairwise least-squares ranking objective has the OLS-on-ranks solution.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 40))
    y = x[0] - 0.5 * x[1] + 0.3 * rng.standard_normal(40)
    z = standardize(x, 40)
    gram, rho = rankrls_inputs(z, y)
    w = np.linalg.solve(gram, rho)
    diff = (z[:, :, None] - z[:, None, :]).reshape(2, -1)
    sign = np.sign(y[:, None] - y[None, :]).ravel()
    w_pairs, *_ = np.linalg.lstsq(diff.T, sign, rcond=None)
    np.testing.assert_allclose(w / np.linalg.norm(w), w_pairs / np.linalg.norm(w_pairs), atol=1e-10)


def test_pair_search_finds_planted_2d_ranking():
    rng = np.random.default_rng(5)
    k, n, n_fit = 30, 500, 400
    x = rng.standard_normal((k, n))
    # Target ranked by a combination of features 7 and 19 (monotone transform).
    y = np.exp(2.0 * x[7] - 1.0 * x[19]) + 0.01 * rng.standard_normal(n)
    z = standardize(x, n_fit)
    res = pair_search(z, y, n_fit, slice(n_fit, n), n_jobs=2)
    best = int(np.argmax(res["accuracy"]))
    assert (res["first"][best], res["second"][best]) == (7, 19)
    assert res["accuracy"][best] > 0.95
    assert len(res["accuracy"]) == k * (k - 1) // 2
    # Every pair's accuracy equals a direct evaluation of its RankRLS score.
    for p in (0, 100, best):
        i, j = res["first"][p], res["second"][p]
        w = np.linalg.solve(res["gram"][np.ix_([i, j], [i, j])], res["rho"][[i, j]])
        s = w[0] * z[i, n_fit:] + w[1] * z[j, n_fit:]
        assert res["accuracy"][p] == pytest.approx(ranking_accuracy(s, y[n_fit:]), abs=1e-12)


def test_f1_threshold():
    score = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    stable = np.array([True, True, False, True, False, False])
    t, f1 = best_f1_threshold(score, stable)
    assert f1 == pytest.approx(f1_at(score, stable, t))
    assert f1 == pytest.approx(2 * 3 / (4 + 3))  # cut after the 4th: TP 3, FP 1, FN 0
    assert 0.4 <= t < 0.5
