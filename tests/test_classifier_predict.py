"""`superionic predict`: bad rows get a reason, good rows get votes; the file never crashes."""

from __future__ import annotations

from pathlib import Path

import importlib
import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

import superionic.classifier.predict as predict
from superionic.classifier.data import prepare
from superionic.classifier.ensemble import (
    ENSEMBLE_LABEL,
    fit_ensemble,
    load_ensemble,
    proba_col,
    save_ensemble,
    unanimous_col,
    votes_col,
)

ELEMENTS = ["Li", "O", "S", "P", "Zr", "La", "Cl", "Ti"]
FEATURES = [f"frac_{e}" for e in ELEMENTS] + ["n_elements"]
SPECS = {
    "tree": {"_target_": "sklearn.tree.DecisionTreeClassifier", "seed_arg": "random_state", "fixed": {"max_depth": 3}, "search_space": {}, "scale": False},
    "lgbm": {"_target_": "lightgbm.LGBMClassifier", "seed_arg": "random_state", "scale": False, "search_space": {},
             "fixed": {"n_estimators": 15, "num_leaves": 4, "min_child_samples": 3, "n_jobs": 1, "verbose": -1,
                       "deterministic": True, "force_col_wise": True}},
}


def fake_featurize(formulas: list[str]) -> pd.DataFrame:
    """Stand-in for the CD-145 featurizer: element fractions; Xe-containing rows fail as NaN."""
    rows = []
    for f in formulas:
        comp = Composition(f).fractional_composition
        if "Xe" in comp:
            rows.append({c: np.nan for c in FEATURES})
            continue
        row = {f"frac_{e}": float(comp[e]) for e in ELEMENTS}
        row["n_elements"] = float(len(comp))
        rows.append(row)
    return pd.DataFrame(rows, columns=FEATURES)


@pytest.fixture(scope="module")
def ensemble():
    rng = np.random.default_rng(0)
    formulas = []
    for _ in range(80):
        li, la, zr = rng.uniform(0.5, 7), rng.uniform(0.5, 3), rng.uniform(0.5, 2)
        formulas.append(f"Li{li:.2f}La{la:.2f}Zr{zr:.2f}O12")
    frame = fake_featurize(formulas)
    frame["label"] = (frame["frac_Li"] > frame["frac_Li"].median()).astype(int)
    return fit_ensemble(SPECS, {"tree": {}, "lgbm": {}}, prepare(frame, FEATURES), n_splits=3, test_size=0.25,
                        seed=0)


INPUT = ["Li7La3Zr2O12", "Li1.3AL0.3Ti1.7(PO4)3", "", "Xx2O", "Na2Mg0.5Zr1.5(PO4)", "((Li", "LiXeO2",
         "NaN", "Li0.5La0.5TiO3", "  Li3PS4 "]


def test_every_row_comes_back_with_status_and_reason(ensemble):
    frame = pd.DataFrame({"id": range(len(INPUT)), "formula": INPUT})
    out = predict.predict_frame(frame, ensemble, featurize=fake_featurize)
    assert len(out) == len(INPUT)
    assert out["id"].tolist() == list(range(len(INPUT)))  # input order kept
    status = dict(zip(INPUT, out[predict.STATUS], strict=True))
    for bad in ["", "Xx2O", "Na2Mg0.5Zr1.5(PO4)", "((Li", "LiXeO2"]:
        assert status[bad] == predict.REJECTED, bad
    for good in ["Li7La3Zr2O12", "Li1.3AL0.3Ti1.7(PO4)3", "NaN", "Li0.5La0.5TiO3", "  Li3PS4 "]:
        assert status[good] == predict.OK, good
    rejected = out[out[predict.STATUS] == predict.REJECTED]
    assert (rejected[predict.REASON].str.len() > 0).all()
    assert "featurization" in rejected.loc[rejected["formula"] == "LiXeO2", predict.REASON].item()
    ok = out[out[predict.STATUS] == predict.OK]
    for m in ensemble.member_names:
        assert ok[votes_col(m)].between(0, ensemble.n_splits).all()
        assert ok[proba_col(m)].astype(float).between(0, 1).all()
        assert rejected[votes_col(m)].isna().all()
    expected = ok[unanimous_col("tree")].astype(bool) & ok[unanimous_col("lgbm")].astype(bool)
    assert (ok[ENSEMBLE_LABEL].astype(bool) == expected).all()
    assert ok.loc[ok["formula"] == "Li1.3AL0.3Ti1.7(PO4)3", predict.REPAIRS].item()  # repair recorded


