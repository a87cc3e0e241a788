"""Li-sublattice descriptors of ion transport from experimental crystal structures.

For the "does structure help?" ablation: composition alone cannot see how
Li is arranged, so these features describe the Li sublattice and its anion
framework in a published (CIF) structure. Experimental structures are often
disordered (partial and mixed occupancies), and ordering them by enumeration
is far too slow and arbitrary, so every site counts with its occupancy as a
weight: a site {Li: 0.5, Na: 0.5} is 0.5 Li.

Anion rule: a species is an anion if its element is O, S, Se, Te, F, Cl, Br,
I or N, whatever oxidation state (if any) the CIF gives. In Li electrolytes
these elements are the framework anions, and CIF oxidation states are rarely
given or reliable for doped compositions. (N in a nitrate would be miscounted;
no such compound is in the data.)
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from pymatgen.io.cif import CifParser

# Shannon (1976) effective ionic radii in Å, CN 6 (N3- only has CN 4 tabulated).
# A fixed table keeps the packing fraction comparable across compounds.
ANION_RADII: dict[str, float] = {
    "O": 1.40,
    "S": 1.84,
    "Se": 1.98,
    "Te": 2.21,
    "F": 1.33,
    "Cl": 1.81,
    "Br": 1.96,
    "I": 2.20,
    "N": 1.46,
}

LI_SUBLATTICE_FEATURES: tuple[str, ...] = (
    "struct li-li nearest mean",
    "struct li-li nearest min",
    "struct li neighbours within 3.5",
    "struct li density",
    "struct li partial fraction",
    "struct volume per anion",
    "struct anion packing fraction",
    "struct li-anion nearest mean",
    "struct li-anion coordination 3.0",
)

LI_LI_SHELL = 3.5  # Å: Li-Li hop distances in fast conductors are ~2-3.5 Å
LI_ANION_SHELL = 3.0  # Å: covers Li-O (~2.0) to Li-I (~2.9) first shells
_SEARCH_RADIUS = 6.0  # Å: first search; larger only for sites with no hit
_PARTIAL_BELOW = 0.99  # Li occupancy below this counts as partial (refinement rounding)
_COINCIDENT = 1e-6  # Å: a "neighbour" this close is the centre itself


def _site_weights(structure: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-site Li occupancy, anion occupancy and occupancy-weighted anion r^3."""
    n = len(structure)
    li, anion, r3 = np.zeros(n), np.zeros(n), np.zeros(n)
    for i, site in enumerate(structure):
        for sp, occu in site.species.items():
            # .symbol is the bare element for Element and Species (Li+ -> Li).
            symbol = getattr(sp, "symbol", str(sp))
            if symbol == "Li":
                li[i] += occu
            elif symbol in ANION_RADII:
                anion[i] += occu
                r3[i] += occu * ANION_RADII[symbol] ** 3
    return li, anion, r3


def _pairs(structure: Structure, centres: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre site index, neighbour site index, distance) for pairs within r of the centres."""
    sites = [structure[int(i)] for i in centres]
    # exclude_self=False: with a subset of centres pymatgen compares subset
    # positions against structure indices, so we drop the zero-distance self
    # pair ourselves (coincident sites are merged by the CIF parser).
    c, p, _, d = structure.get_neighbor_list(r, sites=sites, exclude_self=False)
    keep = d > _COINCIDENT
    return centres[c[keep]], p[keep], d[keep]


def _nearest(structure: Structure, centres: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Distance from each centre to the nearest site with target weight > 0 (NaN if no targets)."""
    out = np.full(len(centres), np.nan)
    if not len(centres) or not (target > 0).any():
        return out
    # Beyond the first radius, half the sum of the cell edges bounds the
    # distance from any point to the nearest lattice image of any site.
    fallback = 0.5 * sum(structure.lattice.abc) + 0.01
    todo = np.arange(len(centres))
    for r in (_SEARCH_RADIUS, max(fallback, _SEARCH_RADIUS)):
        c, p, d = _pairs(structure, centres[todo], r)
        hit = target[p] > 0
        best = np.full(len(structure), np.inf)
        np.minimum.at(best, c[hit], d[hit])
        out[todo] = best[centres[todo]]
        todo = todo[~np.isfinite(out[todo])]
        if not len(todo):
            break
    out[~np.isfinite(out)] = np.nan
    return out


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    ok = np.isfinite(values) & (weights > 0)
    return float(np.average(values[ok], weights=weights[ok])) if ok.any() else math.nan


