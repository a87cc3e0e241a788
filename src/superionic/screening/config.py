"""Schema for the ``screen`` group (Materials Project screening funnel).

Values live in ``conf/screen/paper.yaml`` (the paper's funnel) only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING

class Release(StrEnum):
    """Materials Project release the funnel screens."""

    # complete 2024 release: MP's own E_hull, band gaps of the Li materials
    mp2024 = "mp2024"
    # 2019 snapshot: own hulls from an incomplete formation-energy file (paper era)
    mp2019 = "mp2019"


@dataclass
class VoxModelConfig:
    """Fourth, flagged V_ox source: a regressor trained on Wang et al. 2024."""

    enabled: bool = MISSING
    n_estimators: int = MISSING
    learning_rate: float = MISSING
    num_leaves: int = MISSING
    min_child_samples: int = MISSING
    # chemical-system-grouped folds for the stated error
    cv_folds: int = MISSING


@dataclass
class RediscoveryConfig:
    """Refit without the pool's labelled materials and their chemical systems."""

    # split-models per ensemble member in the refit (the screening ensemble has classifier.n_splits)
    n_splits: int = MISSING
    # cut-offs for precision@k / recall@k over the pool ranking
    ks: list[int] = MISSING


@dataclass
class ScreenConfig:
    # which release the default funnel, ranking and rediscovery use; the
    # report always puts both releases and the paper side by side
    release: Release = MISSING
    # --- the paper's four filters, applied in this order ---------------------
    # 1. no element of this list in the composition
    # (d-block groups 3-12 plus La and Ac; conf/screen/paper.yaml says why)
    transition_metals: list[str] = MISSING
    # 2. PBE band gap >= band_gap_min (eV)
    band_gap_min: float = MISSING
    # 3. energy above hull <= ehull_max (eV/atom); only ground states have one
    ehull_max: float = MISSING
    # 4. oxidation voltage vs Li/Li+ strictly > oxidation_voltage_min (V)
    oxidation_voltage_min: float = MISSING

    # --- thermodynamics --------------------------------------------------------
    # Numerical tolerance (eV/atom) for "on the hull" and for the facets that
    # touch a composition: E_hull below it counts as 0.
    hull_tol: float = MISSING
    # Worker processes for the phase diagrams (1 = in-process).
    n_jobs: int = MISSING
    # E_hull tolerances (eV/atom) whose funnel and candidates the report tabulates
    ehull_sweep: list[float] = MISSING
    vox_model: VoxModelConfig = field(default_factory=VoxModelConfig)

    # --- prediction --------------------------------------------------------------
    # Applicability domain: mean distance to the k nearest training compositions
    # in standardized feature space; "far" above this quantile of the training
    # set's own (leave-one-out) k-NN distances.
    ad_neighbors: int = MISSING
    ad_quantile: float = MISSING
    # Dask workers scoring the pool in chunks of chunk_size formulas (1 = in-process)
    workers: int = MISSING
    chunk_size: int = MISSING
    # a candidate "worth acting on": calibrated P(superionic) at least this, inside the domain
    p_min: float = MISSING
    # central interval of the split-model probabilities reported as the uncertainty
    interval: float = MISSING
    # nearest training materials listed per candidate
    n_neighbors_shown: int = MISSING
    # ranked candidates shown in the report (all of them are in the CSV)
    top_n: int = MISSING
    # best-ranked new survivors written as the MLIP MD hand-off list (md.mlip.candidates_csv)
    md_handoff_top: int = MISSING
    # well-known conductors whose fate in the funnel the report states
    known_conductors: list[str] = MISSING
    rediscovery: RediscoveryConfig = field(default_factory=RediscoveryConfig)

    # --- outputs -----------------------------------------------------------------
    pool: str = MISSING
    pool2024: str = MISSING
    pool_features: str = MISSING
    voltage: str = MISSING
    thermo: str = MISSING
    funnel: str = MISSING
    predictions: str = MISSING
    report: str = MISSING
    # tables, figures and metrics JSON files of every screening stage
    report_dir: str = MISSING
