"""Estimators come from each model's ``_target_`` / ``seed_arg`` in conf/model/.

The expected classes and seed arguments below are those of the if-chain and
``_SEED_ARG`` table that ``_target_`` replaced: the pipelines built from config
must hold the same estimator with the same parameters and predict the same.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from omegaconf import OmegaConf
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from superionic.classifier.data import prepare, synthetic_frame
from superionic.classifier.zoo import MODEL_STEP, build_pipeline, estimator_class, suggest_params
from superionic.config import compose

# model -> (class the old if-chain returned, old _SEED_ARG entry)
OLD_REGISTRY = {
    "gnb": ("sklearn.naive_bayes.GaussianNB", None),
    "logreg": ("sklearn.linear_model.LogisticRegression", "random_state"),
    "tree": ("sklearn.tree.DecisionTreeClassifier", "random_state"),
    "sgd": ("sklearn.linear_model.SGDClassifier", "random_state"),
    "knn": ("sklearn.neighbors.KNeighborsClassifier", None),
    "rf": ("sklearn.ensemble.RandomForestClassifier", "random_state"),
    "gb": ("sklearn.ensemble.GradientBoostingClassifier", "random_state"),
    "lgbm": ("lightgbm.LGBMClassifier", "random_state"),
    "xgb": ("xgboost.XGBClassifier", "random_state"),
}
SEED = 7


def _old_class(path: str) -> type:
    """The class exactly as the if-chain imported it (explicit imports, no importlib)."""
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier
    from xgboost import XGBClassifier

    return {
        "sklearn.naive_bayes.GaussianNB": GaussianNB,
        "sklearn.linear_model.LogisticRegression": LogisticRegression,
        "sklearn.tree.DecisionTreeClassifier": DecisionTreeClassifier,
        "sklearn.linear_model.SGDClassifier": SGDClassifier,
        "sklearn.neighbors.KNeighborsClassifier": KNeighborsClassifier,
        "sklearn.ensemble.RandomForestClassifier": RandomForestClassifier,
        "sklearn.ensemble.GradientBoostingClassifier": GradientBoostingClassifier,
        "lightgbm.LGBMClassifier": LGBMClassifier,
        "xgboost.XGBClassifier": XGBClassifier,
    }[path]


@pytest.fixture(scope="module")
def specs():
    return {k: OmegaConf.to_container(v) for k, v in compose().models.items()}


@pytest.fixture(scope="module")
def data():
    frame, features = synthetic_frame(n_rows=60, n_features=12, seed=3)
    return prepare(frame, features)


def _trial_params(spec: dict) -> dict:
    """One seeded draw from the model's search space, kept small to fit fast."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    params = suggest_params(study.ask(), spec["search_space"])
    if "n_estimators" in params:
        params["n_estimators"] = 10
    return params


def test_every_configured_model_is_covered(specs):
    assert set(specs) == set(OLD_REGISTRY)
    for name, spec in specs.items():
        assert "estimator" not in spec, f"models.{name}: the model key is the identifier"
        assert (spec["_target_"], spec["seed_arg"]) == OLD_REGISTRY[name]


@pytest.mark.parametrize("name", sorted(OLD_REGISTRY))
def test_pipeline_from_target_equals_the_old_if_chain(name, specs, data):
    spec = specs[name]
    params = _trial_params(spec)
    old_path, old_seed_arg = OLD_REGISTRY[name]
    old_cls = _old_class(old_path)
    kwargs = {**spec["fixed"], **params, **({old_seed_arg: SEED} if old_seed_arg else {})}

    built = build_pipeline(spec, params, seed=SEED)
    model = built.named_steps[MODEL_STEP]
    assert type(model) is old_cls
    assert model.get_params() == old_cls(**kwargs).get_params()

    steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if spec["scale"]:
        steps.append(("scale", StandardScaler()))
    direct = Pipeline([*steps, ("model", old_cls(**kwargs))])
    assert [s for s, _ in built.steps] == [s for s, _ in direct.steps]
    built.fit(data.X, data.y)
    direct.fit(data.X, data.y)
    np.testing.assert_array_equal(built.predict(data.X), direct.predict(data.X))
    if hasattr(direct, "predict_proba"):
        np.testing.assert_array_equal(built.predict_proba(data.X), direct.predict_proba(data.X))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_package.Classifier", "cannot import module 'no_such_package'"),
        ("sklearn.ensemble.NoSuchForest", "has no attribute 'NoSuchForest'"),
        ("sklearn.linear_model.LinearRegression", "not a scikit-learn classifier"),
        ("GaussianNB", "not a fully qualified class name"),
    ],
)
def test_a_bad_target_names_the_config_key(target, message):
    spec = {"_target_": target, "seed_arg": None, "fixed": {}, "search_space": {}, "scale": True}
    with pytest.raises(ValueError, match=rf"models\.gnb\._target_=.*{message}"):
        estimator_class(spec, "gnb")


def test_a_bad_seed_arg_names_the_config_key():
    spec = {"_target_": "sklearn.tree.DecisionTreeClassifier", "seed_arg": "random state", "fixed": {},
            "search_space": {}, "scale": False}
    with pytest.raises(ValueError, match=r"models\.tree\.seed_arg"):
        build_pipeline(spec, seed=0, name="tree")


def test_heavy_estimators_are_imported_only_when_built():
    import subprocess
    import sys

    code = ("import sys; from superionic.config import compose; from superionic.classifier import zoo; "
            "compose(); assert 'lightgbm' not in sys.modules and 'xgboost' not in sys.modules, 'imported early'")
    subprocess.run([sys.executable, "-c", code], check=True)
