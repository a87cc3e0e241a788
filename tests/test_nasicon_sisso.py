"""SISSO residual rounds, the exact 3D search and honest (validation-only) selection."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from superionic.config import compose
from superionic.nasicon import data as nd
from superionic.nasicon import sisso
from superionic.nasicon.ranking import rankrls_inputs, ranking_accuracy, standardize, triple_search
from superionic.nasicon.space import SpaceParams


def _space(**kw) -> SpaceParams:
    base = dict(complexity=0, unary_ops=[], binary_ops=[], max_abs_value=1e5, min_rel_std=1e-9,
                chunk_size=64, max_materialized_mib=64, sis_size=2)
    base.update(kw)
    return SpaceParams(**base)


def _brute_force_3d(z, y, n_fit):
    """Every triple by np.linalg.solve + the reference accuracy; (accuracy, triple), first best wins."""
    gram, rho = rankrls_inputs(z[:, :n_fit], y[:n_fit])
    best = (-1.0, None)
    per_pair = {}
    for c in itertools.combinations(range(z.shape[0]), 3):
        g = gram[np.ix_(c, c)]
        if np.linalg.det(g) <= 1e-10:
            continue
        w = np.linalg.solve(g, rho[list(c)])
        acc = ranking_accuracy(w @ z[list(c), n_fit:], y[n_fit:])
        if acc > best[0] + 1e-12:
            best = (acc, c)
        if acc > per_pair.get(c[:2], (-1.0,))[0] + 1e-12:
            per_pair[c[:2]] = (acc, c[2])
    return best, per_pair


def test_3d_search_equals_brute_force_on_small_space():
    rng = np.random.default_rng(11)
    k, n, n_fit = 9, 160, 100
    x = rng.standard_normal((k, n))
    x[8] = 0.7 * x[0] - 0.2 * x[1]  # (0, 1, 8) is singular: skipped in both
    y = np.exp(x[2] - 0.8 * x[4] + 0.6 * x[6]) + 0.5 * rng.standard_normal(n)
    z = standardize(x, n_fit)
    (acc_bf, triple_bf), per_pair = _brute_force_3d(z, y, n_fit)
    idx, acc, searched = sisso.l0_search(z, y, n_fit, 3, ridge=0.0, n_jobs=2)
    assert idx == triple_bf and acc == pytest.approx(acc_bf, abs=1e-12)
    assert searched == 84 - 1
    res = triple_search(z, y, n_fit, slice(n_fit, n), n_jobs=2)
    assert res["n_triples"] == 84 and res["n_degenerate"] == 1
    for p, (i, j) in enumerate(zip(res["first"], res["second"], strict=True)):
        a_bf, k_bf = per_pair[(i, j)]
        assert (res["third"][p], res["accuracy"][p]) == (k_bf, pytest.approx(a_bf, abs=1e-12))
    # One and two threads agree exactly.
    one = triple_search(z, y, n_fit, slice(n_fit, n), n_jobs=1)
    np.testing.assert_array_equal(one["accuracy"], res["accuracy"])
    np.testing.assert_array_equal(one["third"], res["third"])


def _planted(n=600, seed=3):
    """y = a; u = a + b has the strongest marginal r; v = b has none (r ~ 0) but u - v = y.

    Eight distractors a + noise outrank v marginally, so one SIS pool of
    size <= 9 misses v; the residual of the best 1D model (u) is ~ a - b,
    with which v correlates most.
    """
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    b -= np.polyval(np.polyfit(a, b, 1), a)  # exactly uncorrelated on the sample
    prim = [a + b, b] + [a + s * rng.standard_normal(n) for s in np.linspace(1.05, 3.0, 8)]
    prim = np.stack(prim) + 10.0  # positive values, like the real primaries
    names = ["u", "v"] + [f"d{i}" for i in range(8)]
    return prim, names, a + 0.01 * rng.standard_normal(n)


def test_residual_round_finds_a_feature_that_helps_only_in_combination():
    prim, names, y = _planted()
    n_fit, n_sel = 400, 500  # columns 500..599 play the test rows: their y is never passed
    kw = dict(pool_size=3, max_dimension=2, seed=0, n_jobs=2)
    sel = sisso.select(prim, names, y[:n_sel], n_fit, _space(), **kw)
    by = {(f.variant, f.dimension): f for f in sel.found}
    assert by[("residual", 2)].expressions == ["u", "v"]
    assert by[("residual", 2)].val_accuracy > 0.99
    assert sel.rounds[1]["pool"] == 3 and "v" in sel.expressions["residual"][3:]
    # Without residual rounds: one pool of 2 * 3 features, v is not in it.
    assert "v" not in sel.expressions["single_pool"]
    assert len(sel.expressions["single_pool"]) == 6
    assert by[("single_pool", 2)].val_accuracy < 0.95
    alone = sisso.select(prim, names, y[:n_sel], n_fit, _space(), residual_rounds=False, **kw)
    assert all(f.variant == "single_pool" for f in alone.found)
    assert "v" not in {e for f in alone.found for e in f.expressions}


def test_rank_residual_is_orthogonal_to_the_model():
    rng = np.random.default_rng(0)
    z = standardize(rng.standard_normal((2, 80)), 80)
    y = z[0] + rng.standard_normal(80)
    r = sisso.rank_residual(z, y, ridge=0.0)
    np.testing.assert_allclose(z @ r, 0.0, atol=1e-9)


def test_settings_errors_name_the_key():
    prim, names, y = _planted(n=50)
    with pytest.raises(ValueError, match="descriptor.max_dimension"):
        sisso.select(prim, names, y[:40], 30, _space(), pool_size=3, max_dimension=4)
    with pytest.raises(ValueError, match="descriptor.residual_pool_size"):
        sisso.select(prim, names, y[:40], 30, _space(), pool_size=1, max_dimension=2)


def _table(seed=0, n=(120, 40, 40)):
    """A tiny tidy NASICON table (fit, validation, test rows) with the paper's primaries."""
    rng = np.random.default_rng(seed)
    m = sum(n)
    cols = {c: rng.uniform(0.5, 2.0, m) for c in
            ("NNaLst", "AnionChgStdLst", "EWaldSumLst", "XWithNaLst", "RDiffStdLst", "EFormLst")}
    frame = pd.DataFrame({nd.COMP: [f"C{i:03d}" for i in range(m)], **cols})
    y = cols["NNaLst"] * cols["EFormLst"] - cols["RDiffStdLst"] + 0.1 * rng.standard_normal(m)
    frame[nd.TARGET] = y
    t1, t2 = nd.paper_descriptor(frame)
    frame[nd.PAPER_T1], frame[nd.PAPER_T2] = t1, t2
    frame[nd.SPLIT] = ["train"] * (n[0] + n[1]) + ["test"] * n[2]
    frame[nd.ROLE] = ["fit"] * n[0] + ["validation"] * n[1] + ["test"] * n[2]
    frame[nd.STABLE] = y <= np.quantile(y, 0.2)
    frame[nd.FAMILY], frame[nd.NA_RICH], frame[nd.EXP_GROUP] = "P", False, ""
    return frame


