"""Convex hulls and Li stability windows, one phase diagram per chemical system.

Energies: the snapshot gives formation energies per atom (eV/atom) of the
lowest-energy entry of every composition; elements are the references at 0.
They are used directly as the energies of the phase-diagram entries, so the
hull is the hull of formation energies (the same hull as with total energies).

One pymatgen :class:`~pymatgen.analysis.phase_diagram.PhaseDiagram` is built
per *maximal* chemical system (a Li chemical system not contained in another
one), from every formation-energy entry whose elements are a subset of it.
Each Li compound is evaluated in the smallest maximal system containing it;
that is exact, because the lower hull restricted to a sub-system is the hull
of that sub-system.

From the hull facets (each facet f is a simplex of phases in equilibrium; its
chemical potentials mu_f solve x_v . mu_f = E_v for its vertices v):

* hull energy at composition x: h(x) = max_f mu_f . x (every facet plane is a
  supporting plane of the convex lower hull), so E_hull = E - h(x);
* Li stability window: the phase is stable at Li chemical potential mu_Li iff
  some facet touching it (mu_f . x = h(x)) has that mu_Li, up to convexity:
  the set of mu where the phase is on the hull is a polytope whose vertices
  are the chemical potentials of the facets touching it, and a Li-open
  grand-potential phase diagram at mu_Li asks exactly whether that polytope
  reaches mu_Li (Ong et al. 2008; Zhu, He, Mo 2015; Richards et al. 2016).
  Directions unbounded in the polytope only lower the potentials of elements
  absent from the phase, never mu_Li, so the range of mu_Li is
  [min_f mu_Li, max_f mu_Li] over touching facets. With mu_Li referenced to
  Li metal (0 here) and V = -mu_Li / e: V_ox = -min, V_red = -max.

For a composition above the hull (a ground-state entry that is metastable),
the same formula gives the window of the hull point at its composition,
i.e. of its equilibrium decomposition products; usually a single facet, so
V_red = V_ox. It is computed so that sweeps with ehull_max > 0 stay defined,
and flagged in the thermo table.

Everything per system is vectorized over facets and query entries; no
per-entry phase-diagram calls.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from multiprocessing import get_context

import numpy as np
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from superionic.stage import progress

log = logging.getLogger(__name__)

LITHIUM = "Li"


@dataclass
class SystemTask:
    """Everything one phase diagram needs, as plain picklable data."""

    elements: tuple[str, ...]
    # entries of the diagram: amounts (element -> amount) and formation energy per atom
    amounts: list[dict[str, float]]
    energies: np.ndarray
    # which of those entries to evaluate (positions into ``amounts``)
    query: np.ndarray


@dataclass
class SystemResult:
    elements: tuple[str, ...]
    query: np.ndarray
    e_hull: np.ndarray
    mu_li_min: np.ndarray
    mu_li_max: np.ndarray
    n_entries: int
    n_facets: int
    seconds: float


def maximal_systems(systems: Iterable[frozenset[str]]) -> list[frozenset[str]]:
    """Systems not strictly contained in another one, sorted (size desc, name)."""
    unique = set(systems)
    by_size = sorted(unique, key=lambda s: (-len(s), sorted(s)))
    maximal: list[frozenset[str]] = []
    for system in by_size:
        if not any(system < other for other in maximal):
            maximal.append(system)
    return maximal


def assign_systems(
    systems: Iterable[frozenset[str]], maximal: Sequence[frozenset[str]]
) -> dict[frozenset[str], frozenset[str]]:
    """Each system -> the smallest maximal system containing it (ties by name)."""
    ranked = sorted(maximal, key=lambda s: (len(s), sorted(s)))
    assignment = {}
    for system in set(systems):
        for candidate in ranked:
            if system <= candidate:
                assignment[system] = candidate
                break
        else:
            raise ValueError(f"no maximal system contains {sorted(system)}")
    return assignment


def subsystems(system: frozenset[str]) -> list[frozenset[str]]:
    items = sorted(system)
    return [frozenset(c) for k in range(1, len(items) + 1) for c in combinations(items, k)]


def facet_chempots(pd: PhaseDiagram) -> tuple[list[str], np.ndarray]:
    """(element symbols, chemical potentials of every facet, shape F x n)."""
    elements = [str(el) for el in pd.elements]
    data = np.asarray(pd.qhull_data, dtype=float)
    # qhull_data rows: fractions of elements[1:], then energy per atom.
    fractions = np.column_stack([1.0 - data[:, :-1].sum(axis=1), data[:, :-1]])
    energies = data[:, -1]
    facets = np.asarray(pd.facets, dtype=int)
    if facets.ndim != 2 or facets.shape[1] != len(elements):
        raise ValueError(f"unexpected facet array of shape {facets.shape} for {elements}")
    matrices = fractions[facets]  # F x n x n
    rhs = energies[facets]  # F x n
    return elements, np.linalg.solve(matrices, rhs[..., None])[..., 0]


def evaluate_system(task: SystemTask, tol: float) -> SystemResult:
    """E_hull and the Li chemical-potential window of the query entries."""
    start = time.perf_counter()
    entries = [
        PDEntry(Composition(amounts), float(energy) * sum(amounts.values()))
        for amounts, energy in zip(task.amounts, task.energies, strict=True)
    ]
    entries += [PDEntry(Composition(el), 0.0) for el in task.elements]
    pd = PhaseDiagram(entries)
    elements, mu = facet_chempots(pd)
    column = {el: i for i, el in enumerate(elements)}
    x = np.zeros((len(task.query), len(elements)))
    for row, position in enumerate(task.query):
        amounts = task.amounts[position]
        total = sum(amounts.values())
        for el, amount in amounts.items():
            x[row, column[el]] = amount / total
    energy = np.asarray(task.energies, dtype=float)[task.query]
    plane = x @ mu.T  # value of every facet plane at every query composition
    hull = plane.max(axis=1)
    touching = plane >= (hull - tol)[:, None]
    mu_li = np.broadcast_to(mu[:, column[LITHIUM]], plane.shape)
    mu_min = np.where(touching, mu_li, np.inf).min(axis=1)
    mu_max = np.where(touching, mu_li, -np.inf).max(axis=1)
    e_hull = energy - hull
    e_hull[np.abs(e_hull) <= tol] = 0.0
    return SystemResult(
        elements=task.elements,
        query=task.query,
        e_hull=e_hull,
        mu_li_min=mu_min,
        mu_li_max=mu_max,
        n_entries=len(entries),
        n_facets=len(mu),
        seconds=time.perf_counter() - start,
    )


def _evaluate(args: tuple[SystemTask, float]) -> SystemResult:
    return evaluate_system(*args)


def build_tasks(
    amounts: Sequence[dict[str, float]],
    energies: np.ndarray,
    query: np.ndarray,
) -> tuple[list[SystemTask], list[np.ndarray]]:
    """Group all entries into one task per maximal system of the query entries.

    Returns the tasks and, per task, the positions (into ``amounts``) of its
    query entries in the order of ``task.query``.
    """
    systems = [frozenset(a) for a in amounts]
    by_system: dict[frozenset[str], list[int]] = defaultdict(list)
    for position, system in enumerate(systems):
        by_system[system].append(position)
    query_systems = {systems[q] for q in query}
    maximal = maximal_systems(query_systems)
    assignment = assign_systems(query_systems, maximal)
    queries_of: dict[frozenset[str], list[int]] = defaultdict(list)
    for q in sorted(int(i) for i in query):
        queries_of[assignment[systems[q]]].append(q)
    tasks, positions = [], []
    for system in maximal:
        members = sorted(p for sub in subsystems(system) for p in by_system.get(sub, []))
        local = {p: i for i, p in enumerate(members)}
        chosen = queries_of[system]
        tasks.append(
            SystemTask(
                elements=tuple(sorted(system)),
                amounts=[dict(amounts[p]) for p in members],
                energies=np.asarray(energies, dtype=float)[members],
                query=np.array([local[q] for q in chosen], dtype=int),
            )
        )
        positions.append(np.array(chosen, dtype=int))
    return tasks, positions


def hull_and_windows(
    amounts: Sequence[dict[str, float]],
    energies: np.ndarray,
    query: np.ndarray,
    tol: float = 1e-6,
    n_jobs: int = 1,
) -> tuple[dict[str, np.ndarray], list[SystemResult]]:
    """E_hull, mu_Li window and the system used, for the ``query`` positions.

    ``amounts``/``energies``: every entry available (formation energy per
    atom, elements implicit at 0). Returns arrays aligned with ``query``.
    """
    query = np.asarray(query, dtype=int)
    tasks, positions = build_tasks(amounts, energies, query)
    # Largest systems first so the workers finish together.
    order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i].amounts) * len(tasks[i].elements))
    args = [(tasks[i], tol) for i in order]
    if n_jobs > 1:
        # spawn, not fork: the parent may hold MLflow threads and locks. imap keeps
        # map's order and chunking, and hands results over as they finish.
        with get_context("spawn").Pool(n_jobs) as workers:
            done = workers.imap(_evaluate, args, chunksize=1)
            results_ordered = list(progress(done, total=len(args), label="thermo", unit="phase diagrams"))
    else:
        results_ordered = [_evaluate(a) for a in progress(args, label="thermo", unit="phase diagrams")]
    results: list[SystemResult] = [None] * len(tasks)  # type: ignore[list-item]
    for i, result in zip(order, results_ordered, strict=True):
        results[i] = result
    slot = {int(q): i for i, q in enumerate(query)}
    out = {
        "e_hull": np.full(len(query), np.nan),
        "mu_li_min": np.full(len(query), np.nan),
        "mu_li_max": np.full(len(query), np.nan),
        "system": np.full(len(query), "", dtype=object),
    }
    for result, where in zip(results, positions, strict=True):
        idx = [slot[int(p)] for p in where]
        out["e_hull"][idx] = result.e_hull
        out["mu_li_min"][idx] = result.mu_li_min
        out["mu_li_max"][idx] = result.mu_li_max
        out["system"][idx] = "-".join(result.elements)
    return out, results
