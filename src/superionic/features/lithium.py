"""Li-specific chemistry descriptors (26) to sit beside CD-145.

CD-145 averages element properties over all atoms, so it cannot tell the Li
sublattice from the framework or the anions. These descriptors split every
composition into Li, anions and framework (all other cations) and describe
each part: how much Li there is and per what, which anions carry it (soft,
polarizable anions such as S2-/I- flatten the Li energy landscape), how
covalent and how charged the framework is, and how far the Li content departs
from the charge-balanced value.

Rules, stated once so that doped and glassy compositions need no
oxidation-state guessing:
- anions are O, S, Se, Te, F, Cl, Br, I, N always, and H only when neither
  O nor N is present (hydride-like: LiBH4, Li2B12H12; in LiOH or Li2NH it is
  a cation). S in a sulfate is miscounted as an anion; accepted for simplicity.
- nominal charges: chalcogens -2, halogens and H- -1, N -3; a framework
  cation takes its highest positive pymatgen ``common_oxidation_states``
  (else ``icsd_oxidation_states``), i.e. a fully oxidised framework.
- property data: Pauling electronegativity, atomic mass and Shannon (1976)
  crystal radii from pymatgen; anion polarizabilities from Pauling (1927) as
  tabulated in Kittel, *Introduction to Solid State Physics*. Missing data
  (no H- radius, no N3-/H- polarizability, noble gases) give NaN, as do
  ratios over zero (no anions, no framework); NaN is imputed downstream.

All features are ratios or amount-weighted means, so scaling a formula
(Li2O vs Li4O2) leaves them unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Element

_ANIONS = ("O", "S", "Se", "Te", "F", "Cl", "Br", "I", "N", "H")
_ANION_CHARGE = {"O": 2, "S": 2, "Se": 2, "Te": 2, "F": 1, "Cl": 1, "Br": 1, "I": 1, "N": 3, "H": 1}
# Electronic polarizability of the free anion, Å^3 (Pauling 1927, via Kittel Table 16.1).
# No value on this scale for N3- or H-: NaN.
ANION_POLARIZABILITY = {"O": 3.88, "S": 10.2, "Se": 10.5, "Te": 14.0, "F": 1.04, "Cl": 3.66, "Br": 4.77, "I": 7.10}

LITHIUM_FEATURES: tuple[str, ...] = (
    "li fraction",  # Li atoms / all atoms: carrier concentration
    "li per anion",  # Li / anion atoms: Li filling of the anion-framework sites
    "li per framework cation",  # Li / non-Li cations: Li-rich vs framework-dominated
    *(f"li {a} fraction" for a in _ANIONS),  # anion chemistry (sulfide, halide, ...) per atom
    "li anion species",  # number of distinct anions: mixed-anion disorder
    "li mixed anion",  # 1 if two or more anion species (Li6PS5Cl, LiPON)
    "li anion polarizability",  # soft anions lower Li migration barriers
    "li anion electronegativity",  # ionicity of the Li-anion bond
    "li anion radius",  # larger anions give wider bottlenecks and a larger lattice
    "li framework electronegativity",  # covalent frameworks (P, Si) screen Li from anions
    "li framework electronegativity std",  # framework chemical disorder (doping, mixed cations)
    "li framework valence",  # high-valent cations bind the anions, leaving Li more weakly bound
    "li framework mass",  # heavy, soft frameworks: low phonon frequencies, lower barriers
    "li excess",  # (Li - charge-balance Li) per atom: stuffing/vacancies tune carriers
    "li anion to cation ratio",  # anion atoms / cation atoms: framework openness
    "li anion fraction",  # anion atoms / all atoms
    "li anion radius ratio",  # mean anion radius / Li+ radius: size mismatch of the Li sites
)


@dataclass(frozen=True)
class _Tables:
    """Element-property vectors, one entry per element in Z order."""

    index: dict[str, int]
    anion: np.ndarray  # in the fixed anion list
    x: np.ndarray  # Pauling electronegativity
    mass: np.ndarray  # atomic mass, amu
    valence: np.ndarray  # nominal cation charge
    charge: np.ndarray  # nominal anion charge magnitude
    radius: np.ndarray  # Shannon crystal radius of the anion, Å
    polar: np.ndarray  # anion polarizability, Å^3
    li_radius: float  # Shannon crystal radius of Li+ (CN 6), Å


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    """Built on first use, not at import."""
    elements = sorted(Element, key=lambda e: e.Z)
    symbols = [e.symbol for e in elements]

    def vector(values) -> np.ndarray:
        return np.array(list(values), dtype=float)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns (and returns NaN) for elements without X
        return _Tables(
            index={s: i for i, s in enumerate(symbols)},
            anion=np.isin(symbols, _ANIONS),
            x=vector(e.X for e in elements),
            mass=vector(e.atomic_mass for e in elements),
            valence=vector(
                max((q for q in e.common_oxidation_states or e.icsd_oxidation_states if q > 0), default=np.nan)
                for e in elements
            ),
            charge=vector(_ANION_CHARGE.get(s, np.nan) for s in symbols),
            radius=vector(e.ionic_radii.get(-_ANION_CHARGE[s], np.nan) if s in _ANION_CHARGE else np.nan
                          for e, s in zip(elements, symbols, strict=True)),
            polar=vector(ANION_POLARIZABILITY.get(s, np.nan) for s in symbols),
            li_radius=float(Element("Li").ionic_radii[1]),
        )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (no division warning)."""
    out = np.full(np.broadcast_shapes(np.shape(num), np.shape(den)), np.nan)
    return np.divide(num, den, out=out, where=np.asarray(den) > 0)


