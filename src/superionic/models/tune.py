"""Tune stage: one Optuna study per classifier in a relational database.

Objective: mean accuracy over ``classifier.tune_repeats`` stratified 80/20
splits (seeds from ``classifier.tune_seed_offset``), each model fitted on the
split's training rows only. Studies live at ``classifier.study_storage`` (any
SQLAlchemy URL); the study name carries a hash of the data and the settings,
so a study is resumed only when nothing that shapes its numbers changed. A
killed run resumes by running just the trials still missing, and several
workers can share one study (a callback stops everyone at ``n_trials``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from superionic.models.protocol import evaluate_splits, paper_splits
from superionic.models.zoo import suggest_params, validate_search_space

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"classifier.sampler must be one of {SAMPLERS}, got {name!r}")


def study_name(model: str, spec: Mapping[str, Any], settings: Mapping[str, Any], data_hash: str) -> str:
    payload = json.dumps({"spec": spec, "settings": settings, "data": data_hash}, sort_keys=True, default=str)
    return f"{model}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def make_objective(
    spec: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, repeats: int, test_size: float,
    seed0: int, n_jobs: int = 1,
) -> Callable[[optuna.Trial], float]:
    splits = paper_splits(y, repeats, test_size, seed0=seed0)
    seeds = [seed0 + i for i in range(repeats)]

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, spec["search_space"])
        per_split = evaluate_splits(spec, params, X, y, splits, seeds, n_jobs=n_jobs)
        trial.set_user_attr("accuracy_std", float(per_split["accuracy"].std(ddof=0)))
        return float(per_split["accuracy"].mean())

    return objective


def completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def tune_model(
    model: str, spec: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, *, n_trials: int,
    repeats: int, test_size: float, seed: int, seed_offset: int, sampler: str, storage: str,
    data_hash: str, n_jobs: int = 1, callbacks: list[Callable[..., None]] | None = None,
) -> dict[str, Any]:
    """Create or resume the study and run only the trials still missing."""
    if n_trials < 1:
        raise ValueError(f"classifier.n_trials must be >= 1, got {n_trials}")
    validate_search_space(model, spec["search_space"])
    settings = {"repeats": repeats, "test_size": test_size, "seed": seed, "seed_offset": seed_offset,
                "sampler": sampler}
    name = study_name(model, spec, settings, data_hash)
    # The sampler is seeded with seed + trials already done, so a resumed study
    # explores new points (a fresh RNG would replay the first suggestions) and
    # the result is still a function of the config and the interruption point.
    probe = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    done_before = completed(probe)
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=make_sampler(sampler, seed + done_before),
    )
    remaining = n_trials - done_before
    if remaining > 0:
        log.info("%s: study %s has %d/%d trials, running %d", model, name, done_before, n_trials, remaining)
        objective = make_objective(spec, X, y, repeats, test_size, seed + seed_offset, n_jobs)
        stop = optuna.study.MaxTrialsCallback(n_trials, states=(optuna.trial.TrialState.COMPLETE,))
        study.optimize(objective, n_trials=remaining, callbacks=[*(callbacks or []), stop],
                       catch=(ValueError,), gc_after_trial=False)
    else:
        log.info("%s: study %s already has %d/%d trials", model, name, done_before, n_trials)
    n_failed = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
    if completed(study) == 0:
        raise RuntimeError(f"{model}: every trial failed ({n_failed}); check models.{model}.search_space")
    best = study.best_trial
    return {
        "study": name,
        "params": dict(best.params),
        "accuracy": float(best.value),
        "accuracy_std": float(best.user_attrs.get("accuracy_std", float("nan"))),
        "best_trial": int(best.number),
        "n_complete": completed(study),
        "n_failed": n_failed,
    }


def _trial_logger(model: str) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    import mlflow

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with mlflow.start_run(run_name=f"{model}-trial-{trial.number:03d}", nested=True):
            mlflow.set_tags({"optuna_study": study.study_name, "trial_state": trial.state.name})
            mlflow.log_params({k: str(v) for k, v in trial.params.items()})
            if trial.value is not None:
                mlflow.log_metric("accuracy_mean", trial.value)
            if "accuracy_std" in trial.user_attrs:
                mlflow.log_metric("accuracy_std", trial.user_attrs["accuracy_std"])

    return callback


def write_json(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def model_spec(cfg: DictConfig, name: str) -> dict[str, Any]:
    if name not in cfg.models:
        raise ValueError(f"classifier.model_names: {name!r} has no entry under models (conf/model/)")
    spec = OmegaConf.to_container(cfg.models[name], resolve=True)
    assert isinstance(spec, dict)
    return spec


def run_stage(cfg: DictConfig) -> None:
    import mlflow

    from superionic.models.data import fingerprint, load
    from superionic.tracking import log_metrics, stage_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    c = cfg.classifier
    data = load(cfg.paths.dataset)
    data_hash = fingerprint(data)
    results: dict[str, Any] = {}
    with stage_run("tune", cfg, sections=["classifier", "dataset", "features"]):
        for name in c.model_names:
            spec = model_spec(cfg, name)
            with mlflow.start_run(run_name=f"tune-{name}", nested=True):
                mlflow.set_tag("model", name)
                callbacks = [_trial_logger(name)] if c.log_trials else []
                res = tune_model(
                    name, spec, data.X, data.y, n_trials=c.n_trials, repeats=c.tune_repeats,
                    test_size=c.test_size, seed=cfg.seed, seed_offset=c.tune_seed_offset,
                    sampler=c.sampler, storage=c.study_storage, data_hash=data_hash,
                    n_jobs=c.n_jobs, callbacks=callbacks,
                )
                mlflow.set_tag("optuna_study", res["study"])
                mlflow.log_params({f"best.{k}": str(v) for k, v in res["params"].items()})
                log_metrics({"best_accuracy": res["accuracy"], "n_complete": res["n_complete"]})
            results[name] = res
        log_metrics({f"{k}.best_accuracy": v["accuracy"] for k, v in results.items()})
        write_json({"data_hash": data_hash, "models": results}, c.best_params)
    log.info("wrote %s", c.best_params)
