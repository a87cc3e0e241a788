"""Funnel stage: each filter on tiny tables, counts and anion breakdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from superionic.config import compose
from superionic.screening import columns as C
from superionic.screening.funnel import (
    Thresholds,
    anion_breakdown,
    apply_filters,
    compare_releases,
    funnel_counts,
    tolerance_sweep,
)
from superionic.screening.voltage import V_OX_ERROR

PAPER = Thresholds(
    transition_metals=frozenset(["Ti", "Zr", "Y", "La"]),
    band_gap_min=1.0,
    ehull_max=0.0,
    oxidation_voltage_min=3.7,
)


def _table(**overrides):
    base = {
        C.TASK_ID: ["mp-1"],
        C.REDUCED_FORMULA: ["LiF"],
        C.CHEMSYS: ["F-Li"],
        C.BAND_GAP: [8.0],
        C.ANION_CLASS: ["halide"],
        C.BAND_GAP_NOTE: ["gap file"],
        C.E_HULL: [0.0],
        C.E_HULL_NOTE: [""],
        C.V_OX: [6.4],
        C.V_OX_SOURCE: ["wang2024"],
        V_OX_ERROR: [np.nan],
    }
    base.update({k: [v] for k, v in overrides.items()})
    return pd.DataFrame(base)


def _verdict(**overrides):
    row = apply_filters(_table(**overrides), PAPER).iloc[0]
    return row[C.FAILED_AT], row[C.FAIL_REASON]


def test_survivor_passes_every_filter():
    assert _verdict() == ("", "")


def test_transition_metal_filter():
    failed_at, reason = _verdict(**{C.CHEMSYS: "Cl-Li-Y", C.REDUCED_FORMULA: "Li3YCl6"})
    assert failed_at == "no_transition_metal" and "Y" in reason
    # Ce is f-block, not in the list: it passes this filter
    assert _verdict(**{C.CHEMSYS: "Ce-Li-O"})[0] == ""


@pytest.mark.parametrize(("gap", "failed"), [(0.99, "band_gap"), (1.0, ""), (1.01, "")])
def test_band_gap_filter_is_inclusive(gap, failed):
    assert _verdict(**{C.BAND_GAP: gap})[0] == failed


def test_unknown_band_gap_fails_with_its_note():
    assert _verdict(**{C.BAND_GAP: np.nan, C.BAND_GAP_NOTE: "absent: gap < 0.5 eV"}) == ("band_gap", "absent: gap < 0.5 eV")


def test_e_hull_filter_and_non_ground_states():
    assert _verdict(**{C.E_HULL: 0.001})[0] == "e_hull"
    failed_at, reason = _verdict(**{C.E_HULL: np.nan, C.V_OX: np.nan, C.E_HULL_NOTE: "not ground state: x"})
    assert (failed_at, reason) == ("e_hull", "not ground state: x")
    loose = Thresholds(PAPER.transition_metals, 1.0, 0.05, 3.7)
    assert apply_filters(_table(**{C.E_HULL: 0.001}), loose).iloc[0][C.SURVIVES]


@pytest.mark.parametrize(("v_ox", "failed"), [(3.7, "v_ox"), (3.71, ""), (np.nan, "v_ox")])
def test_oxidation_voltage_filter_is_strict(v_ox, failed):
    assert _verdict(**{C.V_OX: v_ox})[0] == failed


@pytest.mark.parametrize(
    ("v_ox", "status"), [(4.5, "pass"), (3.9, "unknown"), (3.5, "unknown"), (2.9, "fail"), (np.nan, "unknown")]
)
def test_estimates_decide_only_outside_their_error(v_ox, status):
    row = apply_filters(_table(**{C.V_OX: v_ox, C.V_OX_SOURCE: "ml-estimate", V_OX_ERROR: 0.7}), PAPER).iloc[0]
    assert row[C.V_OX_STATUS] == status
    assert row[C.SURVIVES] == (status == "pass")
    if status == "unknown":
        assert "unknown" in row[C.FAIL_REASON] or "within its error" in row[C.FAIL_REASON]


def test_filters_apply_in_order_and_counts_are_cumulative():
    table = pd.concat(
        [
            _table(),
            _table(**{C.TASK_ID: "mp-2", C.CHEMSYS: "Li-O-Ti", C.BAND_GAP: 0.0, C.E_HULL: 0.5}),
            _table(**{C.TASK_ID: "mp-3", C.BAND_GAP: 0.2, C.E_HULL: 0.5, C.ANION_CLASS: "oxide"}),
            _table(**{C.TASK_ID: "mp-4", C.E_HULL: 0.5, C.V_OX: 1.0, C.ANION_CLASS: "oxide"}),
            _table(**{C.TASK_ID: "mp-5", C.V_OX: 1.0, C.ANION_CLASS: "sulfide"}),
            _table(**{C.TASK_ID: "mp-6", C.REDUCED_FORMULA: "Li3PS4", C.ANION_CLASS: "sulfide"}),
        ],
        ignore_index=True,
    )
    filtered = apply_filters(table, PAPER)
    # first failure only, even when later filters fail too
    assert filtered[C.FAILED_AT].tolist() == ["", "no_transition_metal", "band_gap", "e_hull", "v_ox", ""]
    counts = funnel_counts(filtered)
    assert counts["n"].tolist() == [6, 5, 4, 3, 2, 0]
    assert counts["n_formulas"].tolist()[-2] == 2
    paper = {"pool": 20237, "no_transition_metal": 3190, "band_gap": 1859, "e_hull": 567, "v_ox": 468}
    compare = compare_releases({"mp2024": filtered, "mp2019": filtered.iloc[:3]}, paper)
    assert compare["mp2024"].tolist() == [6, 5, 4, 3, 2, 0]
    assert compare["mp2019"].tolist() == [3, 2, 1, 1, 1, 0]
    assert compare["paper"].tolist()[:5] == [20237, 3190, 1859, 567, 468]
    anions = anion_breakdown(filtered).set_index("anion_class")
    assert anions.loc["halide", "v_ox"] == 1 and anions.loc["sulfide", "v_ox"] == 1
    assert anions["pool"].sum() == 6
    sweep = tolerance_sweep(table, PAPER, [0.0, 0.5]).set_index("ehull_max")
    assert sweep.loc[0.0, "v_ox"] == 2 and sweep.loc[0.5, "e_hull"] == 4


def test_thresholds_from_real_config_and_bad_values():
    cfg = compose()
    t = Thresholds.from_config(cfg.screen)
    assert (t.band_gap_min, t.ehull_max, t.oxidation_voltage_min) == (1.0, 0.0, 3.7)
    assert "Ti" in t.transition_metals and "Ce" not in t.transition_metals
    OmegaConf.update(cfg, "screen.transition_metals", ["Ti", "Xx"])
    with pytest.raises(ValueError, match="screen.transition_metals"):
        Thresholds.from_config(cfg.screen)


@pytest.mark.parametrize(
    ("key", "value"), [("band_gap_min", 0.3), ("ehull_max", 0.1), ("ehull_sweep", [0.0, 0.2]), ("ehull_max", -0.01)]
)
def test_thresholds_outside_the_gap_file_coverage_are_refused(key, value):
    cfg = compose()
    OmegaConf.update(cfg, f"screen.{key}", value)
    with pytest.raises(ValueError, match=f"screen.{key}"):
        Thresholds.from_config(cfg.screen)


def test_transition_metal_list_is_pymatgens():
    from pymatgen.core import Element

    cfg = compose()
    pymatgen_tms = {e.symbol for e in Element if e.is_transition_metal and e.Z < 104}
    assert set(cfg.screen.transition_metals) == pymatgen_tms


def test_writers_never_leave_a_truncated_file(tmp_path, monkeypatch):
    from superionic.io import write_csv

    target = tmp_path / "out.csv"
    write_csv(pd.DataFrame({"a": [1.0]}), target)
    good = target.read_bytes()

    def broken(self, path, **kwargs):
        Path(path).write_text("trunc", encoding="utf-8")
        raise OSError("file too large")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="file too large"):
        write_csv(pd.DataFrame({"a": [2.0]}), target)
    assert target.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
