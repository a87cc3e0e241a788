"""Doping spaces around a host: validation of a spec and vectorised enumeration.

A space is a host formula with fixed oxidation states and one or more
substitution *slots*. A slot names the host element it replaces, a list of
dopants and a grid of amounts per formula unit; every slot takes one dopant
(or none) at one amount, and slots combine as a Cartesian product (co-doping).
Several slots may replace the same host element.

Charge compensation (stated, not guessed), for x dopant D^(qD) on a host H^(qH):

* ``li``: x H -> x D, and the Li content changes by -x (qD - qH) per unit
  charge: Li^+ interstitials for a lower-valent dopant, Li vacancies for a
  higher-valent one (Li1+xAlxGe2-x(PO4)3, Li3-xY1-xZrxCl6, Li7-3xAlxLa3Zr2O12).
* ``site_vacancy``: x D replaces x qD/qH of H, so the site keeps its charge and
  loses x (qD/qH - 1) atoms to vacancies; only a dopant of higher |charge|.
* ``none``: isovalent substitution only.

Every enumerated composition is charge-neutral with the stated states by
construction and is checked again; rows that would need a negative amount
(over-substituted site, negative Li) are dropped and counted, never silently.

Size: each dopant's ionic-radius mismatch with the ion it replaces,
|r_D - r_H| / r_H (pymatgen's Shannon radii), is a column of the table; with
``max_radius_mismatch`` set, dopants above it are left out of their slot and
listed, so a ranking is not led by substitutions the lattice will not take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from superionic.config import Compensation

COMPENSATIONS = tuple(c.value for c in Compensation)
NONE = "none"
# columns of the design table
COMPOSITION = "composition"
N_DOPANTS = "n_dopants"
RADIUS_MISMATCH = "radius_mismatch"  # largest |r_D - r_H| / r_H over the row's dopants
SLOT_DOPANT = "slot{}_dopant"
SLOT_LEVEL = "slot{}_x"
_CHARGED = re.compile(r"^([A-Z][a-z]?)(?:(\d*)([+-]))?$")
_TOL = 1e-9


class SpaceError(ValueError):
    """A doping spec that cannot be enumerated; the message names the key."""


@dataclass(frozen=True)
class Dopant:
    element: str
    charge: float

    @property
    def label(self) -> str:
        q = int(round(abs(self.charge)))
        return f"{self.element}{'' if q == 1 else q}{'+' if self.charge > 0 else '-'}"


@dataclass(frozen=True)
class Slot:
    host: str
    host_charge: float
    dopants: tuple[Dopant, ...]
    levels: np.ndarray  # amounts per formula unit, all > 0
    mismatch: tuple[float, ...]  # radius mismatch of each dopant (NaN: no radius known)
    excluded: tuple[tuple[str, float], ...] = ()  # (dopant, mismatch) left out by max_radius_mismatch


@dataclass(frozen=True)
class DopingSpace:
    host_formula: str
    host: dict[str, float]  # element -> amount per formula unit
    charges: dict[str, float]  # host element -> oxidation state
    slots: tuple[Slot, ...]
    compensation: str

    @property
    def size(self) -> int:
        """Compositions before dropping infeasible ones (each slot: none + dopants x levels)."""
        return int(np.prod([1 + len(s.dopants) * len(s.levels) for s in self.slots]))


def _known_elements() -> frozenset[str]:
    from pymatgen.core import Element

    return frozenset(e.symbol for e in Element)


def levels_from_range(values: Sequence[float], key: str) -> np.ndarray:
    """[start, stop, step] -> the amounts > 0 on that grid, stop included (to rounding)."""
    if len(values) != 3:
        raise SpaceError(f"{key}: give [start, stop, step], got {list(values)}")
    start, stop, step = (float(v) for v in values)
    if not (np.isfinite([start, stop, step]).all() and step > 0 and 0 <= start <= stop):
        raise SpaceError(f"{key}: empty range {list(values)} (need 0 <= start <= stop and step > 0)")
    grid = start + step * np.arange(int(np.floor((stop - start) / step + 1e-9)) + 1)
    grid = np.round(grid, 10)
    grid = grid[grid > _TOL]
    if not len(grid):
        raise SpaceError(f"{key}: empty range {list(values)} (no amount above 0)")
    return grid


def _parse_dopant(text: str, host_charge: float, key: str) -> list[Dopant]:
    """"Al3+" -> one dopant; "Sn" -> each common oxidation state with the host site's sign."""
    from pymatgen.core import Element

    match = _CHARGED.match(str(text).strip())
    if not match or match[1] not in _known_elements():
        raise SpaceError(f"{key}: unknown element or charge {text!r} (write e.g. Al or Al3+)")
    element = match[1]
    if match[3]:
        charge = float(match[2] or 1) * (1 if match[3] == "+" else -1)
        if np.sign(charge) != np.sign(host_charge):
            raise SpaceError(f"{key}: {text} cannot sit on a site of charge {host_charge:+g}")
        return [Dopant(element, charge)]
    states = [q for q in Element(element).common_oxidation_states if np.sign(q) == np.sign(host_charge)]
    if not states:
        raise SpaceError(f"{key}: {element} has no common oxidation state of sign {host_charge:+g}; "
                         "give its charge, e.g. {element}2+")
    return [Dopant(element, float(q)) for q in states]


