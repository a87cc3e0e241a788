"""Schemas for the NASICON track: ``descriptor`` group and ``nasicon`` section.

Values live in ``conf/descriptor/paper.yaml`` and the ``nasicon:`` section of
``conf/config.yaml`` only; these dataclasses make misspelt keys, wrong types
and missing keys fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING


class SisTarget(StrEnum):
    """What SIS correlates the features with."""

    # ranks of E_hull - T*S_ideal on the fit rows (Spearman-type)
    rank = "rank"
    # the values themselves
    raw = "raw"


@dataclass
class DescriptorConfig:
    """Operator feature space, SIS and the pairwise machine-learned ranking."""

    # Rung of the SISSO-style construction: 0 = the 14 primaries, 1 = one
    # layer of operators on them, 2 = operators on rung-1 features (the paper's
    # t1 and t2 are rung 2). Every rung but the last is held in memory.
    complexity: int = MISSING
    # SISSO's operators; conf/descriptor/paper.yaml says which are off and why.
    unary_ops: list[str] = MISSING
    binary_ops: list[str] = MISSING
    # SISSO's fmax_max: a feature with any |value| above this is skipped.
    max_abs_value: float = MISSING
    # A feature whose std on the fit rows is below this fraction of its
    # largest |value| counts as constant and is skipped.
    min_rel_std: float = MISSING
    # 0: the full space. N > 0 (complexity >= 2): the rung below the last is
    # streamed like the last one and only its N best by |r| are combined by
    # the last rung (with every lower rung) -- how rung 3 fits in memory.
    last_rung_basis: int = MISSING
    # Candidate features generated and scored per block.
    chunk_size: int = MISSING
    # Upper bound on the memory of the materialized lower rungs (MiB); a
    # complexity whose lower rungs exceed it fails fast instead of swapping.
    max_materialized_mib: int = MISSING
    # SIS: number of features kept by |Pearson r| with the target.
    sis_size: int = MISSING
    # What r is computed against: "rank" = the ranks of E_hull - T*S_ideal on
    # the fit rows (Spearman-type; the target's tail reaches ~8,000 meV/atom
    # and dominates a raw Pearson r), "raw" = the values themselves.
    sis_target: SisTarget = MISSING
    # MLR: ridge term of the least-squares ranking SVM (0 = unregularized).
    ranking_ridge: float = MISSING
    # Number of best descriptors reported (and refitted with a RankSVM).
    top_n: int = MISSING
    # L2-loss (squared hinge) RankSVM refit of the top descriptors: compound
    # pairs sampled from the fit rows, and its C.
    hinge_pairs: int = MISSING
    hinge_c: float = MISSING
    # Threads for the numba pair search.
    n_jobs: int = MISSING
    # SISSO residual rounds (stage nasicon-sisso): SIS pool size per round,
    # and the largest descriptor dimension searched (1..3). The control
    # without residual rounds searches one pool of max_dimension * this size.
    residual_pool_size: int = MISSING
    max_dimension: int = MISSING


@dataclass
class NasiconPaths:
    data: str = MISSING
    # *_reports: a stage's own output folder (its report files live inside it)
    data_reports: str = MISSING
    data_metrics: str = MISSING
    sis_features: str = MISSING
    sis_matrix: str = MISSING
    sis_reports: str = MISSING
    sis_metrics: str = MISSING
    mlr_reports: str = MISSING
    mlr_top: str = MISSING
    mlr_metrics: str = MISSING
    svc_reports: str = MISSING
    svc_metrics: str = MISSING
    svc_predictions: str = MISSING
    experimental: str = MISSING
    report: str = MISSING
    sisso_reports: str = MISSING
    sisso_table: str = MISSING
    sisso_metrics: str = MISSING
    sisso_descriptor: str = MISSING
    figures: str = MISSING
    # Wall times per stage (kept apart from the metrics, which must be
    # bit-identical for the same configuration).
    timings: str = MISSING


@dataclass
class NasiconConfig:
    """Data split, stability classes, tolerance-factor SVC, outputs."""

    # Stable (ground state or likely synthesizable): E_hull - T*S_ideal <= this (meV/atom).
    stable_threshold: float = MISSING
    # Stratified (by stability class) share of the authors' training split held
    # out as the MLR validation set; the rest ("fit") feeds SIS and the fits.
    validation_fraction: float = MISSING
    cv_folds: int = MISSING
    svc_c: float = MISSING
    # Na content per formula unit from which a composition counts as Na-rich.
    na_rich_min: float = MISSING
    paths: NasiconPaths = field(default_factory=NasiconPaths)
