"""Schema of ``references``: published values the reports compare against, with their citations.

The values live in ``conf/config.yaml`` only; the templates render them (and
the citation) from the configuration, so no paper figure is written into
report prose or Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class PublishedBoundary:
    """A published linear decision boundary: stable iff alpha*t1 + t2 (relation) beta."""

    alpha: float = MISSING
    beta: float = MISSING
    # "<" or "<=" (checked in superionic.config.RANGES: OmegaConf enums match member names, and
    # these are not identifiers)
    relation: str = MISSING


@dataclass
class Recall:
    """``recalled`` of ``total`` known materials found."""

    recalled: int = MISSING
    total: int = MISSING


@dataclass
class Ouyang2021:
    """NASICON stability descriptors (nasicon.md)."""

    citation: str = MISSING
    short: str = MISSING
    doi: str | None = MISSING
    test_ranking_accuracy: float = MISSING
    svc_accuracy: float = MISSING
    svc_f1: float = MISSING
    dft_stable_fraction: float = MISSING
    boundary: PublishedBoundary = field(default_factory=PublishedBoundary)
    experimental_recall: Recall = field(default_factory=Recall)


@dataclass
class FunnelCounts:
    """Materials left after each screening step (the step names of superionic.screening.columns.STEPS)."""

    pool: int = MISSING
    no_transition_metal: int = MISSING
    band_gap: int = MISSING
    e_hull: int = MISSING
    v_ox: int = MISSING


@dataclass
class Unanimous:
    """Survivors that every split-model of a member (``both``: of all members) votes superionic."""

    gb: int = MISSING
    lgbm: int = MISSING
    both: int = MISSING


@dataclass
class Kang2023:
    """Materials Project screening funnel and its classifier ensemble (screening.md, funnel_counts.csv)."""

    citation: str = MISSING
    in_text: str = MISSING
    doi: str | None = MISSING
    funnel: FunnelCounts = field(default_factory=FunnelCounts)
    unanimous: Unanimous = field(default_factory=Unanimous)


@dataclass
class ReferencesConfig:
    ouyang2021: Ouyang2021 = field(default_factory=Ouyang2021)
    kang2023: Kang2023 = field(default_factory=Kang2023)
