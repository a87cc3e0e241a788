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


# --- each conf/dataset/<variant>.yaml lists its own sources -----------------

# The variant -> sources map that conf/config.yaml's ingest.variants held before
# each dataset option listed its own sources (the data report's order).
OLD_INGEST_VARIANTS = {
    "xu": ["xu2020_nasicon_train", "xu2020_na_li_test"],
    "kang": ["kang2023"],
    "literature": ["kang2023", "xu2020_nasicon_train", "xu2020_na_li_test", "liverpool2023", "obelix2025"],
}


@pytest.mark.parametrize("variant", list(OLD_INGEST_VARIANTS))
def test_each_dataset_option_lists_the_sources_the_old_map_gave_it(variant):
    from superionic.config import compose
    from superionic.data.dataset import variant_sources

    cfg = compose([f"dataset={variant}"])
    assert cfg.dataset.variant == variant and list(cfg.dataset.sources) == OLD_INGEST_VARIANTS[variant]
    assert variant_sources(cfg) == OLD_INGEST_VARIANTS  # same variants, same order, whichever is selected


def test_selection_and_summary_on_tiny_data_match_the_old_map(tiny_data_dir):
    from superionic.config import compose
    from superionic.data.dataset import select_sources, variant_sources, variant_summary
    from superionic.data.ingest import clean_records, read_all_sources

    interim, _, _ = clean_records(read_all_sources(tiny_data_dir), 15.0, 35.0)
    for variant, old_sources in OLD_INGEST_VARIANTS.items():
        cfg = compose([f"dataset={variant}"])
        new = select_sources(interim, list(cfg.dataset.sources), "dataset.sources")
        old = interim[interim[C.SOURCE].isin(old_sources)]
        assert len(new) and set(new[C.SOURCE]) == set(old_sources)
        pd.testing.assert_frame_equal(new, old)
    cfg = compose()
    pd.testing.assert_frame_equal(variant_summary(interim, variant_sources(cfg), "median", 1e-4),
                                  variant_summary(interim, OLD_INGEST_VARIANTS, "median", 1e-4))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("datasets.kang.sources=[kang2023,nope2024]", r"datasets\.kang\.sources: unknown source\(s\) \['nope2024'\]"),
        ("dataset.sources=[kang2023,kang2023]", r"dataset\.sources = .*each once"),
        ("datasets.xu.variant=kang", r"datasets\.xu\.variant = 'kang': must be 'xu'"),
        ("dataset.variant=mine", r"dataset\.variant = 'mine' is not one of datasets"),
    ],
)
def test_dataset_sources_are_checked_against_the_known_sources(override, message):
    from superionic.config import compose

    with pytest.raises(ValueError, match=message):
        compose([override])


def test_a_selected_source_without_ingested_rows_names_the_key():
    from superionic.data.dataset import select_sources

    with pytest.raises(KeyError, match=r"dataset\.sources names sources with no ingested rows: \['s2'\]"):
        select_sources(_records([("A", "s1", 2, 1e-3, None)]), ["s1", "s2"], "dataset.sources")
