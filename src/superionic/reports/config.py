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
class ReferencesConfig:
    ouyang2021: Ouyang2021 = field(default_factory=Ouyang2021)
