"""Schema of the ``explore`` group (conf/explore/): a doping space and how to rank it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from omegaconf import MISSING


class Compensation(StrEnum):
    """How a dopant's charge difference is balanced (superionic.explore.space)."""

    li = "li"
    site_vacancy = "site_vacancy"
    none = "none"


@dataclass
class SiteConfig:
    """One substitution slot: dopants on one host element over a grid of amounts per formula unit."""

    host: str = MISSING
    # "Al" (each common oxidation state of the site's sign) or "Al3+" (that state only)
    dopants: list[str] = MISSING
    levels: list[float] = MISSING  # [start, stop, step]


@dataclass
class ExploreConfig:
    host: str = MISSING
    compensation: Compensation = MISSING
    # host element -> oxidation state; the rest from pymatgen's best charge-neutral guess
    oxidation_states: dict[str, float] = MISSING
    sites: list[SiteConfig] = MISSING
    # leave out dopants whose ionic radius differs from the replaced ion's by more
    # than this fraction (null: keep all; the mismatch is a column either way)
    max_radius_mismatch: float | None = MISSING
    # training materials of this structure family are projected onto the map
    family: str | None = MISSING
    # rows re-scored by the full GB + LightGBM ensemble: the top of the ranking, and a
    # random sample that measures how faithfully the fast model ranks like the ensemble
    ensemble_top: int = MISSING
    faithfulness_sample: int = MISSING
    n_neighbors_shown: int = MISSING
    ranked_rows: int = MISSING  # rows of the ranked CSV (the parquet keeps all)
    n_jobs: int = MISSING
    table: str = MISSING
    report_dir: str = MISSING
    report: str = MISSING
