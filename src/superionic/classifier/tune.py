"""Tune stage: one Optuna study per classifier in a relational database.

Objective: mean accuracy over ``classifier.tune_repeats`` stratified 80/20
splits (seeds from ``classifier.tune_seed_offset``), each model fitted on the
split's training rows only. Studies live at ``classifier.study_storage`` (any
SQLAlchemy URL); the study name carries a hash of the data and the settings,
so a study is resumed only when nothing that shapes its numbers changed. A
killed run resumes by running just the trials still missing, and several
workers can share one study (PostgreSQL for many machines):

* each worker seeds its sampler with ``seed + trials done + 7919 x
  classifier.worker_index`` (and TPE's constant liar steers it away from the
  others' running trials), so workers never replay one another;
* a callback stops every worker once finished plus running trials reach
  ``n_trials``, and a trial that starts when they already have (two workers
  passing the check at once) is pruned, the higher trial number standing
  down: exactly ``n_trials`` complete;
* heartbeats: a trial whose worker died is failed after ``classifier.grace_s``
  and retried once by the next worker, never left RUNNING for ever;
* two workers creating the storage's tables at once (a fresh sqlite file or
  database) retry instead of crashing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
import pandas as pd
from omegaconf import DictConfig

from superionic.io import write_json
from superionic.stage import StageResult, stage
from superionic.config import Sampler
from superionic.classifier.protocol import evaluate_splits, paper_splits
from superionic.classifier.zoo import estimator_class, model_spec, suggest_params, validate_search_space

log = logging.getLogger(__name__)

SAMPLERS = tuple(s.value for s in Sampler)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"classifier.sampler must be one of {SAMPLERS}, got {name!r}")


# Keys of a model's config that only name it for people: renaming a model must not restart its study.
DISPLAY_KEYS = frozenset({"label"})


def study_name(model: str, spec: Mapping[str, Any], settings: Mapping[str, Any], data_hash: str) -> str:
    """The study's identity: everything that shapes its trials (search space, estimator, protocol, data)."""
    shaping = {k: v for k, v in spec.items() if k not in DISPLAY_KEYS}
    payload = json.dumps({"spec": shaping, "settings": settings, "data": data_hash}, sort_keys=True, default=str)
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


# Seeds of different workers are this far apart (a prime, larger than any trial count).
WORKER_SEED_STRIDE = 7919
STORAGE_ATTEMPTS = 5


