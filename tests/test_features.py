import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from superionic.data import columns as C
from superionic.features.composition import composition_feature_labels, featurize_compositions, featurize_formulas
from superionic.features.stage import update_feature_cache
from superionic.features.structure import LatticeFeaturizer


def test_cd145_has_the_papers_145_descriptors():
    labels = composition_feature_labels()
    assert len(labels) == 145 and len(set(labels)) == 145


def test_descriptors_are_invariant_to_scaling_the_formula():
    features = featurize_formulas(["Li2O", "Li4O2", "Li1.3Al0.3Ti1.7(PO4)3", "Li2.6Al0.6Ti3.4P6O24"])
    np.testing.assert_array_equal(features.iloc[0].to_numpy(), features.iloc[1].to_numpy())
    np.testing.assert_allclose(features.iloc[2].to_numpy(), features.iloc[3].to_numpy(), rtol=1e-12)
    assert not np.array_equal(features.iloc[0].to_numpy(), features.iloc[2].to_numpy())


def test_doped_composition_gets_ionic_descriptors():
    features = featurize_formulas(["Li1.3Al0.3Ti1.7(PO4)3", "NaN"])
    assert features.loc[0, "compound possible"] == 1.0
    assert features.loc[1, "compound possible"] == 0.0  # Na1N1 cannot balance with Na+ and N3-


def test_unreadable_formula_gives_nan_row_without_breaking_others():
    features = featurize_formulas(["Li2O", "Xx2O", "Li3PS4"])
    assert features.loc[1].isna().all()
    assert features.loc[[0, 2]].notna().all().all()


def test_feature_cache_reuses_and_drops(tmp_path):
    interim = pd.DataFrame({C.COMPOSITION: ["Li0.66667 O0.33333", "Li0.375 P0.125 S0.5"], C.AMOUNTS: ["Li2 O1", "Li3 P1 S4"]})
    table, metrics = update_feature_cache(interim, None)
    assert metrics["computed"] == 2 and metrics["reused"] == 0
    grown = pd.concat([interim.iloc[[1]], pd.DataFrame({C.COMPOSITION: ["Li0.5 Cl0.5"], C.AMOUNTS: ["Li1 Cl1"]})])
    table2, metrics2 = update_feature_cache(grown, table)
    assert metrics2 == {**metrics2, "computed": 1, "reused": 1}
    assert list(table2[C.COMPOSITION]) == sorted(grown[C.COMPOSITION])
    expected = featurize_compositions([Composition("Li3PS4")]).iloc[0].to_numpy()
    np.testing.assert_array_equal(table2.set_index(C.COMPOSITION).loc["Li0.375 P0.125 S0.5"].to_numpy(), expected)


def test_lattice_features_handle_missing_values():
    lattice = LatticeFeaturizer()
    assert lattice.featurize(8.8, 22.0, 1500.0, 167) == pytest.approx([8.8, 22.0, 0.4, 1500.0, 167.0])
    values = lattice.featurize(np.nan, 22.0, np.nan, np.nan)
    assert np.isnan(values[0]) and np.isnan(values[2]) and values[1] == 22.0
    assert len(lattice.feature_labels()) == 5


def test_damaged_feature_cache_is_rebuilt_not_fatal(tmp_path, caplog):
    import pandas as pd

    from superionic.features.stage import read_cache

    path = tmp_path / "composition.parquet"
    pd.DataFrame({"composition": ["Li1"], "x": [1.0]}).to_parquet(path)
    assert read_cache(path) is not None
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with caplog.at_level("WARNING"):
        assert read_cache(path) is None
    assert "composition.parquet" in caplog.text and "rebuilding" in caplog.text
