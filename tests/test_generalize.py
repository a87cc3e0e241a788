"""Generalization: curated families, leakage-free folds, out-of-fold calibration and abstention."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from superionic.config import compose
from superionic.data import columns as D
from superionic.data.families import UNMAPPED, canonical_families, family_lookup, family_mapping_table
from superionic.classifier import generalize as G
from superionic.classifier.data import prepare, synthetic_frame

FAMILIES = {"Garnet": ["garnet", "garnet-like"], "Halide": ["Li-halide", "chlorides", "cholorides"]}


def test_family_map_merges_spellings_keeps_unlisted_and_nulls():
    raw = pd.Series(["garnet ", "Garnet", "GARNET-like", "cholorides", "Li-halide", "spinel", None, ""])
    out = canonical_families(raw, FAMILIES)
    assert out.tolist()[:6] == ["Garnet", "Garnet", "Garnet", "Halide", "Halide", "spinel"]
    assert out.isna().tolist()[6:] == [True, True]
    table = family_mapping_table(raw, FAMILIES)
    assert table.loc[table["spelling"] == "spinel", "status"].item() == UNMAPPED
    assert table["records"].sum() == 6


def test_a_spelling_under_two_families_is_refused():
    with pytest.raises(ValueError, match="'chlorides' is listed under both"):
        family_lookup({"Halide": ["chlorides"], "Chloride": ["chlorides"]})


def test_curated_map_in_config_covers_the_known_misspellings():
    families = compose()["families"]
    lookup = family_lookup({k: list(v) for k, v in families.items()})
    assert {lookup[s] for s in ("halides", "li-halide", "chlorides", "cholorides")} == {"Halide"}
    assert lookup["argyrodites"] == lookup["argyrodite"] == "Argyrodite"


def test_expected_calibration_error_and_selective_accuracy():
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.95, 0.45, 0.55, 0.55, 0.45, 0.95])
    # bins: 0.0x -> rate 0 (|0.05-0|*2); 0.9x -> rate 1 (|0.95-1|*4); 0.4x -> {0,1} (|0.45-.5|*2); 0.5x -> {1,0} (|0.55-.5|*2)
    assert G.expected_calibration_error(y, p, 10) == pytest.approx((0.1 + 0.2 + 0.1 + 0.1) / 10)
    acc, cutoff = G.selective(y, p, 0.6)
    assert acc == 1.0 and cutoff == pytest.approx(0.45)
    assert G.selective(y, p, 1.0)[0] == pytest.approx(0.8)


def _dataset(n_rows=180, seed=0):
    frame, features = synthetic_frame(n_rows=n_rows, n_features=12, seed=seed)
    rng = np.random.default_rng(seed)
    names = np.array(["kang2023", "liverpool2023", "obelix2025", "xu2020_na_li_test",
                      "kang2023;liverpool2023", "liverpool2023;obelix2025"])  # fmt: skip
    frame[D.SOURCES] = names[rng.integers(0, len(names), size=n_rows)]
    return prepare(frame, features)


SOURCE_GROUPS = {"kang": ["kang2023"], "xu": ["xu2020_nasicon_train", "xu2020_na_li_test"],
                 "liverpool": ["liverpool2023"], "obelix": ["obelix2025"]}


def test_folds_never_share_a_group_or_a_source_across_sides():
    data = _dataset()
    folds = G.make_folds(data.frame, data.y, 4, 0, SOURCE_GROUPS)
    assert set(folds) == set(G.PROTOCOLS)
    for protocol in (G.CHEMSYS, G.FAMILY):
        column = data.frame[protocol].astype("string")
        for train, test in folds[protocol].splits:
            assert not set(column.iloc[train].dropna()) & set(column.iloc[test].dropna())
        assert data.frame[protocol].isna().sum() == len(data.y) - sum(len(te) for _, te in folds[protocol].splits)
    groups = G.source_groups_of(data.frame[D.SOURCES], SOURCE_GROUPS)
    for name, (train, test) in zip(folds[G.SOURCE].names, folds[G.SOURCE].splits, strict=True):
        assert all(name in groups[i] for i in test) and not any(name in groups[i] for i in train)


def test_unknown_source_is_named():
    with pytest.raises(ValueError, match="'mystery2030' is in no group"):
        G.source_groups_of(pd.Series(["kang2023;mystery2030"]), SOURCE_GROUPS)


def test_no_fit_or_calibration_sees_a_validation_row(monkeypatch):
    data = _dataset()
    folds = G.make_folds(data.frame, data.y, 4, 0, SOURCE_GROUPS)
    seen: list[set[int]] = []
    real = G.fit_calibrated

    def spy(spec, params, X, y, chemsys, *args):
        seen.append(set(X.index))
        return real(spec, params, X, y, chemsys, *args)

    monkeypatch.setattr(G, "fit_calibrated", spy)
    spec = compose()["models"]["logreg"]
    for protocol, fold in folds.items():
        seen.clear()
        oof = G.out_of_fold(spec, {"C": 0.1}, data.X, data.y, data.frame[D.CHEMSYS].to_numpy(), fold,
                            "sigmoid", 3, 0, n_jobs=1)
        assert len(seen) == len(fold.splits)
        for fitted_on, (_, test) in zip(seen, fold.splits, strict=True):
            assert not fitted_on & set(test), protocol
        assert oof["p"].between(0, 1).all()


def test_scores_are_deterministic_and_the_default_follows_the_selection():
    data = _dataset()
    folds = G.make_folds(data.frame, data.y, 3, 0, SOURCE_GROUPS)
    models = {"logreg": (compose()["models"]["logreg"], {"C": 0.1, "class_weight": "balanced"})}
    frame = data.frame.copy()
    run = lambda: G.score_variants(frame, data.feature_columns, data.y, folds, {"cd": ["cd"]}, models,  # noqa: E731
                                   "sigmoid", 3, 0.7, 10, 0, 1)
    first, detail, _ = run()
    second, _, _ = run()
    pd.testing.assert_frame_equal(first, second)
    assert set(first["protocol"]) == set(G.PROTOCOLS)
    assert set(detail["cd+logreg"][G.SOURCE]["per_source"]) <= set(SOURCE_GROUPS)
    table = pd.DataFrame({"variant": ["a", "a", "b", "b"], "protocol": ["chemsys", "family"] * 2,
                          "balanced_accuracy": [0.8, 0.6, 0.7, 0.75]})
    assert G.choose_default(table, ["chemsys", "family"]) == "b"
    assert G.choose_default(table, ["chemsys"]) == "a"


def test_li_block_comes_from_the_exact_amounts():
    frame = pd.DataFrame({D.AMOUNTS: ["Li3PS4", "Li7La3Zr2O12"], "f": [1.0, 2.0]})
    X = G.feature_table(frame, ["f"], ["cd", "li"])
    assert X.shape[0] == 2 and "f" in X.columns and X["li fraction"].iloc[0] == pytest.approx(3 / 8)
    with pytest.raises(ValueError, match="unknown block"):
        G.feature_table(frame, ["f"], ["magic"])


def test_dataset_merges_family_spellings_before_duplicates_collapse():
    from superionic.data.dataset import apply_family_map, deduplicate

    records = pd.DataFrame({
        D.COMPOSITION: ["Cl0.6 In0.1 Li0.3"] * 3 + ["Li0.5 O0.5"], D.SOURCE: ["a", "b", "c", "a"], D.ROW: [2, 2, 2, 3],
        D.FORMULA: ["Li3InCl6"] * 3 + ["Li2O"], D.REDUCED_FORMULA: ["Li3InCl6"] * 3 + ["Li2O"],
        D.AMOUNTS: ["Li3InCl6"] * 3 + ["Li2O"], D.CHEMSYS: ["Cl-In-Li"] * 3 + ["Li-O"], D.MOBILE_ION: "Li",
        D.LOG10_SIGMA: [-3.0, -3.2, -2.9, -9.0], D.FAMILY: ["chlorides", "Li-halide", "cholorides", "antifluorite"],
        D.SPACE_GROUP: np.nan, D.LATTICE_A: np.nan, D.LATTICE_C: np.nan, D.VOLUME: np.nan,
        D.SIGMA_CENSORED: "", D.SIGMA: 1e-3, D.DOI: "", D.FORMULA_RAW: "x",
    })  # fmt: skip
    mapped, table = apply_family_map(records, FAMILIES)
    materials, _ = deduplicate(mapped, "median", 1e-4)
    assert materials.set_index(D.REDUCED_FORMULA)[D.FAMILY].to_dict() == {"Li3InCl6": "Halide", "Li2O": "antifluorite"}
    assert table.set_index("spelling")["status"]["antifluorite"] == UNMAPPED


def test_selection_protocols_are_a_closed_choice_checked_at_load():
    from superionic.classifier.config import GeneralizeProtocol
    from superionic.config import compose

    assert tuple(GeneralizeProtocol) == G.PROTOCOLS
    with pytest.raises(Exception, match="generalize.selection"):
        compose(["generalize.selection=[chemsys,nope]"])
