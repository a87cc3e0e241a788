"""Splits and evaluation: grouped folds never share a group, results are deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from superionic.classifier.data import CHEMSYS, FAMILY, prepare, synthetic_frame
from superionic.classifier.evaluate import evaluate_groups, evaluate_paper
from superionic.classifier.protocol import group_labels, grouped_splits, paper_splits, split_metrics, summarize

SPECS = {
    "gnb": {"_target_": "sklearn.naive_bayes.GaussianNB", "seed_arg": None, "fixed": {}, "search_space": {}, "scale": True},
    "lgbm": {"_target_": "lightgbm.LGBMClassifier", "seed_arg": "random_state", "scale": False, "search_space": {},
             "fixed": {"n_estimators": 20, "num_leaves": 4, "min_child_samples": 5, "n_jobs": 1, "verbose": -1,
                       "deterministic": True, "force_col_wise": True, "subsample": 0.8, "subsample_freq": 1}},
}
BEST = {"gnb": {}, "lgbm": {}}


@pytest.fixture(scope="module")
def data():
    frame, feats = synthetic_frame(n_rows=150, n_features=12, seed=5)
    return prepare(frame, feats)


@pytest.mark.parametrize("column", [CHEMSYS, FAMILY])
def test_grouped_splits_never_share_a_group(data, column):
    groups, mask = group_labels(data.frame, column)
    g = groups[mask]
    y = data.y[mask]
    splits = grouped_splits(y, g, 5, seed=0)
    assert len(splits) == min(5, len(np.unique(g)))
    covered = np.concatenate([te for _, te in splits])
    assert sorted(covered) == list(range(len(g)))  # every row validated exactly once
    for train, test in splits:
        assert not set(g[train]) & set(g[test])


def test_null_groups_are_left_out_and_counted(data):
    info, table = evaluate_groups(SPECS, BEST, data, FAMILY, 3, seed=0)
    n_null = int(data.frame[FAMILY].isna().sum())
    assert n_null > 0
    assert info["n_rows_excluded_null_group"] == n_null
    assert info["models"]["gnb"]["n_rows"] == len(data.frame) - n_null
    assert set(table["group"]) == set(data.frame[FAMILY].dropna())


def test_single_group_is_reported_not_crashed(data):
    frame = data.frame.copy()
    frame[FAMILY] = "NASICON"
    info, table = evaluate_groups(SPECS, BEST, prepare(frame, data.feature_columns), FAMILY, 5, seed=0)
    assert info["status"].startswith("unavailable")
    assert table.empty


def test_paper_splits_are_stratified_and_seeded(data):
    a = paper_splits(data.y, 3, 0.2, seed0=0)
    b = paper_splits(data.y, 3, 0.2, seed0=0)
    for (tr1, te1), (tr2, te2) in zip(a, b, strict=True):
        np.testing.assert_array_equal(te1, te2)
        assert abs(data.y[te1].mean() - data.y.mean()) < 0.05
        assert not set(tr1) & set(te1)
    assert not np.array_equal(a[0][1], a[1][1])


def test_same_seed_same_metrics(data):
    first, s1 = evaluate_paper(SPECS, BEST, data, n_splits=4, test_size=0.2, seed=0)
    second, s2 = evaluate_paper(SPECS, BEST, data, n_splits=4, test_size=0.2, seed=0)
    pd.testing.assert_frame_equal(first, second)
    assert s1 == s2
    other, _ = evaluate_paper(SPECS, BEST, data, n_splits=4, test_size=0.2, seed=50)
    assert not first["accuracy"].equals(other["accuracy"])


@pytest.mark.slow
def test_parallel_splits_match_serial(data):
    serial, _ = evaluate_paper({"gnb": SPECS["gnb"]}, BEST, data, n_splits=4, test_size=0.2, seed=0, n_jobs=1)
    parallel, _ = evaluate_paper({"gnb": SPECS["gnb"]}, BEST, data, n_splits=4, test_size=0.2, seed=0, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_metrics_and_summary():
    y = np.array([0, 0, 1, 1, 1])
    m = split_metrics(y, np.array([0, 1, 1, 1, 0]), np.array([0.1, 0.6, 0.9, 0.8, 0.4]))
    assert m["accuracy"] == pytest.approx(0.6)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (1, 1, 1, 2)
    assert np.isnan(split_metrics(np.array([1, 1]), np.array([1, 0]), np.array([0.9, 0.2]))["roc_auc"])
    per = pd.DataFrame([{**m, "split": 0}, {**m, "split": 1, "accuracy": 1.0}])
    s = summarize(per)
    assert s["accuracy_mean"] == pytest.approx(0.8) and s["accuracy_std"] == pytest.approx(0.2)
    assert s["tp"] == 4


def test_group_spellings_are_merged():
    from superionic.classifier.protocol import normalize_groups

    values = pd.Series(["Garnet", "garnet ", "Garnet", "argyrodites", "Argyrodite", "LGPS", "oxides", None])
    merged, merges = normalize_groups(values)
    assert merged.tolist()[:3] == ["Garnet"] * 3 and merged.tolist()[3] == merged.tolist()[4]
    assert merged.tolist()[5:7] == ["LGPS", "oxides"]
    assert merged.isna().tolist()[-1]
    assert merges["garnet"] == "Garnet" and "LGPS" not in merges


def test_chemsys_is_never_merged():
    frame = pd.DataFrame({CHEMSYS: ["Li-P", "Li-P-S", "Ge-Li-O-P", "Ge-Li-O-P-S"]})
    groups, mask = group_labels(frame, CHEMSYS)
    assert len(set(groups)) == 4 and mask.all()


def test_models_evaluated_one_by_one_merge_into_the_joint_tables(data, tmp_path):
    """evaluate@<model> per model, then classifier-collect: the same tables (values and column order)
    as scoring all models together, after a JSON round trip of each model's file."""
    import json

    from superionic.classifier.collect import combine
    from superionic.classifier.evaluate import evaluate_model
    from superionic.io import write_json

    names = list(SPECS)
    docs = {}
    for name in names:
        path = write_json(evaluate_model(name, SPECS[name], BEST[name], data, 3, 0.2, [CHEMSYS, FAMILY], 3, seed=0),
                          tmp_path / f"{name}.json")
        docs[name] = json.loads(path.read_text(encoding="utf-8"))
    merged = combine(docs, names)
    joint_splits, joint_paper = evaluate_paper(SPECS, BEST, data, 3, 0.2, seed=0)
    pd.testing.assert_frame_equal(merged["per_split"], joint_splits)
    assert merged["metrics"]["paper"] == joint_paper
    joint_info, joint_table = evaluate_groups(SPECS, BEST, data, CHEMSYS, 3, seed=0)
    assert merged["metrics"]["grouped"][CHEMSYS]["models"] == joint_info["models"]
    ours = merged["group_table"]
    ours = ours[ours["grouping"] == CHEMSYS].sort_values(["model", "group"]).reset_index(drop=True)
    theirs = joint_table.sort_values(["model", "group"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
