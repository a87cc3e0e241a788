"""Schemas for the classifier track (``model`` group and ``classifier`` section).

Values live in ``conf/`` only (``MISSING`` here): a key the YAML leaves out
fails at load instead of falling back to a second, silently diverging default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING


class Sampler(StrEnum):
    """Optuna sampler of the tuning studies."""

    tpe = "tpe"
    random = "random"


class EnsembleCalibration(StrEnum):
    """Calibration of each ensemble split-model on its own held-out part."""

    sigmoid = "sigmoid"
    isotonic = "isotonic"
    none = "none"


class Calibration(StrEnum):
    """Calibration of the generalization variants on their inner folds."""

    sigmoid = "sigmoid"
    isotonic = "isotonic"


class GeneralizeProtocol(StrEnum):
    """Cross-validation protocols of the generalize stage (superionic.classifier.generalize.PROTOCOLS)."""

    random = "random"
    chemsys = "chemsys"
    family = "family"
    source = "source"


class MemberSelection(StrEnum):
    """Protocols of evaluate's grouped table (grouped_cv.csv) that can pick the ensemble.

    ``grouped_<column>`` exists for each of ``classifier.group_columns``: a new
    group column needs its member here before it can select the ensemble.
    """

    grouped_chemsys = "grouped_chemsys"
    grouped_family = "grouped_family"
    paper_100_splits = "paper_100_splits"


@dataclass
class ModelSpec:
    """One classifier: estimator class, fixed parameters and its Optuna search space.

    Its key under ``models`` (gb, lgbm, ...) is the model's identifier everywhere.
    """

    # Fully qualified estimator class (e.g. sklearn.ensemble.GradientBoostingClassifier),
    # imported and constructed by superionic.classifier.zoo.build_pipeline when a
    # pipeline is built, with fixed + the trial's params (never at compose time).
    _target_: str = MISSING
    # The constructor argument that takes the seed (random_state); null for a
    # deterministic estimator.
    seed_arg: str | None = MISSING
    # Human-readable name for tables and figures.
    label: str = MISSING
    # Constructor arguments that are never tuned (n_jobs, verbosity, ...).
    fixed: dict[str, Any] = MISSING
    # name -> {type: int|float|categorical, low, high, log, step, choices}
    search_space: dict[str, Any] = MISSING
    # Standardise features inside the pipeline (distance/gradient models need it).
    scale: bool = MISSING


# The ``model`` group places one ModelSpec per classifier under ``models.<key>``.
ModelsConfig = dict[str, ModelSpec]


@dataclass
class ClassifierConfig:
    # Which entries of ``models`` this track runs, in table order.
    model_names: list[str] = MISSING
    # --- tuning (Optuna) ---
    n_trials: int = MISSING
    # Objective = mean accuracy over this many stratified shuffle splits of the data.
    tune_repeats: int = MISSING
    # Seeds of the tuning splits start here, away from the evaluation seeds 0..n_splits-1.
    tune_seed_offset: int = MISSING
    sampler: Sampler = MISSING
    # Any SQLAlchemy URL; several workers or machines can share one PostgreSQL study.
    study_storage: str = MISSING
    # Log each trial as a nested MLflow run under one parent run per study.
    log_trials: bool = MISSING
    # This worker's number when several `superionic tune` share one study: it
    # shifts the sampler seed, so workers never replay each other's suggestions.
    worker_index: int = MISSING
    # Optuna heartbeats (s): a trial whose worker stopped beating for grace_s is
    # failed and retried once by the next worker.
    heartbeat_s: int = MISSING
    grace_s: int = MISSING
    # --- the paper's protocol ---
    n_splits: int = MISSING
    test_size: float = MISSING
    # joblib workers at the split level (estimators themselves run single-threaded).
    n_jobs: int = MISSING
    # --- honest generalization: grouped CV ---
    group_folds: int = MISSING
    group_columns: list[str] = MISSING
    # --- ensemble (the paper's surrogate): the ensemble_size best models by accuracy under
    # member_selection, a protocol of evaluate's grouped table ---
    ensemble_size: int = MISSING
    member_selection: MemberSelection = MISSING
    member_candidates: list[str] = MISSING
    # Platt scaling of each split-model on its own held-out 20 %.
    calibration: EnsembleCalibration = MISSING
    # --- importance ---
    top_k: int = MISSING
    # Rows explained by SHAP per member (a fixed, seeded sample keeps it quick).
    shap_max_rows: int = MISSING
    shap_splits: int = MISSING
    # --- outputs ---
    tune_dir: str = MISSING
    evaluate_dir: str = MISSING
    best_params: str = MISSING
    ensemble_model: str = MISSING
    report_dir: str = MISSING
    report: str = MISSING
    metrics: str = MISSING
    # Optional ``dvc exp show --json`` dump for the ablation collector; empty runs dvc.
    ablation_json: str = MISSING
    ablation_report: str = MISSING


@dataclass
class GeneralizeModel:
    """One model of the generalization variants: an estimator entry and fixed parameters."""

    # Key under ``models`` (conf/model/) whose estimator, fixed arguments and scaling are used.
    spec: str = MISSING
    params: dict[str, Any] = MISSING


@dataclass
class StructureAblationConfig:
    """CD vs CD + Li-sublattice features on the materials with an experimental CIF."""

    cif_dir: str = MISSING
    model: str = MISSING
    folds: int = MISSING
    repeats: int = MISSING
    paper_variant: str = MISSING


@dataclass
class PretrainConfig:
    """The Materials Project composition model whose features the ``mp`` block transfers."""

    formation_energy: str = MISSING
    band_gap: str = MISSING
    width: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    learning_rate: float = MISSING
    weight_decay: float = MISSING
    validation_fraction: float = MISSING
    model: str = MISSING
    metrics: str = MISSING


@dataclass
class GeneralizeConfig:
    """Variants scored under grouped CV with calibration and abstention (superionic.classifier.generalize)."""

    feature_sets: dict[str, list[str]] = MISSING
    models: dict[str, GeneralizeModel] = MISSING
    folds: int = MISSING
    inner_folds: int = MISSING
    calibration: Calibration = MISSING
    calibration_bins: int = MISSING
    coverage: float = MISSING
    # grouped protocols whose mean balanced accuracy picks the default variant
    selection: list[GeneralizeProtocol] = MISSING
    source_groups: dict[str, list[str]] = MISSING
    n_jobs: int = MISSING
    structure: StructureAblationConfig = field(default_factory=StructureAblationConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    report_dir: str = MISSING
    report: str = MISSING
    metrics: str = MISSING
    # the default variant's out-of-fold probabilities (DVC-cached, not git)
    out_of_fold: str = MISSING
    model: str = MISSING
