"""The nine classifiers as composed from conf/: every search space draws fit-able parameters."""

from __future__ import annotations

import optuna
import pytest
from omegaconf import OmegaConf

from superionic.config import compose
from superionic.classifier.data import prepare, synthetic_frame
from superionic.classifier.zoo import model_spec
from superionic.classifier.zoo import MODEL_STEP, build_pipeline, suggest_params, validate_search_space

NINE = ["gnb", "logreg", "tree", "sgd", "knn", "rf", "gb", "lgbm", "xgb"]


@pytest.fixture(scope="module")
def cfg():
    return compose()


def test_nine_models_in_config(cfg):
    assert list(cfg.classifier.model_names) == NINE
    assert set(NINE) <= set(cfg.models)
    assert cfg.classifier.ensemble_size == 2 and cfg.classifier.member_selection == "grouped_chemsys"


def test_unknown_key_in_model_group_fails():
    with pytest.raises(Exception, match="not_a_field"):
        compose(["+models.gb.not_a_field=1"])


@pytest.mark.parametrize("name", NINE)
def test_search_space_samples_fit(cfg, name):
    spec = model_spec(cfg, name)
    validate_search_space(name, spec["search_space"])
    data = prepare(*synthetic_frame(n_rows=60, n_features=8, seed=0))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(2):
        trial = study.ask()
        params = suggest_params(trial, spec["search_space"])
        # keep the fit tiny: the test is about valid parameters, not speed
        if "n_estimators" in params:
            params["n_estimators"] = 5
        model = build_pipeline(spec, params, seed=0).fit(data.X, data.y)
        assert model.predict(data.X).shape == (60,)
        study.tell(trial, 0.0)
    assert type(model.named_steps[MODEL_STEP]).__module__.split(".")[0] in {"sklearn", "lightgbm", "xgboost"}


def test_config_round_trips(cfg):
    spec = OmegaConf.to_container(cfg.models.lgbm)
    assert spec["fixed"]["n_jobs"] == 1 and spec["_target_"] == "lightgbm.LGBMClassifier"


def test_members_are_the_best_under_the_chosen_protocol_with_stable_ties():
    import pandas as pd

    from superionic.classifier.ensemble import select_members

    grouped = pd.DataFrame({
        "model": ["gb", "lgbm", "rf", "gb", "lgbm", "rf"],
        "protocol": ["grouped_chemsys"] * 3 + ["paper_100_splits"] * 3,
        "accuracy": [0.81, 0.82, 0.81, 0.86, 0.85, 0.84],
    })
    assert select_members(grouped, "grouped_chemsys", 2, ["rf", "gb", "lgbm"]) == ["rf", "lgbm"]
    assert select_members(grouped, "grouped_chemsys", 2, ["gb", "rf", "lgbm"]) == ["gb", "lgbm"]
    assert select_members(grouped, "paper_100_splits", 1, ["rf", "gb", "lgbm"]) == ["gb"]
    with pytest.raises(ValueError, match="grouped_family"):
        select_members(grouped, "grouped_family", 2, ["gb"])
    with pytest.raises(ValueError, match="lacks model"):
        select_members(grouped, "grouped_chemsys", 1, ["xgb"])
    with pytest.raises(ValueError, match="ensemble_size"):
        select_members(grouped, "grouped_chemsys", 4, ["rf", "gb", "lgbm"])
