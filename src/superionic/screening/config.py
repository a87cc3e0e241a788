"""Schema for the ``screen`` group (Materials Project screening funnel).

Defaults are mirrored in ``conf/screen/paper.yaml`` (the paper's funnel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# d-block groups 3-12 plus La and Ac: exactly pymatgen's
# ``Element.is_transition_metal`` for the elements present in the Materials
# Project (superheavy elements left out). The other lanthanides (Ce-Lu) and
# actinides (Th-Lr) are f-block and are NOT excluded by the paper's filter.
DEFAULT_TRANSITION_METALS = [
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
    "La", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Ac",
]  # fmt: skip


@dataclass
class ScreenConfig:
    # --- the paper's four filters, applied in this order ---------------------
    # 1. no element of this list in the composition
    transition_metals: list[str] = field(default_factory=lambda: list(DEFAULT_TRANSITION_METALS))
    # 2. PBE band gap >= band_gap_min (eV)
    band_gap_min: float = 1.0
    # 3. energy above hull <= ehull_max (eV/atom); only ground states have one
    ehull_max: float = 0.0
    # 4. oxidation voltage vs Li/Li+ strictly > oxidation_voltage_min (V)
    oxidation_voltage_min: float = 3.7

    # --- thermodynamics --------------------------------------------------------
    # Numerical tolerance (eV/atom) for "on the hull" and for the facets that
    # touch a composition: E_hull below it counts as 0.
    hull_tol: float = 1.0e-6
    # Worker processes for the phase diagrams (1 = in-process).
    n_jobs: int = 1

    # --- prediction --------------------------------------------------------------
    # Applicability domain: mean distance to the k nearest training compositions
    # in standardized feature space; "far" above this quantile of the training
    # set's own (leave-one-out) k-NN distances.
    ad_neighbors: int = 5
    ad_quantile: float = 0.95

    # --- outputs -----------------------------------------------------------------
    pool: str = "data/screening/pool.parquet"
    thermo: str = "data/screening/thermo.parquet"
    funnel: str = "data/screening/funnel.parquet"
    predictions: str = "data/screening/predictions.parquet"
    report: str = "reports/screening.md"
    # tables, figures and metrics JSON files of every screening stage
    report_dir: str = "reports/screening"
