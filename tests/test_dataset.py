import math

import numpy as np
import pandas as pd
import pytest

from superionic.data import columns as C
from superionic.data.dataset import attach_features, deduplicate, load_dataset, save_dataset, select_variant


def _records(rows):
    frame = pd.DataFrame(rows, columns=[C.COMPOSITION, C.SOURCE, C.ROW, C.SIGMA, C.FAMILY])
    frame[C.LOG10_SIGMA] = np.log10(frame[C.SIGMA])
    for col, value in [(C.FORMULA, "f"), (C.REDUCED_FORMULA, "r"), (C.AMOUNTS, "a"), (C.CHEMSYS, "Li-O"),
                       (C.MOBILE_ION, "Li"), (C.SIGMA_CENSORED, ""), (C.FORMULA_RAW, "f"), (C.DOI, None)]:
        frame[col] = value
    for col in (C.SPACE_GROUP, C.LATTICE_A, C.LATTICE_C, C.VOLUME):
        frame[col] = np.nan
    return frame


def test_median_dedup_and_conflict_report():
    records = _records([("A", "s1", 2, 1e-3, "Garnet"), ("A", "s2", 5, 1e-5, "Garnet"), ("A", "s3", 3, 1e-2, None),
                        ("B", "s1", 3, 1e-6, None), ("B", "s2", 2, 1e-7, None)])
    materials, conflicts = deduplicate(records, "median", 1e-4)
    a = materials.set_index(C.COMPOSITION).loc["A"]
    assert a[C.LOG10_SIGMA] == pytest.approx(-3.0) and a[C.LABEL] == 1 and a[C.N_RECORDS] == 3
    assert a[C.LABEL_CONFLICT] and a[C.FAMILY] == "Garnet" and a[C.SOURCES] == "s1;s2;s3"
    assert not materials.set_index(C.COMPOSITION).loc["B", C.LABEL_CONFLICT]
    assert set(conflicts[C.COMPOSITION]) == {"A"} and len(conflicts) == 3


def test_max_rule_and_threshold():
    records = _records([("A", "s1", 2, 1e-5, None), ("A", "s2", 2, 2e-4, None)])
    materials, _ = deduplicate(records, "max", 1e-4)
    assert materials.loc[0, C.LOG10_SIGMA] == pytest.approx(math.log10(2e-4)) and materials.loc[0, C.LABEL] == 1
    materials, _ = deduplicate(records, "max", 1e-3)
    assert materials.loc[0, C.LABEL] == 0
    with pytest.raises(ValueError, match="dataset.dedup_rule"):
        deduplicate(records, "mean", 1e-4)


def test_unknown_variant_names_the_key():
    with pytest.raises(KeyError, match="dataset.variant='nope'"):
        select_variant(_records([("A", "s1", 2, 1e-3, None)]), {"x": ["s1"]}, "nope")


def test_dataset_round_trip_keeps_feature_columns(tmp_path):
    materials, _ = deduplicate(_records([("A", "s1", 2, 1e-3, None), ("B", "s1", 3, 1e-6, None)]), "median", 1e-4)
    features = pd.DataFrame({C.COMPOSITION: ["A", "B"], "f1": [1.0, 2.0], "f2": [3.0, 4.0]})
    frame, names = attach_features(materials, features, structural=True)
    assert names[:2] == ["f1", "f2"] and "lattice a/c" in names
    save_dataset(frame, names, tmp_path / "d.parquet")
    loaded, loaded_names = load_dataset(tmp_path / "d.parquet")
    assert loaded_names == names and len(loaded) == 2
