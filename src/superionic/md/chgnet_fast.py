"""CHGNet energies for MD with the same weights and maths, factored for CPU speed.

Two costs dominate a CHGNet MD step on CPU, and neither is part of the model:

1. **Graph construction.** CHGNet pairs directed edges and builds the line
   graph (the angles) in Python loops, ~12 ms per 120-atom cell per step.
   :func:`crystal_graph` builds the same graph with array operations from the
   same neighbour search (``find_points_in_spheres``, as pymatgen's
   ``get_neighbor_list``): a directed edge pairs with its exact reverse
   (swapped ends, negated image), undirected edges are numbered in order of
   first appearance, and an angle joins two distinct directed edges from one
   centre when the anchor bond is within the bond-graph cutoff (``<=``) and the
   other shorter than it (``<``), as CHGNet's ``line_graph_adjacency_list``.
   CHGNet pairs by distance within a tolerance, which can pair a bond with the
   reverse of a symmetry-equivalent image in a perfectly symmetric cell; the
   exact reverse is the geometric partner, and the two agree once atoms move.
2. **The first linear layer of every gated MLP** runs on a per-edge (or
   per-angle) concatenation of atom, bond and angle features. A linear map of
   a concatenation is the sum of the maps of its parts,
   ``W [h_i, e_ij, h_j] = W_c h_i + W_b e_ij + W_n h_j``, so each part is
   projected once per atom or per bond and gathered per edge: the atom
   convolution's first layer costs ~5x fewer multiply-adds on a 6 A graph
   with ~40 neighbours per atom, the bond convolution and angle update ~3x.

Everything else (embeddings, basis expansions, batching, layer norms, readout,
composition model) is CHGNet's own code on CHGNet's own modules. The result
equals :meth:`chgnet.model.CHGNet.forward` to float32 rounding (the sums run
in another order); ``tests/test_md_chgnet_fast.py`` checks energies and forces
against it. Inference only: training would need the concatenated layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# image components are bounded by the cutoff over the shortest cell height
# (|image| > 31 would need a cell thinner than 0.2 A at CHGNet's 6 A cutoff);
# the offset keeps them non-negative in the integer edge keys, and the small
# span keeps a key of n atoms below 2**63 up to millions of atoms
_IMAGE_OFFSET = 32


def _edge_keys(first: np.ndarray, second: np.ndarray, image: np.ndarray, n_atoms: int) -> np.ndarray:
    shifted = image.astype(np.int64) + _IMAGE_OFFSET
    if shifted.min(initial=0) < 0 or shifted.max(initial=0) >= 2 * _IMAGE_OFFSET:
        raise ValueError("neighbour image index out of range: the cell is far thinner than the cutoff")
    span = 2 * _IMAGE_OFFSET
    key = first.astype(np.int64) * n_atoms + second.astype(np.int64)
    for axis in range(3):
        key = key * span + shifted[:, axis]
    return key


def pair_directed_edges(center: np.ndarray, neighbor: np.ndarray, image: np.ndarray, n_atoms: int):
    """Undirected edge per directed edge, and the first directed edge per undirected edge.

    Returns ``(directed2undirected, undirected2directed)``, numbered as CHGNet
    numbers them: undirected edges in order of their first directed edge.
    """
    forward = _edge_keys(center, neighbor, image, n_atoms)
    reverse = _edge_keys(neighbor, center, -image, n_atoms)
    order = np.argsort(forward, kind="stable")
    where = np.searchsorted(forward, reverse, sorter=order)
    where = np.minimum(where, len(order) - 1)
    partner = order[where]
    if len(partner) and not np.array_equal(forward[partner], reverse):
        missing = int(np.flatnonzero(forward[partner] != reverse)[0])
        raise ValueError(f"directed edge {missing} ({center[missing]}->{neighbor[missing]}) has no reverse edge")
    first = np.minimum(np.arange(len(center)), partner)
    undirected2directed, directed2undirected = np.unique(first, return_inverse=True)
    return directed2undirected.astype(np.int64), undirected2directed.astype(np.int64)


def line_graph(center: np.ndarray, distance: np.ndarray, directed2undirected: np.ndarray, cutoff: float) -> np.ndarray:
    """CHGNet's bond graph: rows ``[centre, undirected_i, directed_i, undirected_j, directed_j]``."""
    anchors = np.flatnonzero(distance <= cutoff)
    partners = np.flatnonzero(distance < cutoff)
    if len(anchors) == 0 or len(partners) == 0:
        return np.zeros((0, 5), dtype=np.int64)
    partners = partners[np.argsort(center[partners], kind="stable")]
    partner_centers = center[partners]
    start = np.searchsorted(partner_centers, center[anchors], side="left")
    stop = np.searchsorted(partner_centers, center[anchors], side="right")
    counts = stop - start
    anchor_rows = np.repeat(anchors, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    partner_rows = partners[np.repeat(start, counts) + offsets]
    keep = anchor_rows != partner_rows
    a, b = anchor_rows[keep], partner_rows[keep]
    return np.stack([center[a], directed2undirected[a], a, directed2undirected[b], b], axis=1).astype(np.int64)


def crystal_graph(cell: np.ndarray, atomic_numbers: np.ndarray, frac: np.ndarray, *, atom_cutoff: float,
                  bond_cutoff: float):  # fmt: skip
    """A ``chgnet.graph.CrystalGraph`` of one periodic cell, built with array operations."""
    import torch
    from chgnet.graph.crystalgraph import CrystalGraph
    from chgnet.model.model import TORCH_DTYPE
    from pymatgen.optimization.neighbors import find_points_in_spheres

    cell = np.ascontiguousarray(cell, dtype=float)
    frac = np.ascontiguousarray(frac, dtype=float)
    cart = np.ascontiguousarray(frac @ cell)
    center, neighbor, image, distance = find_points_in_spheres(
        cart, cart, r=atom_cutoff, pbc=np.ones(3, dtype=np.int64), lattice=cell, tol=1e-8
    )
    not_self = ~((center == neighbor) & (distance <= 1e-8))
    center, neighbor, image, distance = center[not_self], neighbor[not_self], image[not_self], distance[not_self]
    n_atoms = len(atomic_numbers)
    isolated = n_atoms - len(np.unique(center))
    if isolated:
        raise ValueError(f"{isolated} atom(s) have no neighbour within {atom_cutoff} A: CHGNet cannot describe them")
    directed2undirected, undirected2directed = pair_directed_edges(center, neighbor, image, n_atoms)
    bonds = line_graph(center, distance, directed2undirected, bond_cutoff)
    return CrystalGraph(
        atomic_number=torch.as_tensor(np.asarray(atomic_numbers), dtype=torch.int32),
        atom_frac_coord=torch.tensor(frac, dtype=TORCH_DTYPE, requires_grad=True),
        atom_graph=torch.as_tensor(np.stack([center, neighbor], axis=1), dtype=torch.int32),
        neighbor_image=torch.as_tensor(image, dtype=TORCH_DTYPE),
        directed2undirected=torch.as_tensor(directed2undirected, dtype=torch.int32),
        undirected2directed=torch.as_tensor(undirected2directed, dtype=torch.int32),
        bond_graph=torch.as_tensor(bonds, dtype=torch.int32),
        lattice=torch.tensor(cell, dtype=TORCH_DTYPE, requires_grad=True),
        graph_id=None, mp_id=None, composition="",
        atom_graph_cutoff=atom_cutoff, bond_graph_cutoff=bond_cutoff,
    )  # fmt: skip


@dataclass
class _FactoredGatedMLP:
    """A CHGNet ``GatedMLP`` whose first linear layer is split by input part."""

    parts: list  # per input part: weight (2h x part_dim), core rows then gate rows
    bias: object  # (2h,)
    hidden: int
    core_rest: object  # the core MLP's layers after its first linear layer
    gate_rest: object
    gated: object  # the GatedMLP itself (norms, activation, sigmoid)

    @classmethod
    def of(cls, gated, part_dims: Sequence[int]) -> _FactoredGatedMLP:
        import torch
        from torch import nn

        def split(mlp):
            layers = list(mlp.layers)
            first = next(i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear))
            return layers[first], nn.Sequential(*layers[first + 1 :])

        core_first, core_rest = split(gated.mlp_core)
        gate_first, gate_rest = split(gated.mlp_gate)
        weight = torch.cat([core_first.weight, gate_first.weight], dim=0).detach()
        if weight.shape[1] != sum(part_dims):
            raise ValueError(f"gated MLP takes {weight.shape[1]} inputs, parts add up to {sum(part_dims)}")
        bias = torch.cat([core_first.bias, gate_first.bias]).detach()
        return cls(parts=list(torch.split(weight, list(part_dims), dim=1)), bias=bias,
                   hidden=core_first.out_features, core_rest=core_rest, gate_rest=gate_rest, gated=gated)  # fmt: skip

    def project(self, part: int, features):
        return features @ self.parts[part].T

    def finish(self, pre):
        core = self.core_rest(pre[:, : self.hidden])
        gate = self.gate_rest(pre[:, self.hidden :])
        g = self.gated
        if g.norm is not None:
            core, gate = g.bn1(core), g.bn2(gate)
        return g.activation(core) * g.sigmoid(gate)