def make_storage(url: str, heartbeat_s: int | None = None, grace_s: int | None = None) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats; schema creation raced by another worker is retried."""
    from sqlalchemy.exc import SQLAlchemyError

    from superionic.tracking import redact

    for attempt in range(STORAGE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                # heartbeats are marked experimental in Optuna; that they are is known and stated here once
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                heartbeats: dict[str, Any] = {} if not heartbeat_s else {
                    "heartbeat_interval": heartbeat_s, "grace_period": grace_s,
                    "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                }
                return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), **heartbeats)
        except SQLAlchemyError as exc:  # "table ... already exists" from a concurrent first run
            if attempt == STORAGE_ATTEMPTS - 1:
                raise ValueError(f"classifier.study_storage: cannot open {redact(url)}: {exc}") from exc
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _engine_kwargs(url: str) -> dict[str, Any]:
    # sqlite: wait for a concurrent writer instead of failing with "database is locked"
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}


class StopAtTotal:
    """Stop every worker once finished plus in-flight trials reach ``n_trials``.

    In flight: waiting (a retry of a failed trial) and running trials that a
    live worker is beating for. Stale ones are failed first; a RUNNING trial
    with no heartbeat at all was left by a worker killed before heartbeats
    started and is not counted, so it can never block the study.
    """

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING)
        total = len(study.get_trials(deepcopy=False, states=states)) + beating_trials(study)
        if total >= self.n_trials:
            study.stop()


def beating_trials(study: optuna.Study, below: int | None = None, fresh_s: float = 0.0) -> int:
    """RUNNING trials of the study with a live heartbeat, or started less than
    ``fresh_s`` ago (their first beat may not be stored yet); 0 without
    heartbeats. Only those numbered below ``below`` when given."""
    import datetime

    heartbeat_ids = _heartbeat_trial_ids(study)
    if heartbeat_ids is None:
        return 0
    since = datetime.datetime.now() - datetime.timedelta(seconds=fresh_s)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return sum(
        1 for t in running
        if (below is None or t.number < below)
        and (t._trial_id in heartbeat_ids or (t.datetime_start is not None and t.datetime_start >= since))
    )


def _heartbeat_trial_ids(study: optuna.Study) -> set[int] | None:
    # create_study wraps an RDB storage in a cache layer; the heartbeats live in the backend
    storage = getattr(study._storage, "_backend", study._storage)
    if not isinstance(storage, optuna.storages.RDBStorage) or storage.heartbeat_interval is None:
        return None
    from optuna.storages._rdb import models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    session = storage.scoped_session()
    try:
        rows = session.query(models.TrialHeartbeatModel.trial_id).join(models.TrialModel).filter(
            models.TrialModel.study_id == study._study_id
        )
        return {row[0] for row in rows}
    finally:
        session.close()


def budget_guard(
    objective: Callable[[optuna.Trial], float], n_trials: int, grace_s: float = 0.0
) -> Callable[[optuna.Trial], float]:
    """Prune a trial that would exceed ``n_trials`` (ties go to the lower trial number).

    Two workers can pass the stop check at the same instant; the one whose
    trial has the higher number then stands down, so exactly ``n_trials``
    complete.
    """

    def guarded(trial: optuna.Trial) -> float:
        study = trial.study
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if done + beating_trials(study, below=trial.number, fresh_s=grace_s) >= n_trials:
            study.stop()
            raise optuna.TrialPruned("the study's n_trials are complete or in flight on other workers")
        return objective(trial)

    return guarded


def completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def tune_model(
    model: str, spec: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, *, n_trials: int,
    repeats: int, test_size: float, seed: int, seed_offset: int, sampler: str, storage: str,
    data_hash: str, n_jobs: int = 1, callbacks: list[Callable[..., None]] | None = None,
    worker_index: int = 0, heartbeat_s: int | None = None, grace_s: int | None = None,
) -> dict[str, Any]:
    """Create or resume the study and run only the trials still missing."""
    if n_trials < 1:
        raise ValueError(f"classifier.n_trials must be >= 1, got {n_trials}")
    validate_search_space(model, spec["search_space"])
    estimator_class(spec, model)  # an unimportable _target_ fails here, naming models.<model>._target_
    settings = {"repeats": repeats, "test_size": test_size, "seed": seed, "seed_offset": seed_offset,
                "sampler": sampler}
    name = study_name(model, spec, settings, data_hash)
    # The sampler is seeded with seed + trials already done, so a resumed study
    # explores new points (a fresh RNG would replay the first suggestions) and
    # the result is still a function of the config and the interruption point.
    rdb = make_storage(storage, heartbeat_s, grace_s)
    probe = _create_study(name, rdb, None)
    done_before = completed(probe)
    study = _create_study(name, rdb, make_sampler(sampler, seed + done_before + WORKER_SEED_STRIDE * worker_index))
    remaining = n_trials - done_before
    if remaining > 0:
        log.info("%s: study %s has %d/%d trials, running %d", model, name, done_before, n_trials, remaining)
        objective = budget_guard(
            make_objective(spec, X, y, repeats, test_size, seed + seed_offset, n_jobs), n_trials, grace_s or 0.0
        )
        stop = StopAtTotal(n_trials)
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


def _create_study(name: str, storage: optuna.storages.BaseStorage, sampler: Any) -> optuna.Study:
    """Create or load; a worker that loses the race to create the study loads the winner's."""
    try:
        return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                   sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


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


@stage("tune", sections=["classifier", "dataset", "features"])
def run_stage(cfg: DictConfig, model: str) -> StageResult:
    """Tune one model (the DVC stage ``tune@<model>``), so editing one model's search space re-tunes only it."""
    import mlflow

    from superionic.classifier.data import fingerprint, load
    from superionic.classifier.collect import tuned_path
    from superionic.tracking import anchored_uri, log_model_spec, workspace_root

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    c = cfg.classifier
    spec = model_spec(cfg, model)
    data = load(cfg.paths.dataset)
    data_hash = fingerprint(data)
    log_model_spec(model, spec)
    callbacks = [_trial_logger(model)] if c.log_trials else []
    res = tune_model(
        model, spec, data.X, data.y, n_trials=c.n_trials, repeats=c.tune_repeats,
        test_size=c.test_size, seed=cfg.seed, seed_offset=c.tune_seed_offset,
        sampler=c.sampler, storage=anchored_uri(c.study_storage, workspace_root()), data_hash=data_hash,
        n_jobs=c.n_jobs, callbacks=callbacks, worker_index=c.worker_index,
        heartbeat_s=c.heartbeat_s, grace_s=c.grace_s,
    )
    mlflow.set_tag("optuna_study", res["study"])
    mlflow.log_params({f"best.{k}": str(v) for k, v in res["params"].items()})
    path = write_json({"data_hash": data_hash, "model": model, **res}, tuned_path(c.tune_dir, model))
    log.info("wrote %s", path)
    return StageResult({f"{model}.best_accuracy": res["accuracy"], f"{model}.n_complete": res["n_complete"]}, [])
