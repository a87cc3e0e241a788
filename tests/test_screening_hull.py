"""Hull and Li stability window on hand-built chemical systems."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.phase_diagram import GrandPotentialPhaseDiagram, PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element

from superionic.screening.hull import (
    assign_systems,
    build_tasks,
    hull_and_windows,
    maximal_systems,
)

# Li-O with formation energies per atom (eV/atom, elements at 0):
#   Li2O  -2.0 -> total -6.0 ; Li2O2 -1.6 -> total -6.4 ; LiO2 -1.0 (above hull)
LI_O_AMOUNTS = [{"Li": 2, "O": 1}, {"Li": 2, "O": 2}, {"Li": 1, "O": 2}]
LI_O_ENERGIES = np.array([-2.0, -1.6, -1.0])


def test_li_o_hull_and_windows_match_hand_calculation():
    out, results = hull_and_windows(LI_O_AMOUNTS, LI_O_ENERGIES, np.array([0, 1, 2]))
    # Li2O: stable against Li metal (V_red 0); 2 Li2O -> Li2O2 + 2 Li costs
    # E(Li2O2) - 2 E(Li2O) = -6.4 + 12 = 5.6 eV for 2 Li: V_ox = 2.8 V.
    # Li2O2 -> 2 Li + O2 costs 6.4 eV for 2 Li: V_ox = 3.2 V, V_red = 2.8 V.
    np.testing.assert_allclose(out["e_hull"][:2], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(-out["mu_li_max"][:2], [0.0, 2.8], atol=1e-9)
    np.testing.assert_allclose(-out["mu_li_min"][:2], [2.8, 3.2], atol=1e-9)
    # LiO2 (x_O = 2/3) lies above the Li2O2-O2 tie line at -3.2/3 eV/atom.
    np.testing.assert_allclose(out["e_hull"][2], -1.0 + 3.2 / 3, atol=1e-9)
    # its decomposition products (Li2O2 + O2) fix mu_Li at -3.2 eV
    np.testing.assert_allclose([-out["mu_li_max"][2], -out["mu_li_min"][2]], [3.2, 3.2], atol=1e-9)
    assert list(out["system"]) == ["Li-O"] * 3
    assert len(results) == 1 and results[0].n_facets == 3


def test_unstable_li2o2_changes_li2o_window():
    # Li2O2 pushed above the Li2O-O2 line: Li2O now oxidizes straight to O2 at
    # E(Li2O)*3/2 per Li = 3.0 V, and Li2O2 (x_O = 1/2) sits 0.6 eV/atom above
    # that line (-2.0 * 3/4 = -1.5 eV/atom there).
    out, _ = hull_and_windows(LI_O_AMOUNTS[:2], np.array([-2.0, -0.9]), np.array([0, 1]))
    np.testing.assert_allclose(-out["mu_li_min"][0], 3.0, atol=1e-9)
    assert out["e_hull"][1] == pytest.approx(-0.9 - (-1.5), abs=1e-9)


def _random_ternary(seed: int):
    rng = np.random.default_rng(seed)
    formulas = ["Li3P", "LiP", "LiP7", "P2S5", "P4S3", "Li2S", "Li3PS4", "Li7P3S11", "Li4P2S6", "LiS4", "Li7PS6"]
    energies = rng.uniform(-1.2, -0.1, size=len(formulas))
    amounts = [{str(el): float(a) for el, a in Composition(f).items()} for f in formulas]
    return formulas, amounts, energies


def _pmg_entries(amounts, energies):
    entries = [PDEntry(Composition(a), e * sum(a.values())) for a, e in zip(amounts, energies, strict=True)]
    return entries + [PDEntry(Composition(el), 0.0) for el in ("Li", "P", "S")]


@pytest.mark.parametrize("seed", [0, 1])
def test_ternary_matches_pymatgen_hull_and_grand_potential_diagrams(seed):
    formulas, amounts, energies = _random_ternary(seed)
    query = np.array([i for i, a in enumerate(amounts) if "Li" in a])
    out, _ = hull_and_windows(amounts, energies, query)
    entries = _pmg_entries(amounts, energies)
    pd = PhaseDiagram(entries)
    for slot, i in enumerate(query):
        assert out["e_hull"][slot] == pytest.approx(pd.get_e_above_hull(entries[i]), abs=1e-7)
    # Brute force: on a grid of mu_Li, is the phase on the Li-open hull?
    grid = np.linspace(np.nanmin(out["mu_li_min"]) - 0.2, 0.0, 101)
    stable_names = []
    for mu in grid:
        gpd = GrandPotentialPhaseDiagram(entries, {Element("Li"): mu})
        stable_names.append({e.original_entry.composition.reduced_formula for e in gpd.stable_entries})
    step = grid[1] - grid[0]
    for slot, i in enumerate(query):
        name = Composition(formulas[i]).reduced_formula
        stable_at = grid[[name in s for s in stable_names]]
        if out["e_hull"][slot] > 0:
            assert len(stable_at) == 0
            continue
        if len(stable_at) == 0:  # window narrower than the grid step
            assert out["mu_li_max"][slot] - out["mu_li_min"][slot] < step + 1e-9
            continue
        assert stable_at.min() >= out["mu_li_min"][slot] - 1e-9
        assert stable_at.max() <= out["mu_li_max"][slot] + 1e-9
        assert stable_at.min() - out["mu_li_min"][slot] <= step + 1e-9
        assert out["mu_li_max"][slot] - stable_at.max() <= step + 1e-9


def test_evaluation_in_a_larger_system_gives_the_same_answer():
    # Li2O evaluated alone, or inside Li-O-S with extra phases that do not
    # touch the Li-O edge, must give the same hull energy and window.
    alone, _ = hull_and_windows(LI_O_AMOUNTS[:2], LI_O_ENERGIES[:2], np.array([0, 1]))
    amounts = [*LI_O_AMOUNTS[:2], {"Li": 2, "S": 1}, {"Li": 2, "S": 1, "O": 4}, {"S": 1, "O": 3}]
    energies = np.array([-2.0, -1.6, -1.5, -2.3, -1.2])
    big, results = hull_and_windows(amounts, energies, np.array([0, 1, 2, 3]))
    assert len(results) == 1 and results[0].elements == ("Li", "O", "S")
    for key in ("e_hull", "mu_li_min", "mu_li_max"):
        np.testing.assert_allclose(big[key][:2], alone[key], atol=1e-9)


def test_maximal_systems_and_assignment():
    names = (["Li", "O"], ["Li", "O", "P"], ["Li", "S"], ["Li", "O", "S"], ["Li", "N"], ["Li", "N", "O", "P"])
    systems = [frozenset(s) for s in names]
    maximal = maximal_systems(systems)
    assert set(maximal) == {frozenset(["Li", "N", "O", "P"]), frozenset(["Li", "O", "S"])}
    assignment = assign_systems(systems, maximal)
    # Li-O sits in two maximal systems: the smaller one is used
    assert assignment[frozenset(["Li", "O"])] == frozenset(["Li", "O", "S"])
    assert assignment[frozenset(["Li", "S"])] == frozenset(["Li", "O", "S"])
    assert assignment[frozenset(["Li", "N"])] == frozenset(["Li", "N", "O", "P"])


def test_tasks_include_every_subsystem_entry_once():
    amounts = [{"Li": 2, "O": 1}, {"P": 2, "O": 5}, {"Li": 3, "P": 1, "O": 4}, {"S": 1, "O": 3}, {"Li": 1, "P": 1}]
    tasks, positions = build_tasks(amounts, np.full(5, -1.0), np.array([0, 2, 4]))
    assert len(tasks) == 1
    assert tasks[0].elements == ("Li", "O", "P")
    assert len(tasks[0].amounts) == 4  # SO3 is not in Li-O-P
    assert list(positions[0]) == [0, 2, 4]


@pytest.mark.slow
def test_two_workers_give_identical_results():
    _, amounts, energies = _random_ternary(3)
    amounts = [*amounts, {"Li": 2, "Se": 1}, {"Li": 1, "Se": 3}]
    energies = np.append(energies, [-1.4, -0.5])
    query = np.array([i for i, a in enumerate(amounts) if "Li" in a])
    one, _ = hull_and_windows(amounts, energies, query, n_jobs=1)
    two, results = hull_and_windows(amounts, energies, query, n_jobs=2)
    assert len(results) == 2
    for key in ("e_hull", "mu_li_min", "mu_li_max"):
        assert np.array_equal(one[key], two[key])
    assert list(one["system"]) == list(two["system"])