def _residual_update(layer, summed, features, norm):
    """The tail of CHGNet's atom and bond convolutions: output MLP, residual, norm."""
    if layer.use_mlp_out:
        summed = layer.mlp_out(summed)
    if layer.resnet:
        summed = summed + features
    return summed if norm is None else norm(summed)


class FactoredCHGNet:
    """``CHGNet.forward(graphs, task="e")`` with factored first layers; returns per-graph energies."""

    def __init__(self, model):
        from chgnet.model.layers import AtomConv

        self.model = model
        dims = model.model_args
        atom, bond, angle = dims["atom_fea_dim"], dims["bond_fea_dim"], dims["angle_fea_dim"]
        if not all(isinstance(layer, AtomConv) for layer in model.atom_conv_layers):
            raise TypeError("expected CHGNet atom convolution layers")
        self.atom_layers = [_FactoredGatedMLP.of(layer.twoBody_atom, (atom, bond, atom))
                            for layer in model.atom_conv_layers]  # fmt: skip
        # as CHGNet's forward: the three-body layers pair with all atom convolutions but the last
        self.three_body = [
            (None if b is None else _FactoredGatedMLP.of(b.twoBody_bond, (bond, bond, angle, atom)),
             None if a is None else _FactoredGatedMLP.of(a.twoBody_bond, (bond, bond, angle, atom)))
            for _, b, a in zip(model.atom_conv_layers[:-1], model.bond_conv_layers, model.angle_layers)
        ]  # fmt: skip

    def __call__(self, graphs: Sequence):
        import torch
        from chgnet.model.functions import aggregate
        from chgnet.model.model import BatchedGraph

        m = self.model
        # index_select, not x[index]: its backward is a dense index_add, several times faster on CPU
        def gather(rows, index):
            return torch.index_select(rows, 0, index)

        comp_energy = 0 if m.composition_model is None else m.composition_model(graphs)
        g = BatchedGraph.from_graphs(graphs, bond_basis_expansion=m.bond_basis_expansion,
                                     angle_basis_expansion=m.angle_basis_expansion, compute_stress=False)  # fmt: skip
        atoms_per_graph = torch.bincount(g.atom_owners)
        atom_feas = m.atom_embedding(g.atomic_numbers - 1)
        bond_feas = m.bond_embedding(g.bond_bases_ag)
        bond_weights_ag = m.bond_weights_ag(g.bond_bases_ag)
        bond_weights_bg = m.bond_weights_bg(g.bond_bases_bg)
        has_angles = len(g.angle_bases) != 0
        ag = g.batched_atom_graph.long()
        d2u = g.directed2undirected.long()
        bond_weight_directed = gather(bond_weights_ag, d2u)
        if has_angles:
            angle_feas = m.angle_embedding(g.angle_bases)
            bg = g.batched_bond_graph.long()
            # the bond convolution reads only bonds inside the bond-graph cutoff: project just those
            used_bonds, slot = torch.unique(bg[:, 1:3], return_inverse=True)
            bw_pair = gather(bond_weights_bg, bg[:, 1]) * gather(bond_weights_bg, bg[:, 2])

        def atom_conv(index: int, atom_feas, bond_feas):
            layer, f = m.atom_conv_layers[index], self.atom_layers[index]
            atom_part = atom_feas @ torch.cat([f.parts[0], f.parts[2]], dim=0).T
            center_part, nbr_part = atom_part.split(2 * f.hidden, dim=1)
            bond_part = f.project(1, bond_feas) + f.bias
            pre = gather(center_part, ag[:, 0]) + gather(bond_part, d2u) + gather(nbr_part, ag[:, 1])
            messages = f.finish(pre) * bond_weight_directed
            new = aggregate(messages, ag[:, 0], average=False, num_owner=len(atom_feas))
            return _residual_update(layer, new, atom_feas, layer.atom_norm)

        def three_body_pre(f: _FactoredGatedMLP, atom_feas, bond_feas, angle_feas):
            bond_part = gather(bond_feas, used_bonds) @ torch.cat([f.parts[0], f.parts[1]], dim=0).T
            part_i, part_j = bond_part.split(2 * f.hidden, dim=1)
            return (gather(part_i, slot[:, 0]) + gather(part_j, slot[:, 1]) + f.project(2, angle_feas) + f.bias
                    + gather(f.project(3, atom_feas), bg[:, 0]))  # fmt: skip

        def bond_conv(index: int, atom_feas, bond_feas, angle_feas):
            layer, f = m.bond_conv_layers[index], self.three_body[index][0]
            update = f.finish(three_body_pre(f, atom_feas, bond_feas, angle_feas)) * bw_pair
            new = aggregate(update, bg[:, 1], average=False, num_owner=len(bond_feas))
            return _residual_update(layer, new, bond_feas, layer.bond_norm)

        def angle_update(index: int, atom_feas, bond_feas, angle_feas):
            layer, f = m.angle_layers[index], self.three_body[index][1]
            new = f.finish(three_body_pre(f, atom_feas, bond_feas, angle_feas))
            if layer.resnet:
                new = new + angle_feas
            return new if layer.angle_norm is None else layer.angle_norm(new)

        for idx, (bond_layer, angle_layer) in enumerate(self.three_body):
            atom_feas = atom_conv(idx, atom_feas, bond_feas)
            if has_angles and bond_layer is not None:
                bond_feas = bond_conv(idx, atom_feas, bond_feas, angle_feas)
                if angle_layer is not None:
                    angle_feas = angle_update(idx, atom_feas, bond_feas, angle_feas)
        atom_feas = atom_conv(len(m.atom_conv_layers) - 1, atom_feas, bond_feas)
        if m.readout_norm is not None:
            atom_feas = m.readout_norm(atom_feas)
        if m.mlp_first:
            energy = m.pooling(m.mlp(atom_feas), g.atom_owners).view(-1)
        else:
            energy = m.mlp(m.pooling(atom_feas, g.atom_owners)).view(-1) * atoms_per_graph
        if m.is_intensive:
            energy = energy / atoms_per_graph
        return energy + comp_energy
