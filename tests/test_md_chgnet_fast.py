"""Array-built CHGNet graphs and the factored forward: CHGNet's own graphs, energies and forces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from superionic.md import chgnet_fast, mlip


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return mlip.load_model("0.3.0", "cpu")


def li3incl6_like(seed: int) -> Structure:
    """A small disordered Li-In-Cl cell with a perturbation, so no two bonds are exactly degenerate."""
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.13), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s = s * (2, 1, 1)
    s.replace(0, "In")
    s.perturb(0.15, min_distance=0.05)
    rng = np.random.default_rng(seed)
    s.lattice = Lattice(s.lattice.matrix + rng.normal(scale=0.05, size=(3, 3)))
    return s


def array_graph(model, s: Structure):
    conv = model.graph_converter
    return chgnet_fast.crystal_graph(s.lattice.matrix, np.array(s.atomic_numbers), s.frac_coords,
                                     atom_cutoff=conv.atom_graph_cutoff, bond_cutoff=conv.bond_graph_cutoff)  # fmt: skip


def rows(t: torch.Tensor) -> list[tuple]:
    return sorted(map(tuple, t.numpy().tolist()))


@pytest.mark.parametrize("seed", [0, 1])
def test_array_graph_is_chgnets_graph(model, seed):
    s = li3incl6_like(seed)
    ref, ours = model.graph_converter(s), array_graph(model, s)
    np.testing.assert_array_equal(ours.atom_graph.numpy(), ref.atom_graph.numpy())
    np.testing.assert_array_equal(ours.neighbor_image.numpy(), ref.neighbor_image.numpy())
    np.testing.assert_array_equal(ours.directed2undirected.numpy(), ref.directed2undirected.numpy())
    np.testing.assert_array_equal(ours.undirected2directed.numpy(), ref.undirected2directed.numpy())
    # the same angles; CHGNet lists them in its dictionary order, which only reorders sums
    assert len(ours.bond_graph) > 0 and rows(ours.bond_graph) == rows(ref.bond_graph)
    np.testing.assert_array_equal(ours.atomic_number.numpy(), ref.atomic_number.numpy())


def test_pairing_uses_the_exact_reverse_edge():
    # atom 0 sees atom 1 through two images at the same distance: each directed edge
    # pairs with the reverse of its own image, not with the first edge of equal length
    center = np.array([0, 0, 1, 1])
    neighbor = np.array([1, 1, 0, 0])
    image = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 0]])
    d2u, u2d = chgnet_fast.pair_directed_edges(center, neighbor, image, 2)
    assert d2u.tolist() == [0, 1, 1, 0] and u2d.tolist() == [0, 1]


def test_unpaired_edge_is_named():
    with pytest.raises(ValueError, match=r"directed edge 0 \(0->1\) has no reverse"):
        chgnet_fast.pair_directed_edges(np.array([0]), np.array([1]), np.zeros((1, 3), int), 2)


def test_line_graph_joins_distinct_short_edges_from_one_centre():
    # centre 0 has three edges (0.9, 1.5, 5.0 A), centre 1 one edge; cutoff 3 A
    center = np.array([0, 0, 0, 1])
    distance = np.array([0.9, 1.5, 5.0, 0.9])
    d2u = np.array([0, 1, 2, 0])
    got = chgnet_fast.line_graph(center, distance, d2u, 3.0)
    assert rows(torch.as_tensor(got)) == [(0, 0, 0, 1, 1), (0, 1, 1, 0, 0)]
    assert chgnet_fast.line_graph(center, distance, d2u, 0.5).shape == (0, 5)


def test_isolated_atom_is_an_error(model):
    lone = Structure(Lattice.cubic(20.0), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"2 atom\(s\) have no neighbour within 6"):
        array_graph(model, lone)


@pytest.mark.parametrize("batched", [False, True])
def test_factored_forward_matches_chgnet(model, batched):
    cells = [li3incl6_like(0), li3incl6_like(1) * (1, 1, 2)]
    fast = chgnet_fast.FactoredCHGNet(model)
    graphs = [model.graph_converter(s) for s in cells]
    ref = model.forward(graphs, task="e")["e"]
    ref_grad = torch.autograd.grad(ref.sum(), [g.atom_frac_coord for g in graphs])
    graphs = [model.graph_converter(s) for s in cells]
    if batched:
        energy = fast(graphs)
        grads = torch.autograd.grad(energy.sum(), [g.atom_frac_coord for g in graphs])
    else:
        energy = torch.cat([fast([g]) for g in graphs])
        grads = [torch.autograd.grad(e, g.atom_frac_coord)[0] for e, g in zip(energy, graphs, strict=True)]
    np.testing.assert_allclose(energy.detach().numpy(), ref.detach().numpy(), atol=1e-6)
    for a, b in zip(grads, ref_grad, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
