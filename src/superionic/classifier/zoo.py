"""The nine classifiers: estimator registry, search-space sampling, pipelines.

Every model is a scikit-learn ``Pipeline`` of median imputation, optional
standardisation and the estimator, so whatever is fitted (imputer medians,
scaler means) is fitted on the rows passed to ``fit`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

IMPUTE_STEP = "impute"
SCALE_STEP = "scale"
MODEL_STEP = "model"

# Which estimator argument carries the seed; None: the estimator is deterministic.
_SEED_ARG: dict[str, str | None] = {
    "gnb": None,
    "logreg": "random_state",
    "tree": "random_state",
    "sgd": "random_state",
    "knn": None,
    "rf": "random_state",
    "gb": "random_state",
    "lgbm": "random_state",
    "xgb": "random_state",
}


def estimator_class(name: str) -> type[ClassifierMixin]:
    """Import lazily: LightGBM and XGBoost are heavy and not every caller needs them."""
    if name == "gnb":
        from sklearn.naive_bayes import GaussianNB

        return GaussianNB
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression
    if name == "tree":
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier
    if name == "sgd":
        from sklearn.linear_model import SGDClassifier

        return SGDClassifier
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier
    if name == "gb":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier
    if name == "lgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier
    if name == "xgb":
        from xgboost import XGBClassifier

        return XGBClassifier
    raise ValueError(f"models.*.estimator: unknown estimator {name!r}; choose from {sorted(_SEED_ARG)}")


def known_estimators() -> list[str]:
    return sorted(_SEED_ARG)


def validate_search_space(model: str, search_space: Mapping[str, Any]) -> None:
    """Fail fast, naming the config key, before any trial runs."""
    for name, spec in search_space.items():
        key = f"models.{model}.search_space.{name}"
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if kind in ("int", "float"):
            if "low" not in spec or "high" not in spec or not float(spec["low"]) <= float(spec["high"]):
                raise ValueError(f"{key}: needs low <= high")
            if spec.get("log") and float(spec["low"]) <= 0:
                raise ValueError(f"{key}: log scale needs low > 0")
        elif kind == "categorical":
            if not list(spec.get("choices") or []):
                raise ValueError(f"{key}: categorical needs non-empty choices")
        else:
            raise ValueError(f"{key}.type must be int, float or categorical, got {kind!r}")


def suggest_params(trial: Any, search_space: Mapping[str, Any]) -> dict[str, Any]:
    """Draw one parameter set from an Optuna trial following a config search space."""
    params: dict[str, Any] = {}
    for name, spec in search_space.items():
        kind = spec.get("type")
        if kind == "int":
            params[name] = trial.suggest_int(
                name, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)),
                log=bool(spec.get("log", False)),
            )
        elif kind == "float":
            params[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False))
            )
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(spec["choices"]))
        else:
            raise ValueError(
                f"search_space.{name}.type must be int, float or categorical, got {kind!r}"
            )
    return params


def build_pipeline(
    spec: Mapping[str, Any], params: Mapping[str, Any] | None = None, seed: int = 0
) -> Pipeline:
    """Imputer (+ scaler) + estimator with ``fixed`` and tuned ``params`` applied."""
    name = spec["estimator"]
    cls = estimator_class(name)
    kwargs: dict[str, Any] = {**dict(spec.get("fixed", {}) or {}), **dict(params or {})}
    seed_arg = _SEED_ARG[name]
    if seed_arg is not None:
        kwargs[seed_arg] = int(seed)
    steps: list[tuple[str, Any]] = [(IMPUTE_STEP, SimpleImputer(strategy="median", keep_empty_features=True))]
    if spec.get("scale", True):
        steps.append((SCALE_STEP, StandardScaler()))
    steps.append((MODEL_STEP, cls(**kwargs)))
    return Pipeline(steps)
