import pandas as pd
import pytest

from superionic.data import columns as C
from superionic.data.ingest import clean_records, composition_key, parse_sigma, read_all_sources
from superionic.data.formula import parse_formula
from superionic.data.sources import SourceFormatError, read_source


def test_censored_conductivity_is_kept_as_bound():
    value = parse_sigma("<1E-10")
    assert value.value == pytest.approx(1e-10) and value.censored == "upper"
    assert parse_sigma(">1e-3").censored == "lower"


@pytest.mark.parametrize("raw, error", [("abc", "not a number"), ("-1e-4", "not positive"), ("0", "not positive"),
                                        ("", "missing"), (float("nan"), "missing")])
def test_bad_conductivity_values_are_named(raw, error):
    assert error in parse_sigma(raw).error


def test_composition_key_is_scale_free():
    assert composition_key(parse_formula("Li2O")) == composition_key(parse_formula("Li4O2"))
    assert composition_key(parse_formula("Li2O")) != composition_key(parse_formula("Li2O2"))


def test_every_row_is_accepted_or_rejected_with_file_row_and_reason(tiny_data_dir):
    raw = read_all_sources(tiny_data_dir)
    accepted, rejected, repairs = clean_records(raw, 15.0, 35.0)
    assert len(accepted) + len(rejected) == len(raw)
    by_reason = {(r.source, r.row): r.reason for r in rejected.itertuples()}
    # Kang row 4 (header is row 1) has the missing-subscript defect.
    assert "missing subscript" in by_reason[("kang2023", 4)]
    # Liverpool Li3PS4 measured at 100 C.
    assert "not room temperature" in by_reason[("liverpool2023", 3)]
    assert "unknown element" in by_reason[("obelix2025", 3)]
    kinds = " ".join(repairs["repair"])
    for expected in ("'AL' -> 'Al'", "'HF' -> 'Hf'", "composite", "stripped surrounding whitespace", "bound"):
        assert expected in kinds
    li2o = accepted[accepted[C.SOURCE] == "obelix2025"].iloc[0]
    assert li2o[C.SIGMA_CENSORED] == "upper" and li2o[C.REDUCED_FORMULA] == "Li2O"
    assert li2o[C.VOLUME] == pytest.approx(4.6**3)


def test_temperature_window_is_configurable(tiny_data_dir):
    raw = read_all_sources(tiny_data_dir, ["liverpool2023"])
    accepted, rejected, _ = clean_records(raw, 15.0, 150.0)
    assert len(accepted) == 3 and rejected.empty


def test_missing_column_names_the_file(tiny_data_dir):
    path = tiny_data_dir / "conductivity" / "xu2020_nasicon_train.csv"
    pd.read_csv(path).drop(columns=["S"]).to_csv(path, index=False)
    with pytest.raises(SourceFormatError, match="xu2020_nasicon_train.csv.*'S'"):
        read_source("xu2020_nasicon_train", tiny_data_dir)


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe\x00binary", b"PK\x03\x04truncated"])
def test_damaged_source_files_are_named(tmp_path, content):
    from superionic.data.sources import _read_csv, _read_excel

    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    if not content.startswith(b"PK"):  # a zip header is a one-column CSV; read_source names its missing columns
        with pytest.raises(ValueError, match="bad.csv"):
            _read_csv(path)
    xlsx = tmp_path / "bad.xlsx"
    xlsx.write_bytes(content)
    with pytest.raises(ValueError, match="bad.xlsx"):
        _read_excel(xlsx)