def radius_mismatch(dopant: Dopant, host: str, host_charge: float) -> float:
    """|r_D - r_H| / r_H from pymatgen's ionic radii; NaN when either radius is unknown."""
    import warnings

    from pymatgen.core import Species

    with warnings.catch_warnings():
        # pymatgen notes when it falls back to low-spin radii (Cr3+); the value is still a radius
        warnings.filterwarnings("ignore", message="No default ionic radius")
        radii = [Species(el, q).ionic_radius for el, q in ((dopant.element, dopant.charge), (host, host_charge))]
    if any(r is None for r in radii):
        return float("nan")
    r_d, r_h = (float(r) for r in radii)
    return abs(r_d - r_h) / r_h


def _host_states(host: Mapping[str, float], overrides: Mapping[str, float], formula: str) -> dict[str, float]:
    """One oxidation state per host element: the overrides, the rest from pymatgen's best guess."""
    from pymatgen.core import Composition

    unknown = sorted(set(overrides) - set(host))
    if unknown:
        raise SpaceError(f"explore.oxidation_states: {unknown} not in the host {formula}")
    states = {el: float(q) for el, q in overrides.items()}
    missing = [el for el in host if el not in states]
    if missing:
        guesses = Composition(dict(host)).oxi_state_guesses(oxi_states_override={k: [v] for k, v in states.items()})
        if not guesses:
            raise SpaceError(f"explore.host: no charge-neutral oxidation states for {formula}; "
                             "give them in explore.oxidation_states")
        states.update({el: float(q) for el, q in guesses[0].items() if el in missing})
    total = sum(host[el] * states[el] for el in host)
    if abs(total) > 1e-6:
        raise SpaceError(f"explore.oxidation_states: the host {formula} carries charge {total:+g} with {states}")
    return states