def li_sublattice_features(structure: Structure) -> dict[str, float]:
    """Li-sublattice and anion-framework features of one (possibly disordered) structure.

    Why each feature matters:
    - li-li nearest mean/min (Å): the hop length between Li sites; short Li-Li
      distances (including split partial sites) mean a connected, low-barrier path.
    - li neighbours within 3.5: occupancy-weighted Li within hopping range of a
      Li site, averaged over Li weight; a percolating Li network needs several.
    - li density (Li/Å^3): carrier concentration, the prefactor of conductivity.
    - li partial fraction: share of Li weight on sites with Li occupancy < 0.99;
      partially occupied (disordered) Li is a hallmark of superionics.
    - volume per anion (Å^3): framework openness; larger means wider bottlenecks.
    - anion packing fraction: anion volume (fixed Shannon radii) / cell volume;
      loose packing and large polarisable anions lower migration barriers.
    - li-anion nearest mean (Å): Li-anion bond length, weaker bonds move easier.
    - li-anion coordination 3.0: occupancy-weighted anions within 3.0 Å of Li,
      a bond-valence-style crowding proxy; low coordination means frustrated Li.

    No Li gives NaN for the Li features; no anions gives NaN for anion features.
    """
    li, anion, r3 = _site_weights(structure)
    volume = float(structure.volume)
    li_idx = np.flatnonzero(li > 0)
    w = li[li_idx]
    out = dict.fromkeys(LI_SUBLATTICE_FEATURES, math.nan)

    anion_total = float(anion.sum())
    if anion_total > 0:
        out["struct volume per anion"] = volume / anion_total
        out["struct anion packing fraction"] = float(4.0 / 3.0 * math.pi * r3.sum() / volume)
    if not len(li_idx):
        return out

    out["struct li density"] = float(w.sum() / volume)
    out["struct li partial fraction"] = float(w[w < _PARTIAL_BELOW].sum() / w.sum())

    nearest_li = _nearest(structure, li_idx, li)
    if np.isfinite(nearest_li).any():
        out["struct li-li nearest mean"] = _weighted_mean(nearest_li, w)
        out["struct li-li nearest min"] = float(np.nanmin(nearest_li))
    out["struct li-anion nearest mean"] = _weighted_mean(_nearest(structure, li_idx, anion), w)

    # One neighbour list within the larger shell serves both counts.
    c, p, d = _pairs(structure, li_idx, max(LI_LI_SHELL, LI_ANION_SHELL))
    li_count = np.zeros(len(structure))
    np.add.at(li_count, c, np.where(d <= LI_LI_SHELL, li[p], 0.0))
    out["struct li neighbours within 3.5"] = _weighted_mean(li_count[li_idx], w)
    if anion_total > 0:
        an_count = np.zeros(len(structure))
        np.add.at(an_count, c, np.where(d <= LI_ANION_SHELL, anion[p], 0.0))
        out["struct li-anion coordination 3.0"] = _weighted_mean(an_count[li_idx], w)
    return out


# CifParser messages that published, disordered CIFs are expected to trigger:
# occupancies summing slightly above 1 (rescaled within the tolerance below)
# and coordinates snapped to 1/3, 2/3. Anything else is re-warned.
_EXPECTED_CIF_ISSUES = re.compile(r"Some occupancies .* sum to > 1|fractional coordinates rounded to ideal values")
_OCCUPANCY_TOLERANCE = 1.05  # published occupancies are often rounded to sum 1.00x


def read_cif(path: Path) -> Structure:
    """The first structure of a CIF as published (conventional cell, disorder kept)."""
    with warnings.catch_warnings():
        # Only the occupancy/rounding notices and the summary that repeats
        # them are silenced here; other parser issues are re-raised below.
        warnings.filterwarnings("ignore", message=r"Some occupancies .* sum to > 1", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Issues encountered while parsing CIF", category=UserWarning)
        parser = CifParser(path, occupancy_tolerance=_OCCUPANCY_TOLERANCE)
        structures = parser.parse_structures(primitive=False, on_error="raise")
    for issue in parser.warnings:
        if not _EXPECTED_CIF_ISSUES.search(issue):
            warnings.warn(f"{path.name}: {issue}", UserWarning, stacklevel=2)
    return structures[0]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def featurize_cif_dir(cif_dir: Path, ids: Sequence[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Features of ``cif_dir/<id>.cif`` for each id (rows in input order).

    Returns the frame and id -> reason for ids whose CIF is missing, outside
    ``cif_dir`` or unreadable; those rows are all NaN.
    """
    root = Path(cif_dir).resolve()
    rows: list[dict[str, float]] = []
    failed: dict[str, str] = {}
    for cid in ids:
        path = (root / f"{cid}.cif").resolve()
        row = dict.fromkeys(LI_SUBLATTICE_FEATURES, math.nan)
        if not path.is_relative_to(root):
            failed[cid] = "outside cif dir"
        elif not path.is_file():
            failed[cid] = "missing"
        else:
            # CifParser raises many types on malformed files; each becomes a reason, not a crash.
            try:
                structure = read_cif(path)
            except Exception as exc:  # noqa: BLE001
                failed[cid] = f"unreadable: {_first_line(exc)}"
            else:
                row = li_sublattice_features(structure)
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index(list(ids), name="id"), columns=list(LI_SUBLATTICE_FEATURES), dtype=float)
    return frame, failed
