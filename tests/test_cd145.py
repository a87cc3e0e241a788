"""The array CD-145 featurizer against matminer's, the reference it replaces."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from conftest import REPO_ROOT
from superionic.features import cd145
from superionic.features.cd145 import amounts_matrix, cd145_frame, cd145_from_matrix
from superionic.features.composition import (
    composition_feature_labels,
    featurize_compositions,
    featurize_compositions_matminer,
)

SAMPLE = 300

# Each line exercises a matminer rule the array code must copy.
TRICKY = [
    "Li1.3Al0.3Ti1.7P3O12", "Li1.3Al0.3Ti1.7(PO4)3",  # doped, non-integer, balanced
    "Li0.355La0.35Sr0.3Ti0.995Al0.005O3",  # doped perovskite that balances exactly
    "Li0.33La0.56TiO3",  # rounded subscripts: misses neutrality by 0.01, so "not possible"
    "Li6.4La3Zr1.4Ta0.6O12", "Na3Zr2Si2PO12", "Li10GeP2S12", "Li6PS5Cl", "Li7P3S11",
    "Li", "He", "Xe", "C", "Og",  # single elements: "possible", zero ionic character
    "NaN", "LiF", "Li2O", "Li4O2",  # binaries; NaN is Na + N
    "HeLi", "ArCl", "XeF2",  # an element with no common oxidation state: never "possible"
    "Og2O", "NhLi3", "Lr2O3", "EsCl3", "RfO2", "PuO2",  # magpie gaps: NaN stats; imputed X and valence
    "Fe3O4", "Mn3O4", "Pb3O4", "Co3O4",  # mixed valence: fast=True says "not possible"
    "AlCoCrFeNiTiMnCuV", "Mg0.2Co0.2Ni0.2Cu0.2Zn0.2O", "Li0.2Na0.2K0.2Rb0.2Cs0.2Cl",  # high entropy
    "CSClSeBrTeI", "LiCSClSeBrTeIN",  # large oxidation-state products
    "Fe1Ni1.000001", "Fe1Ni1.0001",  # mode tie inside / outside rtol=1e-5
    "Li0.00000002O0.00000001",  # amounts this small are tied by mode's atol=1e-8; Li2O's are not
    "Li2O1.000000001", "Li2O1.00000002",  # charge within / beyond the 1e-8 balance tolerance
    "Li100O50", "Li14Zn(GeO4)4", "H2O", "CH4",
]


def data_dir() -> Path:
    """Like the benchmarks: SUPERIONIC_DATA_DIR, else ../shared/datasets from the repo."""
    path = Path(os.environ.get("SUPERIONIC_DATA_DIR", "../shared/datasets"))
    return path if path.is_absolute() else REPO_ROOT / path


def assert_same_as_matminer(compositions: list[Composition]) -> None:
    fast = featurize_compositions(compositions)
    reference = featurize_compositions_matminer(compositions)
    assert list(fast.columns) == list(reference.columns)
    got, want = fast.to_numpy(), reference.to_numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.fixture(scope="module")
def tricky() -> list[Composition]:
    return [Composition(f) for f in TRICKY]


@pytest.fixture(scope="module")
def mp_sample() -> list[Composition]:
    path = data_dir() / "materials_project/mp2019_formation_energy.csv"
    if not path.exists():
        pytest.skip(f"{path} not found (set SUPERIONIC_DATA_DIR to the shared datasets)")
    formulas = pd.read_csv(path, keep_default_na=False)["composition"]  # keep "NaN" (Na + N) a formula
    return [Composition(f) for f in formulas.sample(SAMPLE, random_state=0)]


@pytest.fixture(scope="module")
def training_sample() -> list[Composition]:
    """The training compositions: from the pipeline's interim table, else read from the raw sources."""
    path = REPO_ROOT / "data/interim/conductivity.parquet"
    if path.exists():
        amounts = pd.read_parquet(path, columns=["amounts"])["amounts"]
    elif (data_dir() / "conductivity").is_dir():
        from superionic.config import compose
        from superionic.data.ingest import clean_records, read_all_sources

        window = compose().ingest
        accepted, _, _ = clean_records(read_all_sources(data_dir()), window.room_temperature_min_c,
                                       window.room_temperature_max_c)
        amounts = accepted["amounts"]
    else:
        pytest.skip(f"neither {path} nor {data_dir() / 'conductivity'} (set SUPERIONIC_DATA_DIR)")
    amounts = amounts.drop_duplicates()
    return [Composition(f) for f in amounts.sample(min(SAMPLE, len(amounts)), random_state=0)]


