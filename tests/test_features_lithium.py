import math
import warnings

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Element

from superionic.features.lithium import (
    ANION_POLARIZABILITY,
    LITHIUM_FEATURES,
    lithium_features,
)

ANION_CHARGE = {"O": 2, "S": 2, "Se": 2, "Te": 2, "F": 1, "Cl": 1, "Br": 1, "I": 1, "N": 3, "H": 1}


def _features(*formulas: str) -> pd.DataFrame:
    return lithium_features([Composition(f) for f in formulas])


def test_labels_are_unique_and_prefixed():
    assert len(set(LITHIUM_FEATURES)) == len(LITHIUM_FEATURES) == 26
    assert all(label.startswith("li ") for label in LITHIUM_FEATURES)


def test_li3ps4():
    row = _features("Li3PS4").iloc[0]
    expected = {
        "li fraction": 3 / 8, "li per anion": 0.75, "li per framework cation": 3.0, "li S fraction": 0.5,
        "li O fraction": 0.0, "li anion species": 1, "li mixed anion": 0, "li anion polarizability": 10.2,
        "li anion electronegativity": 2.58, "li anion radius": 1.70, "li framework electronegativity": 2.19,
        "li framework electronegativity std": 0.0, "li framework valence": 5.0,
        "li framework mass": 30.973762, "li excess": 0.0, "li anion to cation ratio": 1.0,
        "li anion fraction": 0.5, "li anion radius ratio": 1.70 / 0.90,
    }
    for label, value in expected.items():
        assert row[label] == pytest.approx(value, abs=1e-12), label


def test_li7la3zr2o12():
    row = _features("Li7La3Zr2O12").iloc[0]
    x_mean = (3 * 1.10 + 2 * 1.33) / 5
    assert row["li fraction"] == pytest.approx(7 / 24)
    assert row["li per anion"] == pytest.approx(7 / 12)
    assert row["li per framework cation"] == pytest.approx(7 / 5)
    assert row["li O fraction"] == pytest.approx(0.5)
    assert row["li anion polarizability"] == pytest.approx(3.88)
    assert row["li framework electronegativity"] == pytest.approx(x_mean)
    std = math.sqrt((3 * (1.10 - x_mean) ** 2 + 2 * (1.33 - x_mean) ** 2) / 5)
    assert row["li framework electronegativity std"] == pytest.approx(std)
    assert row["li framework valence"] == pytest.approx((3 * 3 + 2 * 4) / 5)
    assert row["li framework mass"] == pytest.approx((3 * 138.90547 + 2 * 91.224) / 5)
    assert row["li excess"] == pytest.approx(0.0, abs=1e-12)


def test_li6ps5cl_is_mixed_anion():
    row = _features("Li6PS5Cl").iloc[0]
    assert row["li anion species"] == 2 and row["li mixed anion"] == 1
    assert row["li S fraction"] == pytest.approx(5 / 13) and row["li Cl fraction"] == pytest.approx(1 / 13)
    assert row["li per anion"] == pytest.approx(1.0)
    assert row["li anion polarizability"] == pytest.approx((5 * 10.2 + 3.66) / 6)
    assert row["li anion radius"] == pytest.approx((5 * 1.70 + 1.67) / 6)
    assert row["li excess"] == pytest.approx(0.0, abs=1e-12)


def test_licl_has_no_framework():
    row = _features("LiCl").iloc[0]
    assert row["li fraction"] == 0.5 and row["li Cl fraction"] == 0.5 and row["li per anion"] == 1.0
    assert row[["li per framework cation", "li framework electronegativity", "li framework mass"]].isna().all()
    assert row["li excess"] == 0.0


def test_hydrogen_is_an_anion_only_without_oxygen_or_nitrogen():
    rows = _features("LiBH4", "LiOH")
    assert rows.loc[0, "li H fraction"] == pytest.approx(4 / 6)
    assert rows.loc[1, "li H fraction"] == 0.0 and rows.loc[1, "li excess"] == pytest.approx(0.0)


def test_scaling_the_formula_changes_nothing():
    rows = _features("Li2O", "Li4O2")
    np.testing.assert_array_equal(rows.iloc[0].to_numpy(), rows.iloc[1].to_numpy())


