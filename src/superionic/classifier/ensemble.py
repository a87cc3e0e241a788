"""Ensemble stage: the paper's surrogate (Kang 2023) with calibrated probabilities.

Each member (default GB and LightGBM, tuned) is fitted once per paper split on
that split's 80 % training rows, so there are ``n_splits`` split-models per
member. A material is superionic for a member when *all* its split-models
predict it so (unanimous vote, as in the paper); the ensemble label is the
intersection over members.

Probabilities: each split-model is Platt-scaled (``classifier.calibration``) on
its own held-out 20 %, rows it never saw in training; ``proba_<member>`` is the
mean calibrated probability over split-models. Votes use the uncalibrated
classifiers' decisions, exactly as the paper counts them, so a vote and a
probability are two views and can disagree near the boundary.

The screening track relies on this exact interface: ``load_ensemble(path)`` ->
``Ensemble`` with ``feature_columns``, ``member_names``, ``n_splits`` and
``vote(X)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from omegaconf import DictConfig
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from superionic.config import EnsembleCalibration
from superionic.classifier.data import ClassifierData
from superionic.classifier.protocol import Split, paper_splits
from superionic.classifier.zoo import build_pipeline
from superionic.io import (  # noqa: F401 (model persistence lives in io; re-exported for callers)
    DIGEST_SUFFIX, digest_path, file_sha256, load_verified, read_digest, save_model,
)
from superionic.stage import StageResult, progress, stage

log = logging.getLogger(__name__)

ENSEMBLE_LABEL = "ensemble_label"
# the ensemble as an MLflow pyfunc model (superionic.classifier.mlflow_pyfunc)
MLFLOW_ARTIFACT = "ensemble"
MLFLOW_SHA256 = "sha256"
MLFLOW_FORMULA_COLUMN = "formula_column"
CALIBRATIONS = tuple(c.value for c in EnsembleCalibration)


def votes_col(member: str) -> str:
    return f"votes_{member}"


def proba_col(member: str) -> str:
    return f"proba_{member}"


def unanimous_col(member: str) -> str:
    return f"unanimous_{member}"


@dataclass
class Ensemble:
    feature_columns: list[str]
    member_names: list[str]
    n_splits: int
    # member -> one fitted pipeline per split
    models: dict[str, list[Pipeline]] = field(default_factory=dict)
    # member -> one calibrated wrapper per split (None when calibration is "none")
    calibrators: dict[str, list[Any]] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: str = "sigmoid"

    def _matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_columns if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks {len(missing)} feature columns the ensemble needs, e.g. {missing[:5]}")
        return X[self.feature_columns].astype(float)

    def vote(self, X: pd.DataFrame, n_jobs: int = 1) -> pd.DataFrame:
        """Per row: vote counts, mean calibrated probability, unanimity per member,
        and ``ensemble_label`` (unanimous in every member)."""
        return self.assess(X, n_jobs=n_jobs)[0]

    def assess(self, X: pd.DataFrame, n_jobs: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
        """:meth:`vote`'s table and the calibrated probability of every split-model,
        shape (members x n_splits, rows): their spread is the ensemble's uncertainty.

        ``n_jobs`` threads share the split-models: tree prediction in LightGBM
        and scikit-learn runs without the GIL, so threads scale without copying
        the models to processes; every split-model's output is the same either way.
        """
        Xf = self._matrix(X)
        jobs = [(model, calibrated) for member in self.member_names
                for model, calibrated in zip(self.models[member],
                                             self.calibrators.get(member, [None] * self.n_splits), strict=True)]
        if n_jobs > 1 and len(Xf):
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_jobs) as pool:
                results = list(pool.map(lambda job: vote_and_proba(job[0], job[1], Xf), jobs))
        else:
            results = [vote_and_proba(model, calibrated, Xf) for model, calibrated in jobs]
        out = pd.DataFrame(index=X.index)
        label = np.ones(len(Xf), dtype=bool)
        for m, member in enumerate(self.member_names):
            part = results[m * self.n_splits : (m + 1) * self.n_splits]
            votes = np.zeros(len(Xf), dtype=int)
            for vote, _ in part:
                votes += vote
            unanimous = votes == self.n_splits
            out[votes_col(member)] = votes
            out[proba_col(member)] = np.asarray([p for _, p in part]).sum(axis=0) / self.n_splits
            out[unanimous_col(member)] = unanimous
            label &= unanimous
        out[ENSEMBLE_LABEL] = label
        return out, np.asarray([p for _, p in results]).reshape(len(results), len(Xf))


def _response(model: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """The positive-class score a calibrator reads: decision function if the model has one, else P(class 1)."""
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(X), dtype=float)
    return np.asarray(model.predict_proba(X), dtype=float)[:, 1]


def _vote_from_response(model: Pipeline, X: pd.DataFrame, score: np.ndarray) -> np.ndarray | None:
    """``model.predict(X)`` recomputed from its score, for the estimators whose rule is known; None otherwise.

    GradientBoosting predicts class 1 when its raw score is >= 0, exactly.
    LightGBM takes the argmax of [1 - p, p] with p = sigmoid(raw score), so
    class 1 iff raw > 0, except that within rounding of 0 its own sigmoid may
    give p = 0.5 (a tie, class 0): those rows ask the model itself.
    """
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import GradientBoostingClassifier

    final = model[-1] if isinstance(model, Pipeline) else model
    if list(getattr(final, "classes_", [])) != [0, 1]:
        return None
    if isinstance(final, GradientBoostingClassifier):
        return (score >= 0).astype(int)
    if isinstance(final, LGBMClassifier) and not callable(final.objective):
        if not hasattr(model, "decision_function"):  # older LightGBM: the score is p itself
            return np.argmax(np.column_stack([1.0 - score, score]), axis=1)
        vote = (score > 0).astype(int)
        near = np.flatnonzero(np.abs(score) < 1e-9)
        if len(near):
            vote[near] = np.asarray(model.predict(X.iloc[near]), dtype=int)
        return vote
    return None


def _frozen_calibration(calibrated: Any, model: Pipeline) -> list[Any] | None:
    """The calibrators of a CalibratedClassifierCV fitted on ``FrozenEstimator(model)``; None when it is not that."""
    if not isinstance(calibrated, CalibratedClassifierCV) or len(calibrated.classes_) != 2:
        return None
    fitted = calibrated.calibrated_classifiers_
    if not all(getattr(cc.estimator, "estimator", None) is model and len(cc.calibrators) == 1 for cc in fitted):
        return None
    return [cc.calibrators[0] for cc in fitted]


def vote_and_proba(model: Pipeline, calibrated: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One split-model's vote and calibrated P(superionic), evaluating the model once where possible.

    ``model.predict`` plus ``calibrated.predict_proba`` evaluate the trees twice;
    both read the same score, so for the estimators the ensemble uses it is
    computed once and the library's own decision rule and calibration map are
    applied to it (same numbers: a test compares the two paths bit for bit).
    Anything else takes the plain two-call path.
    """
    maps = _frozen_calibration(calibrated, model)
    if maps is not None:
        score = _response(model, X)
        vote = _vote_from_response(model, X, score)
        if vote is not None:
            # CalibratedClassifierCV.predict_proba: the mean over its calibrated
            # classifiers, each map clipped to [0, 1], summed in order
            total = np.zeros(len(score))
            for calibrator in maps:
                p = np.asarray(calibrator.predict(score), dtype=float)
                p[(1.0 < p) & (p <= 1.0 + 1e-5)] = 1.0
                total += p
            return vote, total / len(maps)
    source = calibrated if calibrated is not None else model
    return np.asarray(model.predict(X), dtype=int), np.asarray(source.predict_proba(X), dtype=float)[:, 1]