def build_space(spec: Mapping[str, Any]) -> DopingSpace:
    """Validate a spec (the ``explore`` config section or a user's file) into a :class:`DopingSpace`."""
    from superionic.data.formula import parse_formula

    formula = str(spec.get("host") or "")
    parsed = parse_formula(formula)
    if parsed.error is not None or parsed.composition is None:
        raise SpaceError(f"explore.host: {formula!r} is not a formula ({parsed.error})")
    host = {str(el): float(n) for el, n in parsed.composition.get_el_amt_dict().items()}
    compensation = str(spec.get("compensation", "li"))
    if compensation not in COMPENSATIONS:
        raise SpaceError(f"explore.compensation: {compensation!r}; choose from {COMPENSATIONS}")
    if compensation == "li" and "Li" not in host:
        raise SpaceError(f"explore.compensation: 'li' needs Li in the host {formula}")
    charges = _host_states(host, dict(spec.get("oxidation_states") or {}), formula)
    limit = spec.get("max_radius_mismatch")
    if limit is not None and not float(limit) > 0:
        raise SpaceError(f"explore.max_radius_mismatch: must be > 0 or null, got {limit}")
    slots_spec = list(spec.get("sites") or [])
    if not slots_spec:
        raise SpaceError("explore.sites: no substitution site given")
    slots = []
    for i, site in enumerate(slots_spec):
        key = f"explore.sites[{i}]"
        element = str(site.get("host", ""))
        if element not in host:
            raise SpaceError(f"{key}.host: {element!r} is not an element of the host {formula}")
        q_host = charges[element]
        if q_host == 0:
            raise SpaceError(f"{key}.host: {element} has oxidation state 0 in {formula}; nothing to compensate against")
        dopants: list[Dopant] = []
        for text in site.get("dopants") or []:
            dopants += _parse_dopant(text, q_host, f"{key}.dopants")
        if not dopants:
            raise SpaceError(f"{key}.dopants: empty")
        for d in dopants:
            if d.element == element and d.charge == q_host:
                raise SpaceError(f"{key}.dopants: {d.label} is the host ion itself")
            if compensation == "none" and d.charge != q_host:
                raise SpaceError(f"{key}: impossible charge balance for {d.label} on {element}{q_host:+g} "
                                 "with compensation 'none' (isovalent dopants only)")
            if compensation == "site_vacancy" and abs(d.charge) < abs(q_host):
                raise SpaceError(f"{key}: impossible charge balance for {d.label} on {element}{q_host:+g} "
                                 "with compensation 'site_vacancy' (vacancies only offset a higher charge)")
        if len(set(dopants)) != len(dopants):
            raise SpaceError(f"{key}.dopants: listed twice: {[d.label for d in dopants]}")
        mismatch = [radius_mismatch(d, element, q_host) for d in dopants]
        excluded = tuple((d.label, m) for d, m in zip(dopants, mismatch, strict=True)
                         if limit is not None and m > float(limit))
        kept = [(d, m) for d, m in zip(dopants, mismatch, strict=True) if d.label not in dict(excluded)]
        if not kept:
            raise SpaceError(f"{key}.dopants: every dopant exceeds max_radius_mismatch {limit} "
                             f"({', '.join(f'{d} {m:.0%}' for d, m in excluded)})")
        dopants, mismatch = [d for d, _ in kept], [m for _, m in kept]
        levels = levels_from_range(site.get("levels") or [], f"{key}.levels")
        if levels.max() > host[element] + _TOL:
            raise SpaceError(f"{key}.levels: up to {levels.max():g} but the host has only {host[element]:g} {element}")
        slots.append(Slot(element, q_host, tuple(dopants), levels, tuple(mismatch), excluded))
    return DopingSpace(formula, host, charges, tuple(slots), compensation)


@dataclass(frozen=True)
class Enumeration:
    design: pd.DataFrame  # one row per kept composition: slot dopants/levels, composition text
    elements: list[str]  # columns of ``amounts``
    amounts: np.ndarray  # element amounts per formula unit
    dropped: dict[str, int]  # reason -> rows removed


def _species(space: DopingSpace) -> tuple[list[tuple[str, float]], dict[tuple[str, float], int]]:
    """Every (element, charge) in the space: host ions first, then dopants in slot order."""
    species = [(el, space.charges[el]) for el in space.host]
    for slot in space.slots:
        species += [(d.element, d.charge) for d in slot.dopants if (d.element, d.charge) not in species]
    return species, {s: i for i, s in enumerate(species)}


