"""Element-embedding and MP-pretrained composition blocks: matminer contract, no leakage, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from superionic.data import columns as D
from superionic.features import mp_encoder as M
from superionic.features.element_embedding import Embedding, embedding_features_from_amounts, feature_labels
from superionic.features.lithium import amount_matrix
from superionic.classifier import generalize as G

FORMULAS = ["Li3PS4", "Li7La3Zr2O12", "Li1.3Al0.3Ti1.7(PO4)3", "LiCl", "Li6PS5Cl", "Li10GeP2S12", "Li"]


@pytest.mark.parametrize("name,preset", [(Embedding.MATSCHOLAR, "matscholar_el"), (Embedding.MEGNET, "megnet_el")])
def test_embedding_block_equals_matminer_element_property(name, preset):
    from matminer.featurizers.composition import ElementProperty

    featurizer = ElementProperty.from_preset(preset)
    featurizer.stats = ["mean", "std_dev"]
    expected = np.array([featurizer.featurize(Composition(f)) for f in FORMULAS])
    got = embedding_features_from_amounts(amount_matrix([Composition(f) for f in FORMULAS]), name)
    # matminer orders by property then statistic; ours by statistic then dimension
    labels = featurizer.feature_labels()
    ours = feature_labels(name)
    assert len(labels) == len(ours) == got.shape[1]
    order = [labels.index(label) for label in ours]
    np.testing.assert_allclose(got.to_numpy(), expected[:, order], rtol=1e-7, atol=1e-7)


def test_embedding_block_is_nan_where_an_element_has_no_vector_and_scale_free():
    amounts = amount_matrix([Composition("Li2O"), Composition("Li4O2"), Composition("LiOg")])
    X = embedding_features_from_amounts(amounts, Embedding.MEGNET)  # MEGNet stops at Z = 94
    np.testing.assert_allclose(X.iloc[0], X.iloc[1], rtol=1e-12)
    assert X.iloc[2].isna().all() and not X.iloc[0].isna().any()
    with pytest.raises(ValueError, match="amount matrix"):
        embedding_features_from_amounts(amounts[:, :10], Embedding.MEGNET)


def test_padding_keeps_every_element_and_its_fraction():
    amounts = amount_matrix([Composition("Li3PS4"), Composition("LiCl"), Composition("Li")])
    index, fraction = M.padded(amounts)
    assert index.shape == fraction.shape == (3, 3)
    np.testing.assert_allclose(fraction.sum(axis=1), 1.0)
    np.testing.assert_allclose(fraction[1], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(amounts[np.arange(3)[:, None], index] / amounts.sum(1, keepdims=True) * (fraction > 0),
                               fraction)


def _tiny_pretraining(seed: int = 0) -> tuple[M.MPEncoder, dict]:
    rng = np.random.default_rng(0)
    pool = ["Li", "Na", "K", "O", "S", "Cl", "F", "P", "Zr", "Al", "Ti", "Si"]
    formulas = ["".join(f"{e}{int(rng.integers(1, 5))}" for e in rng.choice(pool, size=int(rng.integers(1, 4)),
                                                                           replace=False)) for _ in range(200)]
    amounts = amount_matrix([Composition(f) for f in formulas])
    frac = amounts / amounts.sum(1, keepdims=True)
    targets = np.column_stack([frac @ rng.normal(size=amounts.shape[1]), np.abs(frac @ rng.normal(size=amounts.shape[1]))])
    settings = M.PretrainSettings(width=8, epochs=3, batch_size=32, learning_rate=0.01, weight_decay=0.0,
                                  validation_fraction=0.2, seed=seed)
    return M.pretrain(amounts, targets, settings)


def test_pretraining_is_deterministic_and_features_have_the_documented_columns():
    first, metrics = _tiny_pretraining()
    second, _ = _tiny_pretraining()
    amounts = amount_matrix([Composition(f) for f in FORMULAS])
    a, b = first.features_from_amounts(amounts), second.features_from_amounts(amounts)
    pd.testing.assert_frame_equal(a, b)
    assert a.shape == (len(FORMULAS), 2 * 8 + 2)
    assert list(a.columns[-2:]) == [M.PREDICTED[t] for t in M.TARGETS]
    assert metrics["n_validation"] == 40 and metrics["n_train"] == 160
    # batching does not change a row's features
    pd.testing.assert_frame_equal(first.features_from_amounts(amounts, batch_rows=2), a)
    empty = first.features_from_amounts(np.zeros((1, amounts.shape[1])))
    assert empty.isna().all(axis=None)


def test_targets_are_joined_by_id_and_dropped_rows_are_counted(tmp_path):
    energy = tmp_path / "e.csv"
    gap = tmp_path / "g.csv"
    energy.write_text("task_id,composition,formation_energy_per_atom\nmp-1,LiF,-3.1\nmp-2,NaCl,\n"
                      "mp-3,KBr,-1.9\nmp-5,NaN,-0.4\n")
    gap.write_text("task_id,composition,band_gap\nmp-1,LiF,8.7\nmp-2,NaCl,5.0\nmp-4,Li,0.0\nmp-5,NaN,0.8\n")
    frame, counts = M.load_targets(energy, gap)
    # "NaN" is sodium nitride, kept as a formula
    assert frame[M.MP_ID].tolist() == ["mp-1", "mp-5"] and frame[M.MP_COMPOSITION].tolist() == ["LiF", "NaN"]
    assert counts == {"rows": 5, "without_both_targets": 2, "non_finite_target": 1, "kept": 2}
    pd.DataFrame({M.MP_ID: ["mp-1"], "formula": ["LiF"], M.MP_FORMATION_ENERGY: [-3.1]}).to_csv(energy, index=False)
    with pytest.raises(ValueError, match="missing column"):
        M.load_targets(energy, gap)


def test_generalize_blocks_from_exact_amounts_and_mp_needs_its_encoder():
    frame = pd.DataFrame({D.AMOUNTS: ["Li3PS4", "Li7La3Zr2O12"], "f": [1.0, 2.0]})
    X = G.feature_table(frame, ["f"], ["cd", "li", "matscholar"])
    assert X.shape == (2, 1 + 26 + 400)
    with pytest.raises(ValueError, match="pre-trained encoder"):
        G.feature_table(frame, ["f"], ["mp"])
    encoder, _ = _tiny_pretraining()
    X = G.feature_table(frame, ["f"], ["li", "mp"], encoder)
    assert X.shape == (2, 26 + 18) and not X.filter(like="mp latent").isna().any(axis=None)


def test_saved_encoder_is_byte_identical_across_processes(tmp_path):
    """The model file's digest is tracked in git, so a fresh process must write the same bytes."""
    import subprocess
    import sys

    from superionic.classifier.ensemble import file_sha256

    snippet = (
        "import sys, numpy as np\n"
        "from superionic.features import mp_encoder as M\n"
        "from superionic.classifier.ensemble import save_model\n"
        "rng = np.random.default_rng(0)\n"
        "a = np.zeros((40, 118)); a[np.arange(40), rng.integers(0, 20, 40)] = 1; a[:, 2] += 1\n"
        "s = M.PretrainSettings(width=4, epochs=1, batch_size=8, learning_rate=0.01, weight_decay=0.0,\n"
        "                       validation_fraction=0.0, seed=0)\n"
        "save_model(M.pretrain(a, rng.normal(size=(40, 2)), s)[0], sys.argv[1])\n"
    )
    paths = [tmp_path / f"encoder{i}.joblib" for i in range(2)]
    for path in paths:
        subprocess.run([sys.executable, "-c", snippet, str(path)], check=True)
    assert file_sha256(paths[0]) == file_sha256(paths[1])
