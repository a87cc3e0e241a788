"""Schemas for the classifier track (``model`` group and ``classifier`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class ModelSpec:
    """One classifier: estimator, fixed parameters and its Optuna search space."""

    # Key of ESTIMATORS in superionic.models.zoo (e.g. "gb", "lgbm").
    estimator: str = ""
    # Human-readable name for tables and figures.
    label: str = ""
    # Constructor arguments that are never tuned (n_jobs, verbosity, ...).
    fixed: dict[str, Any] = field(default_factory=dict)
    # name -> {type: int|float|categorical, low, high, log, step, choices}
    search_space: dict[str, Any] = field(default_factory=dict)
    # Standardise features inside the pipeline (distance/gradient models need it).
    scale: bool = True


# The ``model`` group places one ModelSpec per classifier under ``models.<key>``.
ModelsConfig = dict[str, ModelSpec]


@dataclass
class ClassifierConfig:
    # Which entries of ``models`` this track runs, in table order.
    model_names: list[str] = field(
        default_factory=lambda: ["gnb", "logreg", "tree", "sgd", "knn", "rf", "gb", "lgbm", "xgb"]
    )
    # --- tuning (Optuna) ---
    n_trials: int = 20
    # Objective = mean accuracy over this many stratified shuffle splits of the data.
    tune_repeats: int = 5
    # Seeds of the tuning splits start here, away from the evaluation seeds 0..n_splits-1.
    tune_seed_offset: int = 10000
    sampler: str = "tpe"  # tpe | random
    # Any SQLAlchemy URL; several workers or machines can share one PostgreSQL study.
    study_storage: str = "sqlite:///optuna.db"
    # Log each trial as a nested MLflow run under one parent run per study.
    log_trials: bool = True
    # This worker's number when several `superionic tune` share one study: it
    # shifts the sampler seed, so workers never replay each other's suggestions.
    worker_index: int = MISSING
    # Optuna heartbeats (s): a trial whose worker stopped beating for grace_s is
    # failed and retried once by the next worker.
    heartbeat_s: int = MISSING
    grace_s: int = MISSING
    # --- the paper's protocol ---
    n_splits: int = 100
    test_size: float = 0.2
    # joblib workers at the split level (estimators themselves run single-threaded).
    n_jobs: int = 1
    # --- honest generalization: grouped CV ---
    group_folds: int = 5
    group_columns: list[str] = field(default_factory=lambda: ["chemsys", "family"])
    # --- ensemble (the paper's surrogate): the ensemble_size best models by accuracy under
    # member_selection, a protocol of evaluate's grouped table ---
    ensemble_size: int = MISSING
    member_selection: str = MISSING
    member_candidates: list[str] = MISSING
    # Platt scaling of each split-model on its own held-out 20 %.
    calibration: str = "sigmoid"  # sigmoid | isotonic | none
    # --- importance ---
    top_k: int = 20
    # Rows explained by SHAP per member (a fixed, seeded sample keeps it quick).
    shap_max_rows: int = 200
    shap_splits: int = 10
    # --- outputs ---
    best_params: str = "models/best_params.json"
    ensemble_model: str = "models/ensemble.joblib"
    report_dir: str = "reports/classifier"
    report: str = "reports/classifier.md"
    metrics: str = "reports/classifier/metrics.json"
    # Optional ``dvc exp show --json`` dump for the ablation collector; empty runs dvc.
    ablation_json: str = ""
    ablation_report: str = "reports/ablation.md"


@dataclass
class GeneralizeModel:
    """One model of the generalization variants: an estimator entry and fixed parameters."""

    # Key under ``models`` (conf/model/) whose estimator, fixed arguments and scaling are used.
    spec: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)


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
    """Variants scored under grouped CV with calibration and abstention (superionic.models.generalize)."""

    feature_sets: dict[str, list[str]] = MISSING
    models: dict[str, GeneralizeModel] = MISSING
    folds: int = MISSING
    inner_folds: int = MISSING
    calibration: str = MISSING
    calibration_bins: int = MISSING
    coverage: float = MISSING
    selection: list[str] = MISSING
    source_groups: dict[str, list[str]] = MISSING
    n_jobs: int = MISSING
    structure: StructureAblationConfig = field(default_factory=StructureAblationConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    report_dir: str = MISSING
    report: str = MISSING
    metrics: str = MISSING
    model: str = MISSING