def enumerate_space(space: DopingSpace) -> Enumeration:
    """Every composition of the space, vectorised over the grid; infeasible ones dropped and counted."""
    species, column = _species(space)
    charges = np.array([q for _, q in species])
    options = []  # per slot: (species column or -1, host change, amount, label)
    for slot in space.slots:
        d_col = np.array([-1] + [column[(d.element, d.charge)] for d in slot.dopants for _ in slot.levels])
        x = np.concatenate([[0.0], np.tile(slot.levels, len(slot.dopants))])
        q_d = np.concatenate([[slot.host_charge], np.repeat([d.charge for d in slot.dopants], len(slot.levels))])
        label = np.array([NONE] + [d.label for d in slot.dopants for _ in slot.levels], dtype=object)
        size = np.concatenate([[0.0], np.repeat(slot.mismatch, len(slot.levels))])
        options.append((d_col, x, q_d, label, size))
    grids = np.meshgrid(*[np.arange(len(o[0])) for o in options], indexing="ij")
    picks = [g.ravel() for g in grids]
    n = len(picks[0])
    amounts = np.zeros((n, len(species)))
    for el, amount in space.host.items():
        amounts[:, column[(el, space.charges[el])]] = amount
    li = column.get(("Li", 1.0))
    rows = np.arange(n)
    design: dict[str, Any] = {}
    worst = np.zeros(n)
    for k, (slot, (d_col, x, q_d, label, size), pick) in enumerate(zip(space.slots, options, picks, strict=True),
                                                                    start=1):
        worst = np.fmax(worst, size[pick])
        xs, qs, cols = x[pick], q_d[pick], d_col[pick]
        host_col = column[(slot.host, slot.host_charge)]
        if space.compensation == "site_vacancy":
            amounts[:, host_col] -= xs * qs / slot.host_charge
        else:
            amounts[:, host_col] -= xs
            if space.compensation == "li":
                amounts[:, li] -= xs * (qs - slot.host_charge)
        doped = cols >= 0
        np.add.at(amounts, (rows[doped], cols[doped]), xs[doped])
        design[SLOT_DOPANT.format(k)] = label[pick]
        design[SLOT_LEVEL.format(k)] = xs
    amounts = np.round(amounts, 10)
    amounts[np.abs(amounts) < _TOL] = 0.0
    keep = np.ones(n, dtype=bool)
    dropped: dict[str, int] = {}
    negative = (amounts < 0).any(axis=1)
    if li is not None:
        low_li = amounts[:, li] < 0
        dropped["negative Li content"] = int(low_li.sum())
        keep &= ~low_li
    over = negative & keep
    dropped["site over-substituted (negative host amount)"] = int(over.sum())
    keep &= ~over
    charge = amounts @ charges
    unbalanced = keep & (np.abs(charge) > 1e-6)
    if unbalanced.any():  # construction guarantees neutrality: a failure here is a bug, not an input problem
        raise AssertionError(f"{int(unbalanced.sum())} enumerated compositions carry charge, e.g. {charge[unbalanced][:3]}")
    design[RADIUS_MISMATCH] = worst
    design_frame = pd.DataFrame(design)[keep].reset_index(drop=True)
    species_amounts = amounts[keep]
    # the same composition reached through two slots (one dopant listed on two slots of one host) is kept once
    _, first = np.unique(np.round(species_amounts, 8), axis=0, return_index=True)
    first = np.sort(first)
    dropped["duplicate of an earlier composition"] = int(len(species_amounts) - len(first))
    design_frame = design_frame.iloc[first].reset_index(drop=True)
    species_amounts = species_amounts[first]
    elements = _display_order(space)
    collapse = np.zeros((len(species), len(elements)))
    for i, (el, _) in enumerate(species):
        collapse[i, elements.index(el)] = 1.0
    element_amounts = species_amounts @ collapse
    design_frame.insert(0, COMPOSITION, formula_strings(element_amounts, elements))
    slot_cols = [SLOT_DOPANT.format(k) for k in range(1, len(space.slots) + 1)]
    design_frame[N_DOPANTS] = (design_frame[slot_cols] != NONE).sum(axis=1)
    return Enumeration(design_frame, elements, element_amounts, dropped)


def _display_order(space: DopingSpace) -> list[str]:
    """Host elements as written, each slot's dopants right after the element they replace."""
    order: list[str] = []
    for el in space.host:
        order.append(el)
        for slot in space.slots:
            if slot.host == el:
                order += [d.element for d in slot.dopants]
    return list(dict.fromkeys(order))


def formula_strings(amounts: np.ndarray, elements: Sequence[str]) -> np.ndarray:
    """Formula text per row ("Li1.3Al0.3Ge1.7P3O12"), elements in the given order, amounts to 4 decimals."""
    out = np.full(len(amounts), "", dtype=object)
    for j, el in enumerate(elements):
        values = np.round(amounts[:, j], 4)
        text = np.char.mod("%g", values).astype(object)
        part = np.where(values == 0, "", np.where(values == 1, el, el + text))
        out = out + part
    return out
