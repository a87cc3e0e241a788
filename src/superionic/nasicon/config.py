"""Schemas for the NASICON track: ``descriptor`` group and ``nasicon`` section.

Defaults here mirror ``conf/descriptor/paper.yaml`` and the ``nasicon:``
section of ``conf/config.yaml``; the YAML files are the source of truth and
these dataclasses make misspelt keys fail. Keys added since carry no default
(``MISSING``): their one value is in the YAML, and a missing one fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


def _default_unary() -> list[str]:
    # The SISSO operator set without the trigonometric/Cauchy ones (sin, cos,
    # scd stay available but are off: they have no physical reading here).
    return ["sq", "cb", "sixth", "inv", "sqrt", "cbrt", "exp", "nexp", "log", "abs"]


def _default_binary() -> list[str]:
    return ["add", "sub", "mul", "div", "absdiff"]


@dataclass
class DescriptorConfig:
    """Operator feature space, SIS and the pairwise machine-learned ranking."""

    # Rung of the SISSO-style construction: 0 = the 14 primaries, 1 = one
    # layer of operators on them, 2 = operators on rung-1 features (the paper's
    # t1 and t2 are rung 2). Every rung but the last is held in memory.
    complexity: int = 2
    unary_ops: list[str] = field(default_factory=_default_unary)
    binary_ops: list[str] = field(default_factory=_default_binary)
    # SISSO's fmax_max: a feature with any |value| above this is skipped.
    max_abs_value: float = 1.0e5
    # A feature whose std on the fit rows is below this fraction of its
    # largest |value| counts as constant and is skipped.
    min_rel_std: float = 1.0e-9
    # 0: the full space. N > 0 (complexity >= 2): the rung below the last is
    # streamed like the last one and only its N best by |r| are combined by
    # the last rung (with every lower rung) -- how rung 3 fits in memory.
    last_rung_basis: int = MISSING
    # Candidate features generated and scored per block.
    chunk_size: int = 2048
    # Upper bound on the memory of the materialized lower rungs (MiB); a
    # complexity whose lower rungs exceed it fails fast instead of swapping.
    max_materialized_mib: int = 2048
    # SIS: number of features kept by |Pearson r| with the target.
    sis_size: int = 2000
    # What r is computed against: "rank" = the ranks of E_hull - T*S_ideal on
    # the fit rows (Spearman-type; the target's tail reaches ~8,000 meV/atom
    # and dominates a raw Pearson r), "raw" = the values themselves.
    sis_target: str = "rank"
    # MLR: ridge term of the least-squares ranking SVM (0 = unregularized).
    ranking_ridge: float = 0.0
    # Number of best descriptors reported (and refitted with a RankSVM).
    top_n: int = 20
    # L2-loss (squared hinge) RankSVM refit of the top descriptors: compound
    # pairs sampled from the fit rows, and its C.
    hinge_pairs: int = 50000
    hinge_c: float = 1.0
    # Threads for the numba pair search.
    n_jobs: int = 2
    # SISSO residual rounds (stage nasicon-sisso): SIS pool size per round,
    # and the largest descriptor dimension searched (1..3). The control
    # without residual rounds searches one pool of max_dimension * this size.
    residual_pool_size: int = MISSING
    max_dimension: int = MISSING


@dataclass
class NasiconPaths:
    data: str = "data/nasicon/nasicon.parquet"
    data_metrics: str = "reports/nasicon/data_metrics.json"
    sis_features: str = "data/nasicon/sis_features.csv"
    sis_matrix: str = "data/nasicon/sis_matrix.npy"
    sis_metrics: str = "reports/nasicon/sis_metrics.json"
    mlr_top: str = "reports/nasicon/mlr_top.csv"
    mlr_metrics: str = "reports/nasicon/mlr_metrics.json"
    svc_metrics: str = "reports/nasicon/svc_metrics.json"
    svc_predictions: str = "data/nasicon/svc_predictions.csv"
    experimental: str = "reports/nasicon/experimental_check.csv"
    report: str = "reports/nasicon.md"
    sisso_table: str = MISSING
    sisso_metrics: str = MISSING
    sisso_descriptor: str = MISSING
    figures: str = "reports/nasicon/figures"
    # Wall times per stage (kept apart from the metrics, which must be
    # bit-identical for the same configuration).
    timings: str = "reports/nasicon/timings"


@dataclass
class NasiconConfig:
    """Data split, stability classes, tolerance-factor SVC, outputs."""

    # Stable (ground state or likely synthesizable): E_hull - T*S_ideal <= this (meV/atom).
    stable_threshold: float = 0.0
    # Stratified (by stability class) share of the authors' training split held
    # out as the MLR validation set; the rest ("fit") feeds SIS and the fits.
    validation_fraction: float = 0.2
    cv_folds: int = 5
    svc_c: float = 1.0
    # Na content per formula unit from which a composition counts as Na-rich.
    na_rich_min: float = 3.0
    paths: NasiconPaths = field(default_factory=NasiconPaths)
