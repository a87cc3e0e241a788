"""Tuning: determinism, resume of an interrupted study, the objective's contract."""

from __future__ import annotations

import optuna
import pytest

from superionic.classifier.data import fingerprint, prepare, synthetic_frame
from superionic.classifier.tune import completed, study_name, tune_model

SPEC = {
    "_target_": "sklearn.tree.DecisionTreeClassifier", "seed_arg": "random_state",
    "fixed": {},
    "search_space": {
        "max_depth": {"type": "int", "low": 1, "high": 8},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 10},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
    },
    "scale": False,
}


@pytest.fixture(scope="module")
def data():
    frame, feats = synthetic_frame(n_rows=120, n_features=15, seed=1)
    return prepare(frame, feats)


def _tune(data, storage, n_trials, seed=0, callbacks=None):
    return tune_model("tree", SPEC, data.X, data.y, n_trials=n_trials, repeats=3, test_size=0.2, seed=seed,
                      seed_offset=1000, sampler="tpe", storage=storage, data_hash=fingerprint(data),
                      callbacks=callbacks)


def test_same_seed_same_result(data, tmp_path):
    a = _tune(data, f"sqlite:///{tmp_path / 'a.db'}", 3)
    b = _tune(data, f"sqlite:///{tmp_path / 'b.db'}", 3)
    assert a == b
    c = _tune(data, f"sqlite:///{tmp_path / 'c.db'}", 3, seed=1)
    assert c["study"] != a["study"]  # the seed is part of the study identity


class _Kill(Exception):
    pass


def test_interrupted_study_resumes_where_it_stopped(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'resume.db'}"
    ran: list[int] = []

    def kill_after_two(study, trial):
        ran.append(trial.number)
        if len(ran) == 2:
            raise _Kill  # the process dies right after trial 2 was stored

    with pytest.raises(_Kill):
        _tune(data, storage, 6, callbacks=[kill_after_two])
    # A hard kill in the middle of a trial leaves it RUNNING in the database.
    studies = optuna.get_all_study_summaries(storage)
    assert len(studies) == 1
    study = optuna.load_study(study_name=studies[0].study_name, storage=storage)
    study.ask()
    assert completed(study) == 2

    resumed: list[int] = []
    result = _tune(data, storage, 6, callbacks=[lambda s, t: resumed.append(t.number)])
    assert len(resumed) == 4  # only the missing trials ran
    assert result["n_complete"] == 6
    assert result["study"] == studies[0].study_name

    again: list[int] = []
    assert _tune(data, storage, 6, callbacks=[lambda s, t: again.append(t.number)]) == result
    assert again == []


def test_study_name_changes_with_data_and_space(data):
    settings = {"repeats": 3}
    base = study_name("tree", SPEC, settings, fingerprint(data))
    other = prepare(*synthetic_frame(n_rows=120, n_features=15, seed=2))
    assert study_name("tree", SPEC, settings, fingerprint(other)) != base
    wider = {**SPEC, "search_space": {**SPEC["search_space"], "max_depth": {"type": "int", "low": 1, "high": 9}}}
    assert study_name("tree", wider, settings, fingerprint(data)) != base
    # a display label is not part of the identity: relabelling resumes the same study
    assert study_name("tree", {**SPEC, "label": "Another name"}, settings, fingerprint(data)) == base


def test_bad_search_space_fails_with_its_key(data, tmp_path):
    bad = {**SPEC, "search_space": {"max_depth": {"type": "integer", "low": 1, "high": 3}}}
    with pytest.raises(ValueError, match="max_depth"):
        tune_model("tree", bad, data.X, data.y, n_trials=1, repeats=2, test_size=0.2, seed=0, seed_offset=0,
                   sampler="tpe", storage=f"sqlite:///{tmp_path / 'x.db'}", data_hash="x")


def _storages(tmp_path):
    from conftest import fresh_postgres_database

    urls = [f"sqlite:///{tmp_path / 'shared.db'}"]
    postgres = fresh_postgres_database()  # .ci/run starts a real server
    if postgres:
        urls.append(postgres)
    return urls


# Continuous parameters: two workers can only propose the same set by replaying one seed.
FLOAT_SPEC = {
    "_target_": "sklearn.tree.DecisionTreeClassifier", "seed_arg": "random_state", "fixed": {"max_depth": 4}, "scale": False,
    "search_space": {"ccp_alpha": {"type": "float", "low": 0.0, "high": 0.05},
                     "min_impurity_decrease": {"type": "float", "low": 0.0, "high": 0.1}},
}


def _worker(data, storage, n_trials, index, study_suffix):
    tune_model("tree", FLOAT_SPEC, data.X, data.y, n_trials=n_trials, repeats=2, test_size=0.2, seed=0,
               seed_offset=1000 + study_suffix, sampler="tpe", storage=storage, data_hash=fingerprint(data),
               worker_index=index, heartbeat_s=1, grace_s=3)


@pytest.mark.slow
def test_two_workers_share_a_fresh_study_exactly(data, tmp_path):
    import multiprocessing as mp
    import uuid

    from superionic.classifier.tune import make_storage

    for storage in _storages(tmp_path):
        suffix = uuid.uuid4().int % 10_000
        ctx = mp.get_context("fork")
        workers = [ctx.Process(target=_worker, args=(data, storage, 12, i, suffix)) for i in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        assert [w.exitcode for w in workers] == [0, 0], storage
        rdb = make_storage(storage)
        name = [s.study_name for s in optuna.get_all_study_summaries(rdb)
                if s.study_name.startswith("tree-")][-1]
        trials = [t for t in optuna.load_study(study_name=name, storage=rdb).trials
                  if t.state == optuna.trial.TrialState.COMPLETE]
        params = [tuple(sorted(t.params.items())) for t in trials]
        assert len(trials) == 12, storage
        assert len(set(params)) == len(params), storage  # no parameter set evaluated twice


def _slow_worker(storage, name):
    from superionic.classifier.tune import make_storage

    study = optuna.create_study(study_name=name, storage=make_storage(storage, 1, 3), load_if_exists=True)
    study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), __import__("time").sleep(60))[0], n_trials=1)


@pytest.mark.slow
def test_trial_of_a_killed_worker_is_failed_and_retried(tmp_path):
    import multiprocessing as mp
    import os
    import signal
    import time

    from superionic.classifier.tune import StopAtTotal, make_storage

    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    worker = mp.get_context("fork").Process(target=_slow_worker, args=(storage, "killed"))
    worker.start()
    rdb = make_storage(storage, 1, 3)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if optuna.load_study(study_name="killed", storage=rdb).get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                break
        except KeyError:
            pass
        time.sleep(0.2)
    time.sleep(1.5)  # at least one heartbeat recorded
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    time.sleep(4)  # past the grace period
    study = optuna.load_study(study_name="killed", storage=rdb)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=5, callbacks=[StopAtTotal(3)])
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1  # the dead worker's trial, never left RUNNING
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert optuna.trial.TrialState.RUNNING not in states
