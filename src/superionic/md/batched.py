"""Lockstep NVT molecular dynamics: many systems, one fast CHGNet evaluation per step.

Every MD step of every system (materials, temperatures, replicas; sizes may
differ) needs one energy+forces call. Here all systems advance in lockstep
through :class:`BatchedPotential`, which builds CHGNet graphs with array
operations and runs CHGNet's weights through a factored forward
(:mod:`superionic.md.chgnet_fast`): one batched forward on a GPU, one forward
per system on a CPU. ``benchmarks/mlip_batched_md.py`` measures it against
the standard ASE loop.

The integrators are the ones :func:`superionic.md.mlip.run_nvt` runs through
ASE (velocity Verlet with the Bussi thermostat, or ASE's Langevin), rewritten
over plain arrays with the same arithmetic in the same order and the same
random draws from each run's own generator, in the same order. Only the
forces differ from the ASE loop, by float32 rounding, so a short run
reproduces the ASE trajectory to ~1e-5 A. Each system keeps its own arrays:
the integrator costs microseconds per step against tens of milliseconds for
the model, so nothing is gained by fusing it further, and per-system
arithmetic keeps the ASE operation order exactly.

Forces are the gradient of the energy with respect to each graph's
fractional coordinates, mapped to Cartesian: CHGNet's own force path builds
a second-order autograd graph (``create_graph=True``, which only training
needs) and costs ~1.4x more on CPU.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Structure

from superionic.md.analysis import Trajectory

log = logging.getLogger(__name__)


class BatchedPotential:
    """Energies (eV) and forces (eV/A) of many periodic cells from CHGNet's weights.

    Graphs and the forward pass are :mod:`superionic.md.chgnet_fast` (array
    graph construction, factored first layers; CHGNet's numbers to float32
    rounding). On a GPU all cells go through one batched forward; on a CPU one
    forward per cell is faster (measured in ``benchmarks/mlip_batched_md.py``:
    a cell's working set stays in cache), and it makes each run's forces
    independent of which runs share its batch.
    """

    def __init__(self, model, device: str):
        from superionic.md.chgnet_fast import FactoredCHGNet

        self.model = model
        self.device = device
        model.eval()
        self.forward = FactoredCHGNet(model)
        self.per_cell = device == "cpu"

    def graph(self, cell: np.ndarray, atomic_numbers: np.ndarray, frac: np.ndarray):
        from superionic.md.chgnet_fast import crystal_graph

        converter = self.model.graph_converter
        return crystal_graph(cell, atomic_numbers, frac, atom_cutoff=converter.atom_graph_cutoff,
                             bond_cutoff=converter.bond_graph_cutoff)  # fmt: skip

    def __call__(self, graphs: Sequence) -> tuple[list[float], list[np.ndarray]]:
        groups = [[g] for g in graphs] if self.per_cell else [list(graphs)]
        energies, forces = [], []
        for group in groups:
            e, f = self._energies_forces(group)
            energies += e
            forces += f
        return energies, forces

    def _energies_forces(self, graphs: Sequence) -> tuple[list[float], list[np.ndarray]]:
        import torch

        on_device = [g.to(self.device) for g in graphs]
        coords = [g.atom_frac_coord for g in on_device]
        energy = self.forward(on_device)
        n_atoms = torch.tensor([len(c) for c in coords], dtype=energy.dtype, device=energy.device)
        per_graph = energy * n_atoms if self.model.is_intensive else energy
        # each graph's energy depends on its own coordinates only: one backward gives all forces
        grads = torch.autograd.grad(per_graph.sum(), coords)
        energies = per_graph.detach().cpu().numpy().astype(np.float64)
        forces = []
        for g, grad in zip(on_device, grads, strict=True):
            lattice = g.lattice.detach().cpu().numpy().astype(np.float64)
            # positions = frac @ L (row vectors), so dE/dfrac = dE/dpos @ L^T
            dedpos = np.linalg.solve(lattice, grad.detach().cpu().numpy().astype(np.float64).T).T
            forces.append(-dedpos)
        return [float(e) for e in energies], forces


# --- thermostats: ASE's update rules over one system's arrays ---------------------


class _Bussi:
    """Stochastic velocity rescaling, as ``ase.md.bussi.Bussi`` (same draws, same order)."""

    def __init__(self, system: _System, tau_fs: float):
        from ase import units

        if system.kinetic_energy() <= 1e-12:
            raise ValueError(f"{system.label}: zero kinetic energy, the Bussi thermostat cannot rescale it")
        self.ndof = 3 * system.n_atoms
        self.target = 0.5 * system.temperature * units.kB * self.ndof
        self.exp_term = math.exp(-system.dt / (tau_fs * units.fs))

    def before_forces(self, s: _System) -> None:
        ke = s.kinetic_energy()
        scaling = (1 - self.exp_term) * self.target / ke / self.ndof
        normal = s.rng.standard_normal()
        chi2 = 2.0 * s.rng.standard_gamma(0.5 * (self.ndof - 1))
        alpha = math.sqrt(self.exp_term + scaling * (chi2 + normal**2)
                          + 2 * normal * math.sqrt(self.exp_term * scaling))  # fmt: skip
        s.momenta = alpha * s.momenta
        # velocity Verlet, first half
        s.momenta = s.momenta + 0.5 * s.dt * s.forces
        s.positions = s.positions + s.dt * s.momenta / s.masses

    def after_forces(self, s: _System) -> None:
        s.momenta = s.momenta + 0.5 * s.dt * s.forces


class _Langevin:
    """ASE's Langevin propagator (Vanden-Eijnden & Ciccotti), ``fixcm=True`` as ASE defaults."""

    def __init__(self, system: _System, tau_fs: float):
        from ase import units

        dt, kt, fr = system.dt, system.temperature * units.kB, 1.0 / (tau_fs * units.fs)
        sigma = np.sqrt(2 * kt * fr / system.masses)
        self.c1 = dt / 2.0 - dt * dt * fr / 8.0
        self.c2 = dt * fr / 2 - dt * dt * fr * fr / 8.0
        self.c3 = np.sqrt(dt) * sigma / 2.0 - dt**1.5 * fr * sigma / 8.0
        self.c5 = dt**1.5 * sigma / (2 * np.sqrt(3))
        self.c4 = fr / 2.0 * self.c5
        self.rnd_vel = self.v = None

    def before_forces(self, s: _System) -> None:
        n, m = s.n_atoms, s.masses
        v = s.momenta / m
        xi = s.rng.standard_normal(size=(n, 3))
        eta = s.rng.standard_normal(size=(n, 3))
        rnd_pos = self.c5 * eta
        rnd_vel = self.c3 * xi - self.c4 * eta
        factor = np.sqrt(n / (n - 1.0))
        rnd_pos -= rnd_pos.sum(axis=0) / n
        rnd_vel -= (rnd_vel * m).sum(axis=0) / (m * n)
        rnd_pos *= factor
        rnd_vel *= factor
        v += self.c1 * s.forces / m - self.c2 * v + rnd_vel
        x = s.positions
        s.positions = x + s.dt * v + rnd_pos
        self.v = (s.positions - x - rnd_pos) / s.dt
        self.rnd_vel = rnd_vel

    def after_forces(self, s: _System) -> None:
        v = self.v + (self.c1 * s.forces / s.masses - self.c2 * self.v + self.rnd_vel)
        s.momenta = v * s.masses


THERMOSTATS = {"bussi": _Bussi, "langevin": _Langevin}


@dataclass
class _System:
    """One run's state and its recorded samples."""

    material: str
    temperature: float
    structure: Structure
    symbols: list[str]
    atomic_numbers: np.ndarray
    positions: np.ndarray
    momenta: np.ndarray
    masses: np.ndarray  # (n, 1)
    cell: np.ndarray
    dt: float  # ASE time units
    timestep_fs: float
    equilibration_steps: int
    sample_interval: int
    n_samples: int
    thermostat: str
    thermostat_time_fs: float
    equilibration_tau_fs: float
    rng: np.random.Generator
    progress_interval: int
    forces: np.ndarray | None = None
    energy: float = math.nan
    step: int = 0
    dynamics: object = None
    origin: np.ndarray | None = None
    disp: np.ndarray | None = None
    thermo: dict[str, np.ndarray] = field(default_factory=dict)
    started: float = 0.0
    next_report: int = 0
    # production steps between checkpoints (0: none)
    checkpoint_interval: int = 0
    # the step this invocation started from, and the production wall time
    # (s) of the invocations before it: a restored run's timing covers all of it
    start_step: int = 0
    earlier_wall_s: float = 0.0
    # of earlier_wall_s, the part of the finished shorter run this one extends
    # (an earlier timing file has it; an interrupted invocation's part none)
    extended_wall_s: float = 0.0

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def produced_before(self) -> int:
        """Production steps earlier invocations ran (0 for a run started here)."""
        return max(self.start_step - self.equilibration_steps, 0)

    @property
    def total_steps(self) -> int:
        return self.equilibration_steps + self.n_samples * self.sample_interval

    @property
    def label(self) -> str:
        return f"{self.material} {self.temperature:g} K"

    def kinetic_energy(self) -> float:
        # as ase.Atoms.get_kinetic_energy: same reduction, same rounding
        return float(0.5 * np.vdot(self.momenta, self.momenta / self.masses))

    def wrapped_fractional(self) -> np.ndarray:
        from ase.cell import Cell

        frac = Cell(self.cell).scaled_positions(self.positions)
        # twice, as ASE does: one modulo can round 1 - eps up to exactly 1.0
        frac %= 1.0
        frac %= 1.0
        return frac


def _start(job: Mapping, equilibration_tau_fs: float) -> _System:
    """Initial velocities exactly as :func:`superionic.md.mlip.run_nvt` draws them."""
    from ase import units
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from pymatgen.io.ase import AseAtomsAdaptor

    steps, interval = int(job["steps"]), int(job["sample_interval"])
    if job["thermostat"] not in THERMOSTATS:
        raise ValueError(f"md.mlip.thermostat must be one of {tuple(THERMOSTATS)}, got {job['thermostat']!r}")
    if steps < interval or interval < 1:
        raise ValueError("need md.mlip.steps >= md.mlip.sample_interval >= 1")
    if int(job["progress_interval"]) < 1:
        raise ValueError(f"md.mlip.progress_interval must be >= 1, got {job['progress_interval']}")
    if int(job.get("checkpoint_interval", 0)) % interval:
        raise ValueError(f"md.mlip.checkpoint_interval ({job['checkpoint_interval']}) must be a multiple of "
                         f"md.mlip.sample_interval ({interval})")  # fmt: skip
    atoms = AseAtomsAdaptor.get_atoms(job["structure"])
    thermalize_momenta(atoms, job["temperature"], rng=job["rng"])
    Stationary(atoms)
    return _System(
        material=job["material"], temperature=float(job["temperature"]), structure=job["structure"],
        symbols=atoms.get_chemical_symbols(), atomic_numbers=atoms.get_atomic_numbers().copy(), positions=atoms.get_positions().copy(),
        momenta=atoms.get_momenta().copy(), masses=atoms.get_masses()[:, None].copy(),
        cell=np.asarray(atoms.cell.array, dtype=np.float64).copy(), dt=float(job["timestep_fs"]) * units.fs,
        timestep_fs=float(job["timestep_fs"]), equilibration_steps=int(job["equilibration_steps"]),
        sample_interval=interval, n_samples=steps // interval, thermostat=str(job["thermostat"]),
        thermostat_time_fs=float(job["thermostat_time_fs"]),
        equilibration_tau_fs=min(float(job["thermostat_time_fs"]), equilibration_tau_fs),
        rng=job["rng"], progress_interval=int(job["progress_interval"]),
        checkpoint_interval=int(job.get("checkpoint_interval", 0)),
    )  # fmt: skip


# what a checkpoint holds besides the recorded samples: the state at a step boundary
_STATE_ARRAYS = ("positions", "momenta", "forces", "origin")
THERMO_KEYS = ("temperature", "potential_energy", "kinetic_energy")
# a finished run's end state: its state at the last step without the samples, which its run files hold
END_STATE_KEYS = ("step", "energy", "elapsed_s", "rng_state", *_STATE_ARRAYS)


def checkpoint_state(s: _System) -> dict[str, np.ndarray]:
    """A production run's full state at a step boundary: restoring it continues the run exactly.

    The thermostats keep nothing between steps, so positions, momenta, the
    forces at those positions, the random generator's state and the samples
    recorded so far are all of it. At a run's last step it is the run's end
    state, from which a longer run of the same identity continues.
    """
    import json

    i = (s.step - s.equilibration_steps) // s.sample_interval
    return {
        "step": np.array(s.step), "energy": np.array(s.energy),
        "elapsed_s": np.array(time.perf_counter() - s.started),
        "extended_wall_s": np.array(s.extended_wall_s),
        "rng_state": np.array(json.dumps(s.rng.bit_generator.state)),
        **{k: getattr(s, k) for k in _STATE_ARRAYS},
        "displacements": s.disp[:, : i + 1], **{f"thermo_{k}": s.thermo[k][: i + 1] for k in THERMO_KEYS},
    }  # fmt: skip


def _restore(s: _System, state: Mapping[str, np.ndarray]) -> None:
    """Put ``s`` (freshly started from its job) in the checkpointed ``state``.

    A state without ``momenta`` (a finished run saved before end states were
    kept: positions and samples only) continues with momenta drawn afresh from
    the Maxwell-Boltzmann distribution at the run's temperature, from the
    state's random stream, and forces evaluated at its positions: in the
    canonical ensemble momenta are independent of positions, so the
    continuation samples the same ensemble, though not the trajectory an
    uninterrupted run would have followed.
    """
    import json

    from ase import units

    step = int(state["step"])
    produced = step - s.equilibration_steps
    if produced <= 0 or produced % s.sample_interval or step >= s.total_steps:
        raise ValueError(f"{s.label}: checkpoint at step {step} is not a sample step of this run's production")
    if state["positions"].shape != s.positions.shape:
        raise ValueError(f"{s.label}: checkpoint holds {len(state['positions'])} atoms, the run {s.n_atoms}")
    _begin_production(s)
    i = produced // s.sample_interval
    s.step = s.start_step = step
    s.energy = float(state["energy"]) if "energy" in state else math.nan
    s.rng.bit_generator.state = json.loads(str(state["rng_state"]))
    for k in _STATE_ARRAYS:
        setattr(s, k, np.array(state[k], dtype=np.float64) if k in state else None)
    if s.momenta is None:
        p = s.rng.standard_normal(s.positions.shape) * np.sqrt(s.masses * units.kB * s.temperature)
        # centre-of-mass momentum removed; unlike ASE's Stationary, no rescaling to the exact temperature
        s.momenta = p - s.masses * p.sum(axis=0) / s.masses.sum()
    s.disp[:, : i + 1] = state["displacements"]
    for k in THERMO_KEYS:
        s.thermo[k][: i + 1] = state[f"thermo_{k}"]
    s.earlier_wall_s = float(state["elapsed_s"])
    s.extended_wall_s = float(state.get("extended_wall_s", 0.0))
    s.started = time.perf_counter() - s.earlier_wall_s
    s.next_report = (produced // s.progress_interval + 1) * s.progress_interval
    log.info("%s: continuing from production step %d", s.label, produced)


def _evaluate(potential: BatchedPotential, systems: Sequence[_System]) -> None:
    graphs = [potential.graph(s.cell, s.atomic_numbers, s.wrapped_fractional()) for s in systems]
    energies, forces = potential(graphs)
    for s, e, f in zip(systems, energies, forces, strict=True):
        s.energy, s.forces = e, f


def _record(s: _System, i: int) -> None:
    from ase import units

    ke = s.kinetic_energy()
    s.disp[:, i, :] = s.positions - s.origin
    s.thermo["temperature"][i] = 2 * ke / (3 * s.n_atoms * units.kB)
    s.thermo["potential_energy"][i] = s.energy
    s.thermo["kinetic_energy"][i] = ke


def _begin_production(s: _System) -> None:
    s.dynamics = THERMOSTATS[s.thermostat](s, s.thermostat_time_fs)
    s.origin = s.positions.copy()
    s.disp = np.zeros((s.n_atoms, s.n_samples + 1, 3))
    s.thermo = {k: np.zeros(s.n_samples + 1) for k in ("temperature", "potential_energy", "kinetic_energy")}
    _record(s, 0)
    log.info("%s: %d atoms, %d production steps", s.label, s.n_atoms, s.n_samples * s.sample_interval)
    s.started = time.perf_counter()
    s.next_report = s.progress_interval


def _after_step(s: _System) -> None:
    from superionic.stage import progress_line

    produced = s.step - s.equilibration_steps
    if produced == 0:
        _begin_production(s)
        return
    if produced < 0 or produced % s.sample_interval:
        return
    i = produced // s.sample_interval
    _record(s, i)
    if produced >= s.next_report or i == s.n_samples:
        line = progress_line(s.label, produced, s.n_samples * s.sample_interval, time.perf_counter() - s.started,
                             resumed_at=(s.produced_before, s.earlier_wall_s))  # fmt: skip
        log.info("%s, T %.0f K, E_pot %.3f eV", line, s.thermo["temperature"][i], s.thermo["potential_energy"][i])
        s.next_report = (produced // s.progress_interval + 1) * s.progress_interval


def _share(s: _System, elapsed_s: float, atom_steps: int) -> float:
    """A run's production wall time: the atom-steps it ran in this invocation at the batch's mean
    cost per atom-step so far, plus what earlier invocations spent on it.

    The loop also ran equilibration steps; a run's timing, like run_nvt's,
    covers its production steps only.
    """
    produced_here = s.n_samples * s.sample_interval - s.produced_before
    return elapsed_s / max(atom_steps, 1) * produced_here * s.n_atoms + s.earlier_wall_s


def _result(s: _System, wall_s: float):
    from superionic.md.mlip import MDTiming, run_name

    traj = Trajectory(
        material=s.material,
        temperature=s.temperature,
        species=tuple(s.symbols),
        displacements=s.disp,
        frame_interval_fs=s.timestep_fs * s.sample_interval,
        volume=float(abs(np.linalg.det(s.cell))),
        formula=s.structure.composition.reduced_formula,
        source=run_name(s.material, s.temperature),
        origin=s.origin,
        cell=s.cell.copy(),
    )
    steps = np.arange(s.n_samples + 1) * s.sample_interval
    thermo = {"step": steps, "time_fs": steps * s.timestep_fs, **s.thermo,
              "total_energy": s.thermo["potential_energy"] + s.thermo["kinetic_energy"]}  # fmt: skip
    thermo = {k: thermo[k] for k in ("step", "time_fs", "temperature", "potential_energy", "kinetic_energy",
                                     "total_energy")}  # fmt: skip
    return traj, thermo, MDTiming(steps=s.n_samples * s.sample_interval, n_atoms=s.n_atoms, wall_s=wall_s)


def run_nvt_batched(jobs: Sequence[Mapping], potential: BatchedPotential, *, equilibration_tau_fs: float,
                    on_done: Callable[[int, tuple, dict], None] | None = None,
                    on_checkpoint: Callable[[int, dict], None] | None = None):  # fmt: skip
    """Run every job (the keyword arguments of :func:`~superionic.md.mlip.run_nvt`, plus
    ``structure``) together; returns ``(trajectory, thermo, timing)`` per job, in order.
    ``on_done(index, result, end_state)`` is called as each run finishes (to save it at once;
    ``end_state`` holds :data:`END_STATE_KEYS`).

    A job with ``checkpoint_interval`` > 0 hands its :func:`checkpoint_state` to
    ``on_checkpoint(index, state)`` every that many production steps; a job
    with ``restart`` (such a state) continues from it, on the trajectory it
    would have followed without the interruption. ``on_done`` also gets the
    run's end state, from which a longer run continues the same way.

    Runs may differ in size, temperature, thermostat, time step and length:
    each leaves the batch when it is done. A run's ``timing.wall_s`` is its
    production atom-steps at the batch's mean cost per atom-step up to the
    moment it finished.
    """
    systems = [_start(job, equilibration_tau_fs) for job in jobs]
    _evaluate(potential, systems)
    for s, job in zip(systems, jobs, strict=True):
        if job.get("restart") is not None:
            _restore(s, job["restart"])
        elif s.equilibration_steps > 0:
            s.dynamics = THERMOSTATS[s.thermostat](s, s.equilibration_tau_fs)
        else:
            _begin_production(s)
    # restored without forces (a continued legacy run): evaluated where it now stands
    unforced = [s for s in systems if s.forces is None]
    if unforced:
        _evaluate(potential, unforced)
    start = time.perf_counter()
    results: dict[int, tuple] = {}

    def done_atom_steps(finished: _System) -> int:
        # atom-steps the batch has run in this invocation by the time `finished` leaves it
        return sum(max(min(s.step, finished.step) - s.start_step, 0) * s.n_atoms for s in systems)

    active = [s for s in systems if s.step < s.total_steps]
    while active:
        for s in active:
            s.dynamics.before_forces(s)
        _evaluate(potential, active)
        for s in active:
            s.dynamics.after_forces(s)
            s.step += 1
            _after_step(s)
            produced = s.step - s.equilibration_steps
            if (on_checkpoint is not None and s.checkpoint_interval and 0 < produced
                    and produced % s.checkpoint_interval == 0 and s.step < s.total_steps):  # fmt: skip
                on_checkpoint(next(i for i, x in enumerate(systems) if x is s), checkpoint_state(s))
        done = [s for s in active if s.step >= s.total_steps]
        active = [s for s in active if s.step < s.total_steps]
        for s in done:
            results[id(s)] = _result(s, _share(s, time.perf_counter() - start, done_atom_steps(s)))
            if on_done is not None:
                # the run's production wall time (its share of the batch), as its timing says
                end = {k: v for k, v in checkpoint_state(s).items() if k in END_STATE_KEYS}
                end["elapsed_s"] = np.array(results[id(s)][2].wall_s)
                on_done(next(i for i, x in enumerate(systems) if x is s), results[id(s)], end)
    return [results[id(s)] for s in systems]
