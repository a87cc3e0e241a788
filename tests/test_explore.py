"""`superionic explore`: doping spaces are validated, enumerated charge-neutral, ranked deterministically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from superionic.data.formula import _is_balanced
from superionic.explore import score as S
from superionic.explore import stage
from superionic.explore.space import (
    COMPOSITION,
    NONE,
    SLOT_DOPANT,
    SpaceError,
    build_space,
    enumerate_space,
)

LAGP = {"host": "LiGe2(PO4)3", "compensation": "li",
        "sites": [{"host": "Ge", "dopants": ["Al", "Ga", "Sc3+"], "levels": [0, 1.0, 0.1]},
                  {"host": "Ge", "dopants": ["Ti"], "levels": [0, 0.5, 0.25]}]}
SPACES = {
    "nasicon co-doping": LAGP,
    "halide, Li vacancies": {"host": "Li3YCl6", "compensation": "li",
                             "sites": [{"host": "Y", "dopants": ["Zr", "Hf4+"], "levels": [0, 1, 0.05]}]},
    "argyrodite anion site": {"host": "Li6PS5Cl", "compensation": "li",
                              "sites": [{"host": "S", "dopants": ["Cl", "Br-"], "levels": [0, 1, 0.1]}]},
    "garnet Li site": {"host": "Li7La3Zr2O12", "compensation": "li",
                       "sites": [{"host": "Li", "dopants": ["Al", "Ga3+"], "levels": [0, 0.4, 0.05]},
                                 {"host": "Zr", "dopants": ["Ta5+", "Nb5+"], "levels": [0, 1, 0.25]}]},
    "site vacancies": {"host": "Li3YCl6", "compensation": "site_vacancy",
                       "sites": [{"host": "Y", "dopants": ["Zr", "Hf4+"], "levels": [0, 0.6, 0.1]}]},
    "isovalent": {"host": "Li3InCl6", "compensation": "none",
                  "sites": [{"host": "In", "dopants": ["Y", "Sc3+"], "levels": [0, 1, 0.25]},
                            {"host": "Cl", "dopants": ["Br"], "levels": [0, 6, 1]}]},
}


@pytest.mark.parametrize("name", SPACES)
def test_every_enumerated_composition_is_charge_neutral_by_the_projects_formula_rules(name):
    space = build_space(SPACES[name])
    enum = enumerate_space(space)
    assert len(enum.design) == space.size - sum(enum.dropped.values())
    assert (enum.amounts >= 0).all()
    for amounts in enum.amounts:
        composition = {el: round(float(n), 8) for el, n in zip(enum.elements, amounts, strict=True) if n > 0}
        assert _is_balanced(composition), composition
    # the formula text reads back as the same composition
    for text, amounts in zip(enum.design[COMPOSITION], enum.amounts, strict=True):
        parsed = Composition(text)
        assert all(abs(parsed[el] - n) < 1e-3 for el, n in zip(enum.elements, amounts, strict=True))


def test_compensation_rules_give_the_textbook_formulas():
    def row(spec, **levels):
        enum = enumerate_space(build_space(spec))
        mask = np.ones(len(enum.design), dtype=bool)
        for col, value in levels.items():
            mask &= enum.design[col].to_numpy() == value
        assert mask.sum() == 1
        return dict(zip(enum.elements, enum.amounts[mask][0], strict=True))

    lagp = row(LAGP, slot1_dopant="Al3+", slot1_x=0.3, slot2_dopant=NONE)
    assert lagp == pytest.approx({"Li": 1.3, "Ge": 1.7, "Al": 0.3, "Ga": 0, "Sc": 0, "Ti": 0, "P": 3, "O": 12})
    zr = row(SPACES["halide, Li vacancies"], slot1_dopant="Zr4+", slot1_x=0.5)
    assert zr["Li"] == pytest.approx(2.5) and zr["Y"] == pytest.approx(0.5)
    garnet = row(SPACES["garnet Li site"], slot1_dopant="Al3+", slot1_x=0.2, slot2_dopant=NONE)
    assert garnet["Li"] == pytest.approx(7 - 3 * 0.2)  # Li7-3xAlxLa3Zr2O12
    vac = row(SPACES["site vacancies"], slot1_dopant="Zr4+", slot1_x=0.3)
    assert vac["Y"] == pytest.approx(1 - 0.4) and vac["Li"] == pytest.approx(3)  # 0.3 Zr4+ for 0.4 Y3+


def test_infeasible_rows_are_dropped_and_counted():
    spec = {"host": "LiGe2(PO4)3", "compensation": "li",
            "sites": [{"host": "Ge", "dopants": ["Nb5+"], "levels": [0, 2, 0.5]},
                      {"host": "Ge", "dopants": ["Ti"], "levels": [0, 2, 1]}]}
    space = build_space(spec)
    enum = enumerate_space(space)
    assert enum.dropped["negative Li content"] > 0  # Li1-x for x > 1
    assert enum.dropped["site over-substituted (negative host amount)"] > 0  # Nb + Ti > 2 Ge
    assert len(enum.design) + sum(enum.dropped.values()) == space.size


@pytest.mark.parametrize(("spec", "message"), [
    ({**LAGP, "sites": [{"host": "Ge", "dopants": ["Xx"], "levels": [0, 1, 0.1]}]}, r"sites\[0\]\.dopants.*'Xx'"),
    ({**LAGP, "compensation": "none"}, "impossible charge balance for Al3\\+"),
    ({**LAGP, "compensation": "site_vacancy"}, "impossible charge balance for Al3\\+"),
    ({**LAGP, "sites": [{"host": "Ge", "dopants": ["Al"], "levels": [0.5, 0.2, 0.1]}]}, "empty range"),
    ({**LAGP, "sites": [{"host": "Ge", "dopants": ["Al"], "levels": [0, 0, 0.1]}]}, "empty range"),
    ({**LAGP, "sites": [{"host": "Ge", "dopants": ["Al"], "levels": [0, 1, 0]}]}, "empty range"),
    ({**LAGP, "sites": [{"host": "Ge", "dopants": ["Al"], "levels": [0, 3, 1]}]}, "only 2 Ge"),
    ({**LAGP, "sites": [{"host": "Zr", "dopants": ["Al"], "levels": [0, 1, 0.1]}]}, "'Zr' is not an element"),
    ({**LAGP, "sites": [{"host": "Ge", "dopants": ["Cl-"], "levels": [0, 1, 0.1]}]}, "cannot sit on a site"),
    ({**LAGP, "sites": []}, "no substitution site"),
    ({**LAGP, "host": "Li((Ge"}, "explore.host"),
    ({**LAGP, "host": "NaZr2(PO4)3", "sites": [{"host": "Zr", "dopants": ["Y"], "levels": [0, 1, .1]}]}, "needs Li"),
    ({**LAGP, "compensation": "magic"}, "explore.compensation"),
])
def test_bad_specs_are_rejected_with_a_one_line_reason(spec, message):
    with pytest.raises(SpaceError, match=message) as info:
        build_space(spec)
    assert "\n" not in str(info.value)


def test_cli_rejects_a_bad_spec_in_one_line(tmp_path, capsys):
    code = stage.main(["--host", "LiGe2(PO4)3", "--site", "Ge:Xx:0:1:0.1", "-o", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "'Xx'" in err and err.count("\n") == 1
    assert stage.main(["--host", "LiGe2(PO4)3", "--site", "Ge:Al:0:1", "-o", str(tmp_path / "o")]) == 2


def test_descriptors_from_the_amount_matrix_equal_those_of_the_written_formulas():
    from superionic.features.cd145 import cd145_frame

    enum = enumerate_space(build_space(LAGP))
    direct = S.descriptors(enum)
    via_text = cd145_frame([Composition(t) for t in enum.design[COMPOSITION]])
    np.testing.assert_allclose(direct.to_numpy(), via_text.to_numpy(), rtol=1e-6, atol=1e-9, equal_nan=True)


def _training_table():
    """A tiny training set: Li1+xAlxGe2-x(PO4)3 and a Li3YCl6 series, superionic above x = 0.35."""
    from superionic.features.cd145 import cd145_frame

    rows = []
    for x in np.round(np.arange(0.0, 1.0, 0.1), 2):
        rows.append((f"Li{1 + x:g}Al{x:g}Ge{2 - x:g}P3O12", "NASICON", x > 0.35))
        rows.append((f"Li{1 + x:g}Ga{x:g}Ge{2 - x:g}P3O12", "NASICON", x > 0.55))
        rows.append((f"Li{3 - x:g}Zr{x:g}Y{1 - x:g}Cl6", "Halide", x > 0.25))
    frame = pd.DataFrame(rows, columns=["amounts", "family", "label"])
    frame["label"] = frame["label"].astype(int)
    frame["reduced_formula"] = frame["amounts"]
    frame["sigma"] = np.where(frame["label"] == 1, 1e-3, 1e-6)
    frame["chemsys"] = [Composition(a).chemical_system for a in frame["amounts"]]
    cd = cd145_frame([Composition(a) for a in frame["amounts"]])
    return pd.concat([frame, cd], axis=1), list(cd.columns)


@pytest.fixture(scope="module")
def models():
    from superionic.classifier import generalize as G
    from superionic.classifier.data import prepare
    from superionic.classifier.ensemble import fit_ensemble

    lgbm = {"_target_": "lightgbm.LGBMClassifier", "seed_arg": "random_state", "scale": False, "search_space": {},
            "fixed": {"n_estimators": 20, "num_leaves": 4, "min_child_samples": 3, "n_jobs": 1, "verbose": -1,
                      "deterministic": True, "force_col_wise": True}}
    data = prepare(*_training_table())
    train, cd_cols = data.frame, data.feature_columns
    X = G.feature_table(train, cd_cols, ["cd", "li"])
    oof = pd.DataFrame({"y": data.y, "p": np.clip(train["label"] * 0.8 + 0.1, 0, 1)})
    deployed = G.fit_deployed(X, data.y, train["chemsys"].to_numpy(), cd_cols, "cd_li+lgbm", ["cd", "li"], lgbm, {},
                              oof, "sigmoid", 2, 0.7, 0, 3, 0.95)
    gb = {"_target_": "sklearn.ensemble.GradientBoostingClassifier", "seed_arg": "random_state", "fixed": {"n_estimators": 20, "max_depth": 2}, "search_space": {}, "scale": False}
    ensemble = fit_ensemble({"gb": gb, "lgbm": lgbm}, {"gb": {}, "lgbm": {}}, data, n_splits=3, test_size=0.3, seed=0)
    return deployed, ensemble, train


def _spec(tmp_path):
    return {**LAGP, "oxidation_states": {}, "family": "NASICON", "ensemble_top": 10, "faithfulness_sample": 40,
            "n_neighbors_shown": 2, "ranked_rows": 25, "n_jobs": 2, "table": str(tmp_path / "space.parquet"),
            "report_dir": str(tmp_path / "explore"), "report": str(tmp_path / "explore.md")}


def test_explore_ranks_deterministically_and_marks_the_measured_series(models, tmp_path):
    from superionic.classifier.generalize import P_CALIBRATED

    deployed, ensemble, train = models
    spec = _spec(tmp_path)
    first = stage.explore(spec, deployed, ensemble, train, seed=0)
    again = stage.explore(spec, deployed, ensemble, train, seed=0)
    pd.testing.assert_frame_equal(first.ranked, again.ranked)
    ranked = first.ranked
    assert ranked[S.RANK].tolist() == list(range(1, len(ranked) + 1))
    assert (np.diff(ranked[P_CALIBRATED].to_numpy()) <= 0).all()
    assert ranked[S.P_ENSEMBLE].head(10).notna().all()
    assert (ranked[S.NEAREST].head(25) != "").all() and (ranked[S.NEAREST].iloc[25:] == "").all()
    # every Al and Ga grid point of the training series is found (the Halide rows are not in this space)
    known = first.known
    assert set(known[S.KNOWN_FORMULA]) == {a for a, f in zip(train["amounts"], train["family"], strict=True)
                                       if f == "NASICON"}
    assert (known[SLOT_DOPANT.format(1)].isin(["Al3+", "Ga3+", NONE])).all()
    figures = stage.write_outputs(first, spec)
    assert figures["known_compositions"] == len(known)
    for name in (stage.RANKED_CSV, stage.KNOWN_CSV, stage.METRICS_JSON, stage.FIGURE):
        assert (tmp_path / "explore" / name).stat().st_size > 0
    text = (tmp_path / "explore.md").read_text(encoding="utf-8")
    assert "Spearman" in text and "Measured compositions" in text
    assert pd.read_parquet(spec["table"])[COMPOSITION].tolist() == ranked[COMPOSITION].tolist()


def test_neighbour_names_refuse_a_training_table_in_another_order(models):
    deployed, _, train = models
    X = deployed.train_features.head(3)
    with pytest.raises(ValueError, match="does not match"):
        S.neighbours(X, deployed, train.iloc[::-1], 2)


def test_size_rule_leaves_out_mismatched_dopants_and_says_which():
    spec = {**LAGP, "max_radius_mismatch": 0.35,
            "sites": [{"host": "Ge", "dopants": ["Al", "B", "La", "Ga"], "levels": [0, 1, 0.5]}]}
    space = build_space(spec)
    slot = space.slots[0]
    assert [d.label for d in slot.dopants] == ["Al3+", "Ga3+"]
    assert {label for label, _ in slot.excluded} == {"B3+", "La3+"}
    assert all(m > 0.35 for _, m in slot.excluded) and all(m <= 0.35 for m in slot.mismatch)
    enum = enumerate_space(space)
    assert enum.design.loc[enum.design["slot1_dopant"] == NONE, "radius_mismatch"].eq(0).all()
    assert enum.design["radius_mismatch"].between(0, 0.35).all()
    with pytest.raises(SpaceError, match="every dopant exceeds"):
        build_space({**spec, "sites": [{"host": "Ge", "dopants": ["La"], "levels": [0, 1, 0.5]}]})
    with pytest.raises(SpaceError, match="max_radius_mismatch"):
        build_space({**spec, "max_radius_mismatch": -1})


def test_cli_refuses_unknown_spec_keys(tmp_path, capsys):
    spec = tmp_path / "space.yaml"
    spec.write_text("host: Li3YCl6\nsites: [{host: Y, dopants: [Zr], levels: [0, 1, 0.1]}]\nbogus: 1\n",
                    encoding="utf-8")
    assert stage.main(["--spec", str(spec), "-o", str(tmp_path / "out")]) == 2
    assert "unknown key(s) ['bogus']" in capsys.readouterr().err