def _fit_member_split(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, split: Split,
    seed: int, calibration: str,
) -> tuple[Pipeline, Any]:
    train, held = split
    model = build_pipeline(spec, params, seed=seed)
    model.fit(X.iloc[train], y[train])
    if calibration == "none":
        return model, None
    # FrozenEstimator: the calibrator learns only the probability map, on rows
    # the split-model never saw; the model itself is not refitted. With a frozen
    # model the internal CV only splits the held-out rows to collect the same
    # predictions, so the smallest cv avoids spurious small-class warnings.
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=calibration, cv=2)
    calibrated.fit(X.iloc[held], y[held])
    return model, calibrated


def fit_ensemble(
    specs: Mapping[str, Mapping[str, Any]], params: Mapping[str, Mapping[str, Any]], data: ClassifierData,
    n_splits: int, test_size: float, seed: int, calibration: str = "sigmoid", n_jobs: int = 1,
) -> Ensemble:
    if calibration not in CALIBRATIONS:
        raise ValueError(f"classifier.calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    # a plain str: the pickled ensemble must not depend on the schema's enum class
    calibration = str(calibration)
    splits = paper_splits(data.y, n_splits, test_size, seed0=seed)
    ens = Ensemble(feature_columns=list(data.feature_columns), member_names=list(specs), n_splits=n_splits,
                   calibration=calibration, params={k: dict(v) for k, v in params.items()})
    for member, spec in specs.items():
        jobs = (delayed(_fit_member_split)(spec, params[member], data.X, data.y, s, seed + i, calibration)
                for i, s in enumerate(splits))
        # results in split order either way; the generator hands each over as it is done
        done = Parallel(n_jobs=n_jobs, return_as="generator")(jobs) if n_jobs != 1 else (
            _fit_member_split(spec, params[member], data.X, data.y, s, seed + i, calibration)
            for i, s in enumerate(splits))
        fitted = list(progress(done, total=len(splits), label=f"ensemble {member}", unit="split-models"))
        ens.models[member] = [m for m, _ in fitted]
        ens.calibrators[member] = [c for _, c in fitted]
    return ens


def save_ensemble(ens: Ensemble, path: str | Path) -> None:
    save_model(ens, path)


def log_mlflow_model(path: str | Path, name: str = "ensemble") -> Any:
    """Log the saved ensemble to the active MLflow run as a pyfunc model (formulas in, predictions out).

    The model's code is :mod:`superionic.classifier.mlflow_pyfunc`; the fitted
    ensemble travels as an artifact with its SHA-256, checked when loaded.
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from superionic import classifier
    from superionic.tracking import package_versions

    code = Path(classifier.__file__).with_name("mlflow_pyfunc.py")
    # the project itself is the model code and must be installed where the model is loaded
    requirements = [f"{pkg}=={v}" for pkg, v in package_versions().items()
                    if v != "not-installed" and pkg != "superionic"]
    return mlflow.pyfunc.log_model(
        name=name, python_model=str(code), artifacts={MLFLOW_ARTIFACT: str(path)},
        model_config={MLFLOW_SHA256: file_sha256(path), MLFLOW_FORMULA_COLUMN: "formula"},
        signature=ModelSignature(inputs=Schema([ColSpec("string", "formula")])),
        # MLflow runs the logged model on this row, so a model that cannot load fails the stage now
        input_example=pd.DataFrame({"formula": ["Li7La3Zr2O12"]}),
        pip_requirements=requirements,
    )


def load_ensemble(path: str | Path, expected_sha256: str | None = None, trust: bool = False) -> Ensemble:
    """The ensemble, verified against its digest (:func:`load_verified`)."""
    return load_verified(path, Ensemble, "classifier.ensemble_model", "ensemble", expected_sha256, trust)


def training_summary(ens: Ensemble, data: ClassifierData) -> dict[str, Any]:
    """How the ensemble labels its own training materials (a sanity check, not a score)."""
    votes = ens.vote(data.X)
    y = data.y.astype(bool)
    out: dict[str, Any] = {"n_materials": int(len(y)), "n_superionic": int(y.sum())}
    for member in ens.member_names:
        u = votes[unanimous_col(member)].to_numpy()
        out[member] = {"unanimous": int(u.sum()), "unanimous_and_superionic": int((u & y).sum())}
    lab = votes[ENSEMBLE_LABEL].to_numpy()
    out["ensemble"] = {"positive": int(lab.sum()), "positive_and_superionic": int((lab & y).sum()),
                       "precision_on_training": float((lab & y).sum() / max(lab.sum(), 1))}
    return out


ENSEMBLE_SUMMARY_JSON = "ensemble/summary.json"  # the stage's folder under classifier.report_dir
MEMBERS_KEY = "members"


def select_members(grouped: pd.DataFrame, protocol: str, size: int, candidates: Sequence[str]) -> list[str]:
    """The ``size`` candidates with the highest accuracy under ``protocol`` (evaluate's grouped_cv.csv).

    Ties go to the earlier candidate, so the choice is deterministic; the result is in candidate order.
    """
    rows = grouped[grouped["protocol"] == protocol].set_index("model")["accuracy"]
    if rows.empty:
        raise ValueError(f"classifier.member_selection: no {protocol!r} rows in evaluate's grouped table; "
                         f"choose from {sorted(grouped['protocol'].unique())}")
    missing = [m for m in candidates if m not in rows.index]
    if missing:
        raise ValueError(f"evaluate's grouped table lacks model(s) {missing} under {protocol!r}; rerun evaluate")
    if not 1 <= size <= len(candidates):
        raise ValueError(f"classifier.ensemble_size must be in 1..{len(candidates)}, got {size}")
    order = sorted(range(len(candidates)), key=lambda i: (-float(rows[candidates[i]]), i))
    # members keep the candidates' order, so a reordering of the ranking alone changes nothing downstream
    return [candidates[i] for i in sorted(order[:size])]


def chosen_members(cfg: DictConfig) -> list[str]:
    """The members the ensemble stage selected (read from its summary)."""
    path = Path(cfg.classifier.report_dir) / ENSEMBLE_SUMMARY_JSON
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `dvc repro ensemble`")
    return list(json.loads(path.read_text(encoding="utf-8"))[MEMBERS_KEY])


def member_specs(cfg: DictConfig, members: Sequence[str]) -> dict[str, dict[str, Any]]:
    from superionic.classifier.zoo import model_spec

    return {m: model_spec(cfg, m) for m in members}


@stage("ensemble", sections=["classifier", "dataset", "features"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.classifier.data import load
    from superionic.classifier.collect import GROUPED_CSV, load_best
    from superionic.io import write_json

    c = cfg.classifier
    grouped = pd.read_csv(Path(c.report_dir) / GROUPED_CSV)
    candidates = [m for m in c.member_candidates if m in c.model_names]
    members = select_members(grouped, str(c.member_selection), int(c.ensemble_size), candidates)
    log.info("ensemble members by %s accuracy: %s", c.member_selection, members)
    data = load(cfg.paths.dataset)
    specs = member_specs(cfg, members)
    params = load_best(c.best_params, members)
    ens = fit_ensemble(specs, params, data, c.n_splits, c.test_size, cfg.seed, c.calibration, c.n_jobs)
    save_ensemble(ens, c.ensemble_model)
    log_mlflow_model(c.ensemble_model)
    selection = grouped[grouped["protocol"] == c.member_selection].set_index("model")["accuracy"]
    summary = {MEMBERS_KEY: members, "member_selection": {
        "protocol": c.member_selection, "candidates": candidates,
        "accuracy": {m: float(selection[m]) for m in candidates}},
        **training_summary(ens, data)}
    write_json(summary, Path(c.report_dir) / ENSEMBLE_SUMMARY_JSON)
    log.info("wrote %s", c.ensemble_model)
    return StageResult(summary)