def _cfg():
    cfg = compose()
    for key, value in {"descriptor.complexity": 1, "descriptor.unary_ops": ["sq", "inv"],
                       "descriptor.binary_ops": ["mul", "sub"], "descriptor.residual_pool_size": 4,
                       "descriptor.max_dimension": 3, "descriptor.n_jobs": 1}.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def test_selection_does_not_read_the_test_targets():
    data = _table()
    cfg = _cfg()
    sel = sisso.run_select(data, cfg)
    # Test targets replaced by NaN (any read would propagate) or by a permutation.
    blind = data.copy()
    test = (blind[nd.ROLE] == "test").to_numpy()
    blind.loc[test, nd.TARGET] = np.nan
    shuffled = data.copy()
    shuffled.loc[test, nd.TARGET] = np.random.default_rng(1).permutation(data.loc[test, nd.TARGET].to_numpy())
    for other in (blind, shuffled):
        again = sisso.run_select(other, cfg)
        assert [(f.variant, f.dimension, f.index, f.expressions, f.val_accuracy) for f in again.found] == [
            (f.variant, f.dimension, f.index, f.expressions, f.val_accuracy) for f in sel.found]
    # The final table reads them once; the chosen descriptor is the best on validation.
    table, chosen = sisso.final_table(sel, data, ridge=0.0)
    assert table["chosen"].sum() == 1
    searched = table[table["variant"] != "paper"]
    assert table.loc[table["chosen"], "val_ranking_accuracy"].iloc[0] == searched["val_ranking_accuracy"].max()
    assert set(table["variant"]) == {"residual", "single_pool", "paper"}
    assert table["test_ranking_accuracy"].between(0, 1).all()
    values = sisso.chosen_values(sel, chosen, data)
    assert list(values.columns) == [nd.COMP] + [f"t{k}" for k in range(1, chosen.dimension + 1)]


def test_selection_rejects_a_table_out_of_role_order():
    data = _table().iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValueError, match="fit rows, then the validation rows"):
        sisso.run_select(data, _cfg())