def test_labels_are_matminers():
    assert cd145.feature_labels() == composition_feature_labels()


def test_tricky_compositions_match_matminer(tricky):
    assert_same_as_matminer(tricky)


def test_tricky_compositions_cover_the_rules(tricky):
    """Guard the list itself: each rule it is meant to exercise does occur."""
    features = featurize_compositions(tricky).set_axis(TRICKY)
    possible = features["compound possible"]
    assert possible["Li1.3Al0.3Ti1.7P3O12"] == 1 and possible["Li0.33La0.56TiO3"] == 0
    assert possible["He"] == 1 and possible["HeLi"] == 0 and possible["Fe3O4"] == 0
    assert possible["Li2O1.000000001"] == 1 and possible["Li2O1.00000002"] == 0
    mode = features["MagpieData mode Number"]
    assert mode["Fe1Ni1.000001"] == 26 and mode["Fe1Ni1.0001"] == 28
    assert mode["Li0.00000002O0.00000001"] == 3 and mode["Li2O"] == 3  # tie -> smaller value; Li wins anyway
    assert features.loc["Og2O"].isna().any() and features.loc["Og2O", "avg ionic char"] > 0
    assert features.loc["Og"].isna().any() and features.loc["Og", "max ionic char"] == 0


def test_mp2019_sample_matches_matminer(mp_sample):
    assert_same_as_matminer(mp_sample)


def test_training_sample_matches_matminer(training_sample):
    assert_same_as_matminer(training_sample)


def test_rows_keep_input_order(tricky):
    forward = featurize_compositions(tricky).to_numpy()
    backward = featurize_compositions(tricky[::-1]).to_numpy()
    np.testing.assert_array_equal(backward, forward[::-1])


def test_dicts_equal_compositions(tricky):
    dicts = [c.get_el_amt_dict() for c in tricky]
    dicts[0] = {**dicts[0], "Na": 1e-9}  # dropped, as Composition drops amounts below 1e-8
    np.testing.assert_array_equal(cd145_frame(dicts).to_numpy(), cd145_frame(tricky).to_numpy())


def test_chunking_does_not_change_a_bit(tricky):
    matrix, elements = amounts_matrix(tricky)
    whole = cd145_from_matrix(matrix, elements)
    np.testing.assert_array_equal(cd145_from_matrix(matrix, elements, chunk_rows=7), whole)
    np.testing.assert_array_equal(cd145_from_matrix(matrix, elements, chunk_rows=1), whole)


def test_huge_oxidation_products_take_the_blocked_path(tricky, monkeypatch):
    expected = cd145_frame(tricky)["compound possible"].to_numpy()
    monkeypatch.setattr(cd145, "_COMBO_BUDGET", 5)  # every multi-element row is now "huge"
    np.testing.assert_array_equal(cd145_frame(tricky)["compound possible"].to_numpy(), expected)


def test_column_order_and_extra_columns_do_not_change_a_bit(tricky):
    matrix, elements = amounts_matrix(tricky)
    wider = ["U", "Kr", *reversed(elements)]
    matrix2, _ = amounts_matrix(tricky, elements=wider)
    np.testing.assert_array_equal(cd145_from_matrix(matrix2, wider), cd145_from_matrix(matrix, elements))


def test_oxidation_state_decorated_compositions_match_matminer():
    compositions = [
        Composition({"Fe2+": 1, "Fe3+": 2, "O2-": 4}),  # charges given: balanced mixed valence
        Composition({"Li+": 1, "Fe2+": 1, "O2-": 1}),
        Composition({"Fe3+": 2}),
    ]
    assert_same_as_matminer(compositions)


def test_bad_input_is_refused_or_empty():
    with pytest.raises(ValueError, match="non-negative"):
        cd145_from_matrix(np.array([[1.0, -1.0]]), ["Li", "O"])
    with pytest.raises(ValueError, match="unknown"):
        cd145_from_matrix(np.array([[1.0]]), ["Xx"])
    with pytest.raises(ValueError, match="one column"):
        cd145_from_matrix(np.array([[1.0, 1.0]]), ["Li", "Li"])
    with pytest.raises(ValueError, match="unknown"):
        amounts_matrix([{"Xx": 1.0}])
    assert np.isnan(cd145_from_matrix(np.zeros((1, 2)), ["Li", "O"])).all()
    assert cd145_frame([]).shape == (0, 145)