def test_featurizer_crash_isolated_to_its_row(ensemble):
    def flaky(formulas):
        if any("Ti" in f for f in formulas):
            raise ValueError("boom")
        return fake_featurize(formulas)

    frame = pd.DataFrame({"formula": ["Li7La3Zr2O12", "Li0.5La0.5TiO3"]})
    out = predict.predict_frame(frame, ensemble, featurize=flaky)
    assert out[predict.STATUS].tolist() == [predict.OK, predict.REJECTED]
    assert "boom" in out[predict.REASON].iloc[1]


def test_missing_formula_column_is_a_clear_error(ensemble):
    with pytest.raises(ValueError, match="formula"):
        predict.predict_frame(pd.DataFrame({"comp": ["Li2O"]}), ensemble, featurize=fake_featurize)


def test_cli_on_a_few_hundred_rows(ensemble, tmp_path, monkeypatch, capsys):
    path = tmp_path / "ens.joblib"
    save_ensemble(ensemble, path)
    assert load_ensemble(path).member_names == ["tree", "lgbm"]
    monkeypatch.setattr(predict, "_default_featurizer", lambda: fake_featurize)
    rng = np.random.default_rng(1)
    rows = [f"Li{rng.uniform(0.5, 7):.2f}La3Zr2O12" for _ in range(250)] + INPUT * 5
    src = tmp_path / "in.csv"
    pd.DataFrame({"formula": rows}).to_csv(src, index=False)
    out_path = tmp_path / "out.csv"
    assert predict.main([str(src), "--ensemble", str(path), "-o", str(out_path), "--trust-model"]) == 0
    out = pd.read_csv(out_path, keep_default_na=False)
    assert len(out) == len(rows)
    assert (out[predict.STATUS] == predict.REJECTED).sum() == 25
    assert "rejected with a reason" in capsys.readouterr().out
    assert predict.main([str(tmp_path / "missing.csv"), "--ensemble", str(path)]) == 2


def _cd145_tree_ensemble():
    """A tiny ensemble over the real CD-145 columns, fitted on random numbers."""
    from superionic.features.composition import composition_feature_labels

    labels = composition_feature_labels()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, len(labels))), columns=labels)
    frame["label"] = (frame[labels[0]] > 0).astype(int)
    spec = {"tree": {"_target_": "sklearn.tree.DecisionTreeClassifier", "seed_arg": "random_state", "fixed": {"max_depth": 2}, "search_space": {}, "scale": False}}
    ens = fit_ensemble(spec, {"tree": {}}, prepare(frame, labels), n_splits=2, test_size=0.25, seed=0)
    return ens


@pytest.mark.slow
def test_real_parser_and_cd145_featurizer(tmp_path):
    """The default path: the project's formula parser and CD-145 featurizer."""
    ens = _cd145_tree_ensemble()
    out = predict.predict_frame(pd.DataFrame({"formula": ["Li7La3Zr2O12", "Li1.2Fe0.2HF1.8 (PO4)3", "Qq"]}), ens)
    assert out[predict.STATUS].tolist() == [predict.OK, predict.OK, predict.REJECTED]
    assert out[predict.N_IMPUTED].iloc[0] == 0


@pytest.mark.parametrize("rows", [["Xx2O"], [], ["Li1e400O", "Li-1O"]])
def test_no_usable_row_still_returns_every_row_with_a_reason(ensemble, rows):
    out = predict.predict_frame(pd.DataFrame({"formula": rows}, dtype=str), ensemble, featurize=fake_featurize)
    assert len(out) == len(rows)
    assert (out[predict.STATUS] == predict.REJECTED).all() and (out[predict.REASON].str.len() > 0).all()
    assert votes_col("tree") in out.columns and ENSEMBLE_LABEL in out.columns