def test_row_order_and_index_follow_input():
    formulas = ["LiCl", "Li3PS4", "Li2O", "LiCl"]
    rows = _features(*formulas)
    assert list(rows.index) == [0, 1, 2, 3] and list(rows.columns) == list(LITHIUM_FEATURES)
    assert list(rows["li per anion"]) == pytest.approx([1.0, 0.75, 2.0, 1.0])
    assert (rows.dtypes == float).all()


def test_no_anions_gives_nan_not_inf_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = _features("LiAl", "Li")
    values = rows.to_numpy()
    assert not np.isinf(values).any()
    assert rows[["li per anion", "li anion polarizability", "li anion radius ratio"]].isna().all().all()
    assert (rows["li anion species"] == 0).all() and (rows["li anion fraction"] == 0).all()


def test_empty_input_gives_empty_frame_with_columns():
    rows = lithium_features([])
    assert rows.empty and list(rows.columns) == list(LITHIUM_FEATURES)


def test_doped_nasicon_is_finite_and_balanced():
    row = _features("Li1.3Al0.3Ti1.7(PO4)3").iloc[0]
    assert np.isfinite(row.to_numpy()).all()
    assert row["li excess"] == pytest.approx(0.0, abs=1e-12)
    assert row["li framework valence"] == pytest.approx((0.3 * 3 + 1.7 * 4 + 3 * 5) / 5)


def _reference_row(comp: Composition) -> list[float]:
    """Plain per-row implementation of the documented rules."""
    amounts = comp.get_el_amt_dict()
    hydride = "O" not in amounts and "N" not in amounts
    anions = {s: n for s, n in amounts.items() if s in ANION_CHARGE and (s != "H" or hydride)}
    frame = {s: n for s, n in amounts.items() if s not in anions and s != "Li"}
    li, total, n_an, n_fr = amounts.get("Li", 0.0), sum(amounts.values()), sum(anions.values()), sum(frame.values())

    def ratio(a, b):
        return a / b if b > 0 else math.nan

    def mean(group, prop):
        return ratio(sum(n * prop(s) for s, n in group.items()), sum(group.values()))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = {s: Element(s).X for s in amounts}

    def valence(s):
        e = Element(s)
        return max((q for q in e.common_oxidation_states or e.icsd_oxidation_states if q > 0), default=math.nan)

    def radius(s):
        return Element(s).ionic_radii.get(-ANION_CHARGE[s], math.nan)

    x_fr = mean(frame, x.get)
    std = math.sqrt(mean(frame, lambda s: (x[s] - x_fr) ** 2)) if frame else math.nan
    slot = sum(n * ANION_CHARGE[s] for s, n in anions.items()) - sum(n * valence(s) for s, n in frame.items())
    r_an = mean(anions, radius)
    return [
        ratio(li, total), ratio(li, n_an), ratio(li, n_fr),
        *(ratio(anions.get(s, 0.0), total) for s in ANION_CHARGE),
        len(anions), float(len(anions) >= 2),
        mean(anions, lambda s: ANION_POLARIZABILITY.get(s, math.nan)), mean(anions, x.get), r_an,
        x_fr, std, mean(frame, valence), mean(frame, lambda s: float(Element(s).atomic_mass)),
        ratio(li - slot, total), ratio(n_an, li + n_fr), ratio(n_an, total), r_an / 0.90,
    ]


def test_vectorised_matches_per_row_reference():
    rng = np.random.default_rng(7)
    pool = ["O", "S", "Se", "Cl", "Br", "I", "F", "N", "H", "P", "Si", "Ge", "Zr", "La", "Ti", "Al", "B", "Ar", "Mn"]
    comps = []
    for _ in range(40):
        others = rng.choice(pool, size=rng.integers(0, 5), replace=False)
        comps.append(Composition({"Li": rng.uniform(0.1, 7), **{s: rng.uniform(0.05, 6) for s in others}}))
    expected = np.array([_reference_row(c) for c in comps], dtype=float)
    np.testing.assert_allclose(lithium_features(comps).to_numpy(), expected, rtol=1e-10, atol=1e-12, equal_nan=True)