def _wsum(weights: np.ndarray, prop: np.ndarray) -> np.ndarray:
    """Row sums of weights * prop; NaN where a weighted element lacks the property."""
    missing = (weights > 0) @ np.isnan(prop)
    return np.where(missing, np.nan, weights @ np.nan_to_num(prop))


def _wmean(weights: np.ndarray, prop: np.ndarray) -> np.ndarray:
    return _ratio(_wsum(weights, prop), weights.sum(axis=1))


def _wstd(weights: np.ndarray, prop: np.ndarray) -> np.ndarray:
    mean = _wmean(weights, prop)
    dev = weights * (np.nan_to_num(prop)[None, :] - np.nan_to_num(mean)[:, None]) ** 2
    return np.where(np.isnan(mean), np.nan, np.sqrt(_ratio(dev.sum(axis=1), weights.sum(axis=1))))


def amount_matrix(compositions: Sequence[Composition]) -> np.ndarray:
    """(n_compositions x n_elements) element amounts, columns in Z order."""
    index = _tables().index
    amounts = np.zeros((len(compositions), len(index)))
    for row, comp in enumerate(compositions):
        for symbol, amount in comp.get_el_amt_dict().items():
            if symbol not in index:
                raise ValueError(f"composition {comp} has a non-element species {symbol!r}")
            amounts[row, index[symbol]] += amount
    return amounts


def element_symbols() -> list[str]:
    """The columns of :func:`amount_matrix`: every element, in Z order."""
    return list(_tables().index)


def lithium_features(compositions: Sequence[Composition]) -> pd.DataFrame:
    """The :data:`LITHIUM_FEATURES` for each composition (index = input position)."""
    return lithium_features_from_amounts(amount_matrix(compositions))


def lithium_features_from_amounts(a: np.ndarray) -> pd.DataFrame:
    """:func:`lithium_features` from an (n x elements) amount matrix in :func:`element_symbols` order."""
    t = _tables()
    idx = t.index
    if a.ndim != 2 or a.shape[1] != len(idx):
        raise ValueError(f"amount matrix must have {len(idx)} element columns, got shape {a.shape}")
    li = a[:, idx["Li"]]
    total = a.sum(axis=1)
    # anion role per row: the fixed list, H only without O and N
    hydride = (a[:, idx["O"]] == 0) & (a[:, idx["N"]] == 0)
    is_anion = np.broadcast_to(t.anion, a.shape).copy()
    is_anion[:, idx["H"]] = hydride
    anion = np.where(is_anion, a, 0.0)
    frame = np.where(is_anion, 0.0, a)
    frame[:, idx["Li"]] = 0.0
    n_anion, n_frame = anion.sum(axis=1), frame.sum(axis=1)
    species = (anion > 0).sum(axis=1).astype(float)
    anion_radius = _wmean(anion, t.radius)
    li_slot = _wsum(anion, t.charge) - _wsum(frame, t.valence)  # Li needed for neutrality
    columns = [
        _ratio(li, total),
        _ratio(li, n_anion),
        _ratio(li, n_frame),
        *(_ratio(anion[:, idx[s]], total) for s in _ANIONS),
        species,
        (species >= 2).astype(float),
        _wmean(anion, t.polar),
        _wmean(anion, t.x),
        anion_radius,
        _wmean(frame, t.x),
        _wstd(frame, t.x),
        _wmean(frame, t.valence),
        _wmean(frame, t.mass),
        _ratio(li - li_slot, total),
        _ratio(n_anion, li + n_frame),
        _ratio(n_anion, total),
        anion_radius / t.li_radius,
    ]
    return pd.DataFrame(np.column_stack(columns), columns=list(LITHIUM_FEATURES), dtype=float)
