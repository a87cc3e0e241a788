"""Operators, feature-space construction and SIS on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from superionic.nasicon.operators import BINARY, UNARY, check_names
from superionic.nasicon.space import SpaceParams, build_and_screen, count_candidates

X = np.array([[1.0, 4.0, 0.5, 8.0]])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sq", [1.0, 16.0, 0.25, 64.0]),
        ("cb", [1.0, 64.0, 0.125, 512.0]),
        ("sixth", [1.0, 4096.0, 0.015625, 262144.0]),
        ("inv", [1.0, 0.25, 2.0, 0.125]),
        ("sqrt", [1.0, 2.0, 0.7071067811865476, 2.8284271247461903]),
        ("cbrt", [1.0, 1.5874010519681994, 0.7937005259840998, 2.0]),
        ("exp", [2.718281828459045, 54.598150033144236, 1.6487212707001282, 2980.9579870417283]),
        ("nexp", [0.36787944117144233, 0.01831563888873418, 0.6065306597126334, 0.00033546262790251185]),
        ("log", [0.0, 1.3862943611198906, -0.6931471805599453, 2.0794415416798357]),
        ("abs", [1.0, 4.0, 0.5, 8.0]),
    ],
)
def test_unary_values(name, expected):
    np.testing.assert_allclose(UNARY[name].func(X)[0], expected, rtol=1e-12)


def test_unary_formats_and_negative_inputs():
    neg = np.array([[-8.0, 27.0]])
    np.testing.assert_allclose(UNARY["cbrt"].func(neg)[0], [-2.0, 3.0])
    np.testing.assert_allclose(UNARY["abs"].func(neg)[0], [8.0, 27.0])
    assert UNARY["sq"].fmt("a") == "(a)^2"
    assert UNARY["nexp"].fmt("a") == "exp(-a)"
    assert not UNARY["log"].domain(neg)[0]
    assert not UNARY["sqrt"].domain(neg)[0]
    assert UNARY["log"].domain(X)[0]


def test_binary_values_and_domains():
    a = np.array([[3.0, -1.0, 2.0]])
    b = np.array([[1.0, 2.0, 0.0]])
    np.testing.assert_allclose(BINARY["add"].func(a, b)[0], [4.0, 1.0, 2.0])
    np.testing.assert_allclose(BINARY["sub"].func(a, b)[0], [2.0, -3.0, 2.0])
    np.testing.assert_allclose(BINARY["mul"].func(a, b)[0], [3.0, -2.0, 0.0])
    np.testing.assert_allclose(BINARY["absdiff"].func(a, b)[0], [2.0, 3.0, 2.0])
    assert not BINARY["div"].domain(a, b)[0]
    assert BINARY["div"].domain(b, a)[0]
    np.testing.assert_allclose(BINARY["div"].func(b, a)[0], [1 / 3, -2.0, 0.0])
    assert BINARY["absdiff"].fmt("a", "b") == "abs(a-b)"


def test_unknown_operator_names_the_key():
    with pytest.raises(ValueError, match="descriptor.unary_ops"):
        check_names(["sq", "tanh"], ["add"])
    with pytest.raises(ValueError, match="descriptor.binary_ops"):
        check_names(["sq"], ["pow"])


def _params(**kw) -> SpaceParams:
    base = dict(
        complexity=2, unary_ops=["sq", "inv", "sqrt", "log", "exp"], binary_ops=["add", "sub", "mul", "div"],
        max_abs_value=1e5, min_rel_std=1e-9, chunk_size=37, max_materialized_mib=64, sis_size=10,
    )
    base.update(kw)
    return SpaceParams(**base)


def test_sis_finds_planted_feature():
    rng = np.random.default_rng(1)
    n = 400
    prim = rng.uniform(0.5, 2.0, size=(5, n))
    # Planted: y = a0^2 / a3 (+ noise), a rung-2 feature.
    y = prim[0] ** 2 / prim[3] + 0.01 * rng.standard_normal(n)
    res = build_and_screen(prim, [f"a{i}" for i in range(5)], y[:300], _params(), seed=0)
    # Equivalent spellings (a0*(a0/a3), (a0)^2/a3) are one feature: the first generated is kept.
    assert res.expressions[0] in {"(a0*(a0/a3))", "((a0)^2/a3)"}
    np.testing.assert_allclose(res.values[0], prim[0] ** 2 / prim[3], rtol=1e-12)
    assert "((a0)^2/a3)" not in res.expressions[1:]
    assert abs(res.r[0]) > 0.99
    assert res.rung[0] == 2 and res.n_ops[0] == 2
    assert len(res.expressions) == 10
    # Sorted by |r|, and no duplicates among the selected.
    assert np.all(np.diff(np.abs(res.r)) <= 1e-12)
    assert len(set(res.expressions)) == 10


def test_invalid_expressions_are_skipped_and_counted():
    rng = np.random.default_rng(2)
    n = 50
    prim = np.stack([rng.uniform(-1, 1, n), rng.uniform(1, 2, n), rng.integers(0, 2, n).astype(float)])
    y = rng.standard_normal(n)
    p = _params(complexity=1, sis_size=5, unary_ops=["log", "sqrt", "inv", "sq"], binary_ops=["div"])
    res = build_and_screen(prim, ["neg", "pos", "zero"], y, p, seed=0)
    c = res.counts["1"]
    # log(neg), sqrt(neg), log(zero) -> domain; inv(zero) -> domain;
    # divisions by neg? no (no zero in neg); divisions by zero -> 2 (neg/zero, pos/zero).
    assert c["domain"] == 2 + 1 + 1 + 2
    assert c["candidates"] == count_candidates(3, 0, p)
    assert c["valid"] + c["domain"] + c["non_finite"] + c["out_of_range"] + c["constant"] + c["duplicate"] == c["candidates"]
    # sqrt(zero) duplicates zero itself (0/1 values): an affine copy.
    assert c["duplicate"] >= 1
    assert all("log(neg)" not in e and "/zero" not in e for e in res.expressions)


def test_overflow_and_range_are_counted():
    n = 20
    prim = np.stack([np.linspace(1, 800, n), np.linspace(1, 2, n)])
    y = np.linspace(0, 1, n)
    p = _params(complexity=1, sis_size=3, unary_ops=["exp", "sq"], binary_ops=["mul"])
    res = build_and_screen(prim, ["big", "small"], y, p, seed=0)
    c = res.counts["1"]
    assert c["non_finite"] == 1  # exp(800) overflows
    assert c["out_of_range"] == 1  # big^2 reaches 640000 > 1e5; big*small only 1600


def test_probe_membership_and_complexity_guard():
    rng = np.random.default_rng(3)
    prim = rng.uniform(1, 2, size=(3, 60))
    y = rng.standard_normal(60)
    probe = np.cbrt(prim[0]) + prim[1] ** 2
    p = _params(unary_ops=["cbrt", "sq"], binary_ops=["add"], sis_size=5)
    res = build_and_screen(prim, ["a", "b", "c"], y, p, probes={"t": probe, "u": np.sin(prim[2]) * 3})
    assert res.probes["t"]["in_space"] is True
    assert res.probes["u"]["in_space"] is False
    with pytest.raises(ValueError, match="descriptor.max_materialized_mib"):
        build_and_screen(prim, ["a", "b", "c"], y, _params(complexity=3, max_materialized_mib=0))


def test_compiled_screen_matches_numpy_evaluation():
    from superionic.nasicon.space import SRC_BINARY, SRC_UNARY, Scorer, evaluate

    rng = np.random.default_rng(4)
    layer = np.stack([rng.uniform(-2, 2, 80), rng.uniform(0.1, 3, 80), rng.integers(0, 3, 80).astype(float)])
    y = rng.standard_normal(60)
    scorer = Scorer(y, 80, _params(), seed=0)
    for kind, names in ((SRC_UNARY, list(UNARY)), (SRC_BINARY, list(BINARY))):
        for code, name in enumerate(names):
            if kind == SRC_UNARY:
                a, b = np.array([0, 1, 2]), None
            else:
                a, b = np.array([0, 1, 2, 1, 0, 2]), np.array([1, 0, 0, 2, 2, 1])
            v, dom = evaluate(kind, name, layer, a, b)
            st_np, r_np, fp_np = scorer.assess(v, dom)
            st_k, r_k, fp_k = scorer.screen(layer, kind, code, a, b)
            np.testing.assert_array_equal(st_k, st_np, err_msg=name)
            np.testing.assert_allclose(r_k, r_np, atol=1e-12, err_msg=name)
            np.testing.assert_array_equal(fp_k, fp_np, err_msg=name)


def test_duplicate_primary_is_named():
    rng = np.random.default_rng(6)
    a = rng.uniform(1, 2, 30)
    prim = np.stack([a, rng.uniform(1, 2, 30), 3.0 - 2.0 * a])
    res = build_and_screen(prim, ["a", "b", "c"], rng.standard_normal(30), _params(complexity=0, sis_size=2))
    assert res.primary_duplicates == {"c": "a"}
    assert res.counts["0"]["duplicate"] == 1


def test_streamed_basis_holding_the_whole_rung_reproduces_the_full_space():
    rng = np.random.default_rng(7)
    prim = rng.uniform(0.5, 2.0, size=(4, 120))
    y = prim[0] * prim[1] / (prim[2] + prim[3]) + 0.05 * rng.standard_normal(120)
    full = build_and_screen(prim, [f"a{i}" for i in range(4)], y[:90], _params(sis_size=25), seed=0)
    streamed = build_and_screen(prim, [f"a{i}" for i in range(4)], y[:90],
                                _params(sis_size=25, last_rung_basis=10**6), seed=0)
    assert streamed.expressions == full.expressions
    np.testing.assert_array_equal(streamed.values, full.values)
    np.testing.assert_array_equal(streamed.rung, full.rung)
    assert streamed.counts == full.counts


def test_rung3_on_a_screened_basis_finds_a_planted_rung3_feature():
    rng = np.random.default_rng(8)
    prim = rng.uniform(0.5, 2.0, size=(5, 300))
    planted = (prim[0] * prim[1] + prim[2] / prim[3]) + prim[4] ** 2  # rung 3
    y = planted + 0.01 * rng.standard_normal(300)
    p = _params(complexity=3, last_rung_basis=40, sis_size=5, max_materialized_mib=1,
                unary_ops=["sq", "inv"], binary_ops=["add", "mul", "div"])
    res = build_and_screen(prim, [f"a{i}" for i in range(5)], y[:200], p, seed=0)
    assert res.rung[0] == 3 and abs(res.r[0]) > 0.999
    np.testing.assert_allclose(np.corrcoef(res.values[0], planted)[0, 1] ** 2, 1.0, atol=1e-9)
    c = res.counts
    assert set(c) == {"0", "1", "2", "3"}
    # Rung 3 combines the 40 kept rung-2 features with the 5 + rung-1 lower ones only.
    n_low = c["0"]["valid"] + c["1"]["valid"]
    assert c["3"]["candidates"] == count_candidates(n_low + 40, n_low, p)
    # Without a basis the same space does not fit the memory bound.
    with pytest.raises(ValueError, match="descriptor.last_rung_basis"):
        build_and_screen(prim, [f"a{i}" for i in range(5)], y[:200], _params(complexity=3, max_materialized_mib=1))


def test_fingerprint_set_matches_a_python_set():
    from superionic.nasicon.space import FingerprintSet

    rng = np.random.default_rng(9)
    store, ref = FingerprintSet(), set()
    for size in rng.integers(0, 300, 60):
        block = rng.integers(-500, 500, size).astype(np.int64)
        expected = []
        for f in block.tolist():
            expected.append(f not in ref)
            ref.add(f)
        np.testing.assert_array_equal(store.add_new(block), expected)
    assert len(store) == len(ref)
    probe = np.arange(-600, 600, dtype=np.int64)
    np.testing.assert_array_equal(store.contains(probe), [int(p) in ref for p in probe])
    # Runs stay sorted and few.
    assert all(np.all(np.diff(r) > 0) for r in store.runs) and len(store.runs) <= 12