def test_cli_refuses_bad_outputs_and_unreadable_inputs(ensemble, tmp_path, capsys):
    path = tmp_path / "ens.joblib"
    save_ensemble(ensemble, path)
    src = tmp_path / "in.csv"
    src.write_text("formula\nLi2O\n", encoding="utf-8")
    before = src.read_bytes()
    assert predict.main([str(src), "--ensemble", str(path), "-o", str(src)]) == 2
    assert src.read_bytes() == before  # the input is never overwritten
    assert predict.main([str(src), "--ensemble", str(path), "-o", str(tmp_path / "no" / "out.csv")]) == 2
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert predict.main([str(empty), "--ensemble", str(path), "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "is the input file" in err and "does not exist" in err and "empty.csv" in err


def test_cif_lookups_stay_inside_the_cif_dir(tmp_path):
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    (cifs / "a.cif").write_text("data_a\n", encoding="utf-8")
    (tmp_path / "x.cif").write_text("data_x\n", encoding="utf-8")
    frame = pd.DataFrame({"id": ["a", "../x", str(tmp_path / "x"), "missing"]})
    paths = predict._cif_paths(frame, cifs, "id")
    assert paths[0] == (cifs / "a.cif").resolve() and paths[1:] == [None, None, None]


def test_failed_write_leaves_the_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    out.write_text("good\n", encoding="utf-8")

    def broken(self, path, **kwargs):
        Path(path).write_text("trunc", encoding="utf-8")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        predict._write_atomically(pd.DataFrame({"a": [1]}), out)
    assert out.read_text(encoding="utf-8") == "good\n"
    assert list(tmp_path.iterdir()) == [out]


def test_model_file_is_verified_before_it_is_unpickled(ensemble, tmp_path, monkeypatch, capsys):
    from omegaconf import OmegaConf

    import superionic.classifier.ensemble as ens_module
    from superionic.config import compose

    path = tmp_path / "ens.joblib"
    save_ensemble(ensemble, path)
    assert ens_module.read_digest(ens_module.digest_path(path)) == ens_module.file_sha256(path)
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(b"not a pickle at all")

    def never(*args, **kwargs):
        raise AssertionError("joblib.load called on an unverified file")

    monkeypatch.setattr(importlib.import_module("joblib"), "load", never)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_ensemble(evil, expected_sha256=ens_module.file_sha256(path))
    with pytest.raises(FileNotFoundError, match="no model digest"):
        load_ensemble(evil)  # nothing recorded beside it
    # the CLI checks --ensemble against the digest this project's ensemble stage recorded
    cfg = compose()
    OmegaConf.update(cfg, "classifier.ensemble_model", str(path))
    params = tmp_path / "params.yaml"
    params.write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    src = tmp_path / "in.csv"
    src.write_text("formula\nLi2O\n", encoding="utf-8")
    assert predict.main([str(src), "--ensemble", str(evil), "--params", str(params), "-o", str(tmp_path / "o.csv")]) == 2
    assert "refusing to unpickle" in capsys.readouterr().err


@pytest.mark.slow
def test_distributed_predict_on_a_real_two_worker_cluster_matches_in_process():
    """Chunks run on a real two-process Dask LocalCluster with the real parser and CD-145."""
    from omegaconf import OmegaConf

    ens = _cd145_tree_ensemble()
    rows = pd.DataFrame({"formula": ["Li7La3Zr2O12", "Qq", "Li3PS4", "Li1e400O", "LiCl", "Li2O", "Li10GeP2S12"] * 3})
    local = predict.predict_frame(rows, ens)
    cluster = OmegaConf.create({"kind": "local", "n_workers": 2, "address": None})
    spread = predict.predict_distributed(rows, ens, "formula", None, cluster, n_workers=2, chunk_size=4)
    pd.testing.assert_frame_equal(local, spread)


def _deployed(features: list[str]):
    """A tiny generalize-stage model over the fake features plus the Li block."""
    from superionic.classifier import generalize as G

    rng = np.random.default_rng(1)
    formulas = [f"Li{rng.uniform(0.5, 7):.2f}La{rng.uniform(0.5, 3):.2f}Zr{rng.uniform(0.5, 2):.2f}O12"
                for _ in range(90)]  # fmt: skip
    frame = fake_featurize(formulas)
    frame["amounts"] = formulas
    frame["chemsys"] = [f"sys{i % 9}" for i in range(90)]
    y = (frame["frac_Li"] > frame["frac_Li"].median()).astype(int).to_numpy()
    oof = pd.DataFrame({"y": y, "p": np.clip(frame["frac_Li"] * 2, 0, 1)})
    spec = {"_target_": "sklearn.linear_model.LogisticRegression", "seed_arg": "random_state", "fixed": {}, "search_space": {}, "scale": True}
    X = G.feature_table(frame, features, ["cd", "li"])
    return G.fit_deployed(X, y, frame["chemsys"].to_numpy(), features, "cd_li+logreg", ["cd", "li"], spec, {"C": 1.0}, oof,
                          "sigmoid", 3, 0.7, 0, 5, 0.95)


def test_trust_columns_come_with_every_usable_row(ensemble):
    from superionic.classifier.generalize import ABSTAIN, IN_DOMAIN, P_CALIBRATED, TRUST_COLUMNS

    deployed = _deployed(FEATURES)
    out = predict.predict_frame(pd.DataFrame({"formula": INPUT + ["Li3PS4"]}), ensemble,
                                featurize=fake_featurize, deployed=deployed)
    ok = out[predict.STATUS] == predict.OK
    assert set(TRUST_COLUMNS) <= set(out.columns)
    assert out.loc[ok, P_CALIBRATED].between(0, 1).all() and out.loc[~ok, P_CALIBRATED].isna().all()
    assert set(out.loc[ok, ABSTAIN].astype(bool)) <= {True, False}
    # a garnet like the training rows is in the domain; a sulfide with no La or Zr is not
    assert bool(out.loc[out["formula"] == "Li7La3Zr2O12", IN_DOMAIN].item())
    assert not bool(out.loc[out["formula"] == "Li3PS4", IN_DOMAIN].item())
    conf = (out.loc[ok, P_CALIBRATED].astype(float) - 0.5).abs()
    assert (out.loc[ok, ABSTAIN].astype(bool) == (conf < deployed.abstain_below)).all()


def test_trust_model_file_is_verified_like_the_ensemble(ensemble, tmp_path, capsys):
    from superionic.classifier.ensemble import save_model

    ens_path, trust_path = tmp_path / "e.joblib", tmp_path / "g.joblib"
    save_ensemble(ensemble, ens_path)
    save_model(_deployed(FEATURES), trust_path)
    src = tmp_path / "in.csv"
    pd.DataFrame({"formula": ["Li7La3Zr2O12", "Qq"]}).to_csv(src, index=False)
    trust_path.write_bytes(trust_path.read_bytes() + b"tampered")
    args = [str(src), "--ensemble", str(ens_path), "--trust-model-file", str(trust_path), "-o", str(tmp_path / "o.csv")]
    assert predict.main(args) == 2
    assert "does not match the recorded digest" in capsys.readouterr().err


OBELIX_CIFS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "conductivity" / "obelix2025_cifs"


@pytest.mark.skipif(not OBELIX_CIFS.is_dir(), reason="OBELiX CIFs not present")
def test_cif_dir_reads_real_experimental_structures(tmp_path):
    """Disordered published CIFs (partial occupancies) give lattice features, none imputed."""
    from superionic.features.structure import LatticeFeaturizer

    ids = sorted(p.stem for p in OBELIX_CIFS.glob("*.cif"))[:3]
    frame = pd.DataFrame({"formula": ["Li3PS4"] * 3, "id": ids})
    paths = predict._cif_paths(frame, OBELIX_CIFS, "id")
    assert all(p is not None for p in paths)
    for path in paths:
        values = predict.cif_features(path)
        assert list(values) == LatticeFeaturizer().feature_labels()
        assert all(np.isfinite(v) and v > 0 for v in values.values())


def test_chunked_file_prediction_equals_one_shot_and_featurises_each_composition_once(ensemble, tmp_path,
                                                                                    monkeypatch):
    rng = np.random.default_rng(3)
    distinct = [f"Li{rng.uniform(0.5, 7):.2f}La3Zr2O12" for _ in range(40)]
    rows = list(rng.choice(distinct, size=230)) + INPUT * 3
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": range(len(rows)), "formula": rows}).to_csv(src, index=False)
    seen: list[list[str]] = []

    def counting(formulas: list[str]) -> pd.DataFrame:
        seen.append(list(formulas))
        return fake_featurize(formulas)

    frame = pd.read_csv(src, keep_default_na=False, dtype=str)
    one_shot = tmp_path / "one.csv"
    predict._write_atomically(predict.predict_frame(frame, ensemble, featurize=counting), one_shot)
    assert len(seen) == 1 and len(seen[0]) == len(set(seen[0])) <= len(set(rows))
    monkeypatch.setattr(predict, "_default_featurizer", lambda: fake_featurize)
    chunked = tmp_path / "chunked.csv"
    counts = predict.predict_file(src, chunked, ensemble, chunk_rows=37, n_jobs=2)
    assert chunked.read_bytes() == one_shot.read_bytes()
    assert counts[predict.OK] + counts[predict.REJECTED] == len(rows)


def test_single_evaluation_scores_equal_the_library_calls_bit_for_bit():
    """Votes and calibrated probabilities from one model evaluation = model.predict + calibrator.predict_proba."""
    from superionic.classifier import ensemble as E

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 6)), columns=list("abcdef"))
    y = ((X["a"] + 0.5 * X["b"] + rng.normal(scale=0.7, size=300)) > 0).astype(int).to_numpy()
    specs = {
        "gb": {"_target_": "sklearn.ensemble.GradientBoostingClassifier", "seed_arg": "random_state", "fixed": {"n_estimators": 30, "max_depth": 2}, "search_space": {}, "scale": False},
        "lgbm": SPECS["lgbm"],
    }
    data = prepare(X.assign(label=y), list("abcdef"))
    ens = fit_ensemble(specs, {"gb": {}, "lgbm": {}}, data, n_splits=3, test_size=0.3, seed=0)
    query = pd.DataFrame(rng.normal(size=(500, 6)), columns=list("abcdef"))
    query.iloc[:5] = np.nan  # imputed rows too
    table, split_p = ens.assess(query, n_jobs=2)
    expected_p = []
    for member in ens.member_names:
        votes = np.zeros(len(query), dtype=int)
        for model, calibrated in zip(ens.models[member], ens.calibrators[member], strict=True):
            votes += np.asarray(model.predict(query), dtype=int)
            expected_p.append(calibrated.predict_proba(query)[:, 1])
        assert np.array_equal(table[E.votes_col(member)].to_numpy(), votes)
    assert np.array_equal(split_p, np.asarray(expected_p))


@pytest.mark.slow
def test_ensemble_logged_as_an_mlflow_model_predicts_like_the_cli(tmp_path, monkeypatch, request):
    """Formulas in, predict's table out, from the model MLflow stores; a tampered artifact is refused."""
    import mlflow

    from superionic.classifier.ensemble import log_mlflow_model

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    previous = mlflow.get_tracking_uri()
    request.addfinalizer(lambda: mlflow.set_tracking_uri(previous))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("pyfunc")
    ens = _cd145_tree_ensemble()
    path = tmp_path / "ens.joblib"
    save_ensemble(ens, path)
    with mlflow.start_run():
        info = log_mlflow_model(path)
    rows = pd.DataFrame({"formula": ["Li7La3Zr2O12", "Qq", "Li3PS4", "LiCl"]})
    served = mlflow.pyfunc.load_model(info.model_uri).predict(rows)
    pd.testing.assert_frame_equal(served, predict.predict_frame(rows, ens))
    # the artifact is checked against the digest recorded when it was logged
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "copy")))
    artifact = next(local.rglob("ens.joblib"))
    artifact.write_bytes(artifact.read_bytes() + b"x")
    with pytest.raises(ValueError, match="refusing to unpickle"):
        mlflow.pyfunc.load_model(str(local))
