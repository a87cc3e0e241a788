"""The classifiers of ``models``: estimator classes from config, search-space sampling, pipelines.

Every model is a scikit-learn ``Pipeline`` of median imputation, optional
standardisation and the estimator, so whatever is fitted (imputer medians,
scaler means) is fitted on the rows passed to ``fit`` and nothing else.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

IMPUTE_STEP = "impute"
SCALE_STEP = "scale"
MODEL_STEP = "model"


def _key(name: str | None) -> str:
    return f"models.{name or '<name>'}"


def estimator_class(spec: Mapping[str, Any], name: str | None = None) -> type[ClassifierMixin]:
    """The class a model's ``_target_`` names, imported only now.

    LightGBM and XGBoost are heavy and not every caller needs them, so nothing is
    imported before a pipeline of that model is built. ``name`` (the key under
    ``models``) only makes the error messages name the config key.
    """
    key = f"{_key(name)}._target_"
    target = spec.get("_target_") if isinstance(spec, Mapping) else None
    if not isinstance(target, str) or not target:
        raise ValueError(f"{key}: missing; give the estimator's fully qualified class, e.g. "
                         "sklearn.ensemble.GradientBoostingClassifier")
    module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{key}={target!r}: not a fully qualified class name (package.module.Class)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{key}={target!r}: cannot import module {module_name!r} ({exc})") from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise ValueError(f"{key}={target!r}: module {module_name!r} has no attribute {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, ClassifierMixin)):
        raise ValueError(f"{key}={target!r}: not a scikit-learn classifier class")
    return cls


def seed_kwargs(spec: Mapping[str, Any], seed: int, name: str | None = None) -> dict[str, int]:
    """``{seed_arg: seed}``, or nothing when ``seed_arg`` is null (a deterministic estimator)."""
    seed_arg = spec.get("seed_arg")
    if seed_arg is None:
        return {}
    if not isinstance(seed_arg, str) or not seed_arg.isidentifier():
        raise ValueError(f"{_key(name)}.seed_arg={seed_arg!r}: must be an argument name or null")
    return {seed_arg: int(seed)}


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
    spec: Mapping[str, Any], params: Mapping[str, Any] | None = None, seed: int = 0, name: str | None = None
) -> Pipeline:
    """Imputer (+ scaler) + estimator with ``fixed`` and tuned ``params`` applied.

    The estimator is ``spec["_target_"]`` constructed here, per call (never at
    config-compose time): ``params`` differ from trial to trial.
    """
    cls = estimator_class(spec, name)
    kwargs: dict[str, Any] = {**dict(spec.get("fixed", {}) or {}), **dict(params or {}), **seed_kwargs(spec, seed, name)}
    steps: list[tuple[str, Any]] = [(IMPUTE_STEP, SimpleImputer(strategy="median", keep_empty_features=True))]
    if spec.get("scale", True):
        steps.append((SCALE_STEP, StandardScaler()))
    steps.append((MODEL_STEP, cls(**kwargs)))
    return Pipeline(steps)


def model_spec(cfg: Any, name: str) -> dict[str, Any]:
    """``models.<name>`` of the resolved config as a plain dict."""
    from omegaconf import OmegaConf

    if name not in cfg.models:
        raise ValueError(f"classifier.model_names: {name!r} has no entry under models (conf/model/)")
    spec = OmegaConf.to_container(cfg.models[name], resolve=True)
    assert isinstance(spec, dict)
    return spec
