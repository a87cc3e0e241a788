"""Stage ``mlip-md``: NVT molecular dynamics with a pretrained universal potential
(CHGNet, weights bundled in the ``chgnet`` package: nothing is downloaded),
then the same MSD/Arrhenius analysis as the AIMD stage.

Integrator: ASE velocity Verlet with the Bussi stochastic velocity-rescaling
thermostat by default. It samples the canonical ensemble but acts on the
total kinetic energy only, so single-ion dynamics (and hence D) are barely
perturbed, unlike Langevin friction on every atom; ``langevin`` is available
for comparison. The calculator asks CHGNet for energies and forces only
(``task="ef"``): NVT needs no stress or magnetic moments, and skipping them
is cheaper. ``md.mlip.batch`` advances all runs together with one batched
model evaluation per step (:mod:`superionic.md.batched`), same integrators.

Each run is saved as npz (analysed), extended XYZ (for ASE, OVITO and
DiffusionAnalyzer) and an MD log CSV; see :mod:`superionic.md.io`. While a run
goes, a log line every ``md.mlip.progress_interval`` steps gives progress,
the elapsed time and the ETA of that run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from pymatgen.core import Lattice, Structure

from superionic.io import write_csv, write_json, write_npz
from superionic.md import plots
from superionic.md import tables as T
from superionic.md.analysis import REASON_UNSTABLE, Trajectory
from superionic.md.batched import THERMO_KEYS
from superionic.config import Device, Thermostat
from superionic.md.io import load_trajectory, run_file_paths, save_run_files, starting_structures
from superionic.stage import StageResult, format_duration, progress_line, stage  # noqa: F401 (md API)

log = logging.getLogger(__name__)

# the stage's folder under md.report_dir (the wall-clock file stays beside it, out of git and DVC)
MLIP_DIR = "mlip-md"
RUNS_CSV = f"{MLIP_DIR}/mlip_runs.csv"
FITS_CSV = f"{MLIP_DIR}/mlip_arrhenius.csv"
METRICS_JSON = f"{MLIP_DIR}/mlip_metrics.json"
TIMING_JSON = "mlip_timing.json"
FIGURE = f"{MLIP_DIR}/mlip_arrhenius.png"
TRAJ_DIR = "mlip"
# key of a run record (outside the run's identity) naming the shorter finished run it extends
CONTINUED_FROM = "continued_from"

THERMOSTATS = tuple(t.value for t in Thermostat)
DEVICES = tuple(d.value for d in Device)
MODELS = ("0.3.0", "0.2.0", "r2scan")
# a run whose mean production temperature is further than this (relative)
# from the target is not at the temperature it claims: flagged unstable
MAX_TEMPERATURE_DEVIATION = 0.15
# thermostat time constant (fs) during equilibration
EQUILIBRATION_TAU_FS = 20.0


def resolve_device(requested: str) -> str:
    import torch

    # a plain str: torch and the timing JSON get the name, not the schema's enum
    requested = str(requested)
    if requested not in DEVICES:
        raise ValueError(f"md.mlip.device must be one of {DEVICES}, got {requested!r}")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "md.mlip.device=cuda but torch sees no CUDA device (CPU-only torch build or no GPU); "
            "set md.mlip.device=cpu or auto"
        )
    return requested


def load_model(name: str, device: str):
    """The pretrained CHGNet bundled in the package (local file, no network)."""
    from chgnet.model import CHGNet

    if name not in MODELS:
        raise ValueError(f"md.mlip.model must be one of {MODELS}, got {name!r}")
    return CHGNet.load(model_name=name, use_device=device, verbose=False)


def _calculator_class():
    from ase.calculators.calculator import Calculator, all_changes

    class EnergyForceCalculator(Calculator):
        """ASE calculator over a CHGNet model that computes energy and forces only."""

        implemented_properties = ("energy", "free_energy", "forces")

        def __init__(self, model, device: str):
            super().__init__()
            self.model = model
            self.device = device

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            atoms = self.atoms
            # ASE keeps MD positions unwrapped (we need that for displacements);
            # the graph is built from wrapped fractional coordinates.
            structure = Structure(
                Lattice(np.asarray(atoms.cell.array)),
                atoms.get_chemical_symbols(),
                atoms.get_scaled_positions(wrap=True),
            )
            graph = self.model.graph_converter(structure)
            pred = self.model.predict_graph(graph.to(self.device), task="ef")
            factor = len(atoms) if self.model.is_intensive else 1
            energy = float(pred["e"]) * factor
            self.results = {
                "energy": energy,
                "free_energy": energy,
                "forces": np.asarray(pred["f"], dtype=np.float64),
            }

    return EnergyForceCalculator


def make_calculator(model, device: str):
    return _calculator_class()(model, device)


def supercell_for(structure: Structure, min_length: float) -> Structure:
    """Replicate until every perpendicular cell width is >= ``min_length`` (A)."""
    if min_length <= 0:
        return structure.copy()
    m = structure.lattice.matrix
    vol = abs(np.linalg.det(m))
    widths = [vol / np.linalg.norm(np.cross(m[(i + 1) % 3], m[(i + 2) % 3])) for i in range(3)]
    scale = [max(1, math.ceil(min_length / w - 1e-9)) for w in widths]
    return structure * scale


def run_seed(seed: int, material: str, temperature: float, *stream: int) -> np.random.Generator:
    """RNG of one run, independent of run order (seed, material, T); ``stream`` picks another
    independent stream of the same run (:func:`continuation_rng`)."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(material.encode()), int(round(temperature)),
                                                         *stream))  # fmt: skip
    return np.random.default_rng(ss)


@dataclass(frozen=True)
class MDTiming:
    steps: int
    n_atoms: int
    wall_s: float

    @property
    def ms_per_step(self) -> float:
        return 1000.0 * self.wall_s / max(self.steps, 1)

    @property
    def us_per_atom_step(self) -> float:
        return 1e6 * self.wall_s / max(self.steps * self.n_atoms, 1)


def run_nvt(
    structure: Structure,
    calculator,
    *,
    material: str,
    temperature: float,
    timestep_fs: float,
    equilibration_steps: int,
    steps: int,
    sample_interval: int,
    thermostat: str,
    thermostat_time_fs: float,
    rng: np.random.Generator,
    progress_interval: int,
) -> tuple[Trajectory, dict[str, np.ndarray], MDTiming]:
    """NVT MD; returns displacements from the first production frame and a thermo log.

    The thermo log has one value per saved frame: production ``step``,
    ``time_fs``, ``temperature`` (K) and ``potential``/``kinetic``/``total_energy``
    (eV). A progress line with ETA is logged every ``progress_interval``
    production steps (rounded up to whole sampling intervals).
    """
    from ase import units
    from ase.md.bussi import Bussi
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from pymatgen.io.ase import AseAtomsAdaptor

    if thermostat not in THERMOSTATS:
        raise ValueError(f"md.mlip.thermostat must be one of {THERMOSTATS}, got {thermostat!r}")
    if steps < sample_interval or sample_interval < 1:
        raise ValueError("need md.mlip.steps >= md.mlip.sample_interval >= 1")
    if progress_interval < 1:
        raise ValueError(f"md.mlip.progress_interval must be >= 1, got {progress_interval}")
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    thermalize_momenta(atoms, temperature, rng=rng)
    Stationary(atoms)
    dt = timestep_fs * units.fs

    def thermostatted(tau_fs: float):
        if thermostat == "bussi":
            return Bussi(atoms, dt, temperature_K=temperature, taut=tau_fs * units.fs, rng=rng)
        return Langevin(atoms, dt, temperature_K=temperature, friction=1.0 / (tau_fs * units.fs),
                        rng=rng)  # fmt: skip

    if equilibration_steps > 0:
        # Started from the ideal lattice, half the kinetic energy flows into the
        # potential energy within ~100 fs; tight coupling during equilibration
        # brings the cell to temperature quickly, production uses the weak one.
        thermostatted(min(thermostat_time_fs, EQUILIBRATION_TAU_FS)).run(equilibration_steps)
    dyn = thermostatted(thermostat_time_fs)
    n_samples = steps // sample_interval
    origin = atoms.get_positions().copy()
    disp = np.zeros((len(atoms), n_samples + 1, 3))
    temps = np.zeros(n_samples + 1)
    epot = np.zeros(n_samples + 1)
    ekin = np.zeros(n_samples + 1)

    def record(i: int) -> None:
        temps[i], epot[i], ekin[i] = atoms.get_temperature(), atoms.get_potential_energy(), atoms.get_kinetic_energy()

    record(0)
    label = f"{material} {temperature:g} K"
    total_steps = n_samples * sample_interval
    log.info("%s: %d atoms, %d production steps", label, len(atoms), total_steps)
    start = time.perf_counter()
    next_report = progress_interval
    for i in range(1, n_samples + 1):
        dyn.run(sample_interval)
        disp[:, i, :] = atoms.get_positions() - origin
        record(i)
        done = i * sample_interval
        if done >= next_report or i == n_samples:
            log.info("%s, T %.0f K, E_pot %.3f eV", progress_line(label, done, total_steps,
                     time.perf_counter() - start), temps[i], epot[i])  # fmt: skip
            next_report = (done // progress_interval + 1) * progress_interval
    wall = time.perf_counter() - start
    traj = Trajectory(
        material=material,
        temperature=float(temperature),
        species=tuple(atoms.get_chemical_symbols()),
        displacements=disp,
        frame_interval_fs=timestep_fs * sample_interval,
        volume=float(atoms.get_volume()),
        formula=structure.composition.reduced_formula,
        source=run_name(material, temperature),
        origin=origin,
        cell=np.asarray(atoms.cell.array, dtype=np.float64).copy(),
    )
    steps_done = np.arange(n_samples + 1) * sample_interval
    thermo = {"step": steps_done, "time_fs": steps_done * timestep_fs, "temperature": temps,
              "potential_energy": epot, "kinetic_energy": ekin, "total_energy": epot + ekin}  # fmt: skip
    return traj, thermo, MDTiming(steps=n_samples * sample_interval, n_atoms=len(atoms), wall_s=wall)


def stability_problem(thermo: dict[str, np.ndarray], target: float) -> str | None:
    """Why a run's thermodynamics cannot be trusted, or None."""
    temps = np.asarray(thermo["temperature"], float)
    epot = np.asarray(thermo["potential_energy"], float)
    if not (np.all(np.isfinite(temps)) and np.all(np.isfinite(epot))):
        return "non-finite energy or temperature"
    mean_t = float(temps[1:].mean()) if temps.size > 1 else float(temps[0])
    if abs(mean_t - target) > MAX_TEMPERATURE_DEVIATION * target:
        return f"mean temperature {mean_t:.0f} K vs target {target:.0f} K"
    return None


# --- structures -----------------------------------------------------------------


def cif_structures(cif_dir: str | None) -> dict[str, Structure]:
    if not cif_dir:
        return {}
    folder = Path(cif_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"md.mlip.cif_dir {folder} is not a folder")
    return {f"cif:{p.stem}": Structure.from_file(p) for p in sorted(folder.glob("*.cif"))}


def candidate_structures(csv_path: str | None, id_column: str) -> tuple[dict[str, Structure], list[str]]:
    """Fetch screening candidates from the Materials Project, when possible.

    Needs ``MP_API_KEY`` in the environment, the optional ``mp-api`` package and
    network. Without them it says so (returned notes, logged) and returns
    nothing; the stage goes on with the structures it has.
    """
    notes: list[str] = []
    if not csv_path:
        return {}, notes
    path = Path(csv_path)
    if not path.exists():
        raise FileNotFoundError(f"md.mlip.candidates_csv {path} does not exist")
    table = pd.read_csv(path, keep_default_na=False)
    if id_column not in table.columns:
        raise ValueError(f"md.mlip.candidates_id_column {id_column!r} not in {path} columns {list(table.columns)}")
    ids = sorted({str(x).strip() for x in table[id_column] if str(x).strip()})
    if not ids:
        notes.append(f"{path}: no candidate ids")
        return {}, notes
    key = os.environ.get("MP_API_KEY", "")
    if not key:
        notes.append(f"MP_API_KEY not set: {len(ids)} candidate structures from {path} NOT fetched")
        return {}, notes
    try:
        from mp_api.client import MPRester
    except ImportError:
        notes.append(f"mp-api not installed (pip install mp-api): {len(ids)} candidates NOT fetched")
        return {}, notes
    out: dict[str, Structure] = {}
    try:
        with MPRester(key) as mpr:
            for mpid in ids:
                try:
                    out[mpid] = mpr.get_structure_by_material_id(mpid)
                except Exception as exc:  # one bad id (unknown, deprecated) must not stop the rest
                    notes.append(f"{mpid}: not fetched ({type(exc).__name__}: {exc})")
    except Exception as exc:  # network or authentication failure: say so, continue without
        notes.append(f"Materials Project unreachable ({type(exc).__name__}: {exc}): candidates NOT fetched")
    notes.append(f"fetched {len(out)} of {len(ids)} candidate structures from the Materials Project")
    return out, notes


def run_name(material: str, temperature: float) -> str:
    """A run's name in logs, timing records and ``md.mlip.runs_only``: ``mp-1234/800K``."""
    return f"{material}/{temperature:g}K"


def run_list(mlip: DictConfig) -> list[tuple[str | None, float, int]]:
    """(material, temperature, steps) of every run; material None = every gathered structure.

    ``md.mlip.runs`` when given (each run its own temperature and length),
    else ``md.mlip.temperatures`` x the materials at ``md.mlip.steps``.
    """
    if mlip.runs:
        if mlip.materials:
            raise ValueError("md.mlip.runs names its materials: leave md.mlip.materials empty")
        runs = sorted((str(r.material), float(r.temperature), int(r.steps)) for r in mlip.runs)
        if mlip.runs_only:
            wanted = {str(x) for x in mlip.runs_only}
            names = {r: {r[0], run_name(r[0], r[1])} for r in runs}
            unknown = sorted(wanted - set().union(*names.values()))
            if unknown:
                raise ValueError(f"md.mlip.runs_only: {unknown} not among md.mlip.runs (a material, or material/<T>K)")
            runs = [r for r in runs if names[r] & wanted]
        return runs
    if mlip.runs_only:
        raise ValueError("md.mlip.runs_only selects among md.mlip.runs, which is empty")
    return [(None, float(t), int(mlip.steps)) for t in sorted(float(t) for t in mlip.temperatures)]


def gather_structures(md: DictConfig) -> tuple[dict[str, Structure], list[str]]:
    named = sorted({m for m, _, _ in run_list(md.mlip) if m is not None}) or list(md.mlip.materials)
    structures = dict(starting_structures(Path(md.aimd.data), named or None))
    structures.update(cif_structures(md.mlip.cif_dir))
    candidates, notes = candidate_structures(md.mlip.candidates_csv, md.mlip.candidates_id_column)
    for mpid, s in candidates.items():
        structures.setdefault(mpid, s)
    for note in notes:
        log.warning("%s", note)
    return structures, notes


# --- stage -------------------------------------------------------------------------


# one model per process: the in-process run and each pool worker load it once
_WORKER: dict = {}


def _init_worker(model_name: str, device: str, threads: int) -> None:
    import torch

    from superionic.md.batched import BatchedPotential
    from superionic.stage import configure_process

    configure_process()

    torch.set_num_threads(threads)
    model = load_model(model_name, device)
    _WORKER["calc"] = make_calculator(model, device)
    _WORKER["potential"] = BatchedPotential(model, device)


def _save_run(target: tuple[str, dict], result: tuple) -> None:
    """A finished run's files and its identity record, written by the process that ran it.

    Written as each run ends, so a stopped stage keeps what it finished
    (``md.mlip.resume`` reuses it). The record of a run that extends a shorter
    one also says which (``continued_from``), outside its identity.
    """
    path, identity = Path(target[0]), target[1]
    traj, thermo, _ = result
    save_run_files(path, traj, thermo)
    write_json(identity, run_record_path(path))


def _identity_of(record: Mapping) -> dict:
    return {k: v for k, v in record.items() if k != CONTINUED_FROM}


def _simulate_one(job: dict) -> tuple[Trajectory, dict[str, np.ndarray], MDTiming]:
    target = (job.pop("save_to"), job.pop("identity"))
    result = run_nvt(job.pop("structure"), _WORKER["calc"], **job)
    _save_run(target, result)
    return result


def _save_checkpoint(target: tuple[str, dict], state: dict[str, np.ndarray], *, end: bool = False) -> None:
    """A running run's checkpoint (or a finished run's end state), with its identity: a stopped stage
    continues it, a longer run of the same identity continues from the end state (``md.mlip.resume``)."""
    path, identity = Path(target[0]), _identity_of(target[1])
    # a checkpoint of a run that extends a shorter one remembers which, for the record it ends with
    continued = ({CONTINUED_FROM: np.array(json.dumps(target[1][CONTINUED_FROM]))}
                 if CONTINUED_FROM in target[1] and not end else {})  # fmt: skip
    write_npz((end_state_path if end else checkpoint_path)(path),
              identity=np.array(json.dumps(identity, sort_keys=True)), **state, **continued)  # fmt: skip


def load_checkpoint(npz_path: Path, identity: dict) -> dict[str, np.ndarray] | None:
    """The saved checkpoint of the run at ``npz_path`` when it is one of ``identity``'s run, else None."""
    path = checkpoint_path(npz_path)
    if not path.exists():
        return None
    with np.load(path) as saved:
        state = {k: saved[k] for k in saved.files}
    if json.loads(str(state.pop("identity"))) != identity:
        return None
    return state


def _simulate_batch(jobs: list[dict]) -> list[tuple[Trajectory, dict[str, np.ndarray], MDTiming]]:
    from superionic.md.batched import run_nvt_batched

    targets = [(job.pop("save_to"), job.pop("identity")) for job in jobs]

    def done(i: int, result: tuple, end_state: dict) -> None:
        _save_run(targets[i], result)
        # the samples are in the run's files (a longer run rebuilds them from there, float32 as stored)
        _save_checkpoint(targets[i], end_state, end=True)
        checkpoint_path(Path(targets[i][0])).unlink(missing_ok=True)

    return run_nvt_batched(jobs, _WORKER["potential"], equilibration_tau_fs=EQUILIBRATION_TAU_FS, on_done=done,
                           on_checkpoint=lambda i, state: _save_checkpoint(targets[i], state))  # fmt: skip


def _ensure_worker(init_args: tuple) -> None:
    if _WORKER.get("init") != init_args:
        _init_worker(*init_args)
        _WORKER["init"] = init_args


def _simulate_on_worker(job: dict, init_args: tuple) -> tuple[Trajectory, dict[str, np.ndarray], MDTiming]:
    """A Dask task: load the model once per worker process, then run one job."""
    _ensure_worker(init_args)
    return _simulate_one(dict(job))


def _simulate_batch_on_worker(jobs: list[dict], init_args: tuple) -> list:
    """A Dask task: one batch of jobs through the batched engine."""
    _ensure_worker(init_args)
    return _simulate_batch([dict(job) for job in jobs])


def batch_groups(costs: Sequence[float], n_groups: int) -> list[list[int]]:
    """Job indices of each batch, balanced by cost: the costliest job goes to the lightest batch first.

    A batch takes as long as its jobs' atom-steps, so balancing them keeps
    every process busy to the end (round-robin left one core idle for half
    of a validation run). Deterministic in the costs and ``n_groups`` (ties to
    the lower index): on a GPU a batch's composition changes a run's forces at
    float32 rounding level, so it must not depend on anything else.
    """
    n_groups = max(1, min(n_groups, len(costs)))
    loads, groups = [0.0] * n_groups, [[] for _ in range(n_groups)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        lightest = min(range(n_groups), key=lambda g: (loads[g], g))
        groups[lightest].append(i)
        loads[lightest] += costs[i]
    return [sorted(g) for g in groups if g]


def job_cost(job: Mapping) -> float:
    """Atom-steps a job has left, equilibration included: what a batch spends on it."""
    done = int(job["restart"]["step"]) if job.get("restart") is not None else 0
    return float((int(job["equilibration_steps"]) + int(job["steps"]) - done) * len(job["structure"]))


def simulate_all(
    structures: dict[str, Structure], mlip: DictConfig, seed: int, traj_dir: Path,
    cluster: DictConfig | None = None, *, resume: bool = False, previous_wall_s: Mapping[str, float] | None = None,
) -> tuple[list[Trajectory], list[str], list[dict]]:
    """Run every (structure, temperature); returns trajectories, unstable runs, timings.

    ``md.mlip.n_jobs`` > 1 runs that many independent runs at once, each with
    ``md.mlip.threads`` torch threads, on a Dask cluster (:mod:`superionic.cluster`):
    local worker processes by default, a running scheduler or Slurm by
    ``cluster``. Each run has its own seed: results do not depend on n_jobs or
    on where the runs execute.

    ``md.mlip.batch`` runs the jobs through the batched engine
    (:mod:`superionic.md.batched`, one model evaluation per step for a whole
    batch) in ``n_jobs`` batches, one per process. The random streams are the
    same; forces differ from the unbatched ones at float32 rounding level, and
    with the batching (``n_jobs``), which chaotic MD amplifies over long runs
    into statistically equivalent but different trajectories.

    Each run's files are saved as it finishes, with a record of what defines
    it (:func:`run_identity`). ``resume`` reuses a saved run whose record
    matches its job instead of running it again; its timing is taken from
    ``previous_wall_s`` (run source -> seconds, the earlier timing file). With
    the fast engine it also continues a stopped run from its checkpoint, and
    a finished run that differs only in being shorter from its end
    (:func:`extension_state`) instead of starting the longer run afresh.
    """
    device = resolve_device(mlip.device)
    if mlip.threads < 1 or mlip.n_jobs < 1:
        raise ValueError("md.mlip.threads and md.mlip.n_jobs must be >= 1")
    if mlip.checkpoint_interval and not mlip.batch:
        raise ValueError("md.mlip.checkpoint_interval needs md.mlip.batch=true (the fast engine checkpoints; ASE's loop does not)")
    cells = {m: supercell_for(s, mlip.supercell_min_length) for m, s in structures.items()}
    runs = run_list(mlip)
    unknown = sorted({m for m, _, _ in runs if m is not None} - set(cells))
    if unknown:
        raise ValueError(f"md.mlip.runs: no structure for {unknown}")
    jobs = []
    for material in sorted(cells):
        for temperature, steps in [(t, n) for m, t, n in runs if m in (None, material)]:
            jobs.append(dict(
                structure=cells[material], material=material, temperature=temperature,
                timestep_fs=float(mlip.timestep_fs), equilibration_steps=int(mlip.equilibration_steps),
                steps=steps, sample_interval=int(mlip.sample_interval),
                thermostat=str(mlip.thermostat), thermostat_time_fs=float(mlip.thermostat_time_fs),
                rng=run_seed(seed, material, temperature),
                progress_interval=int(mlip.progress_interval),
                **({"checkpoint_interval": int(mlip.checkpoint_interval)} if mlip.batch else {}),
            ))  # fmt: skip
    for job in jobs:
        job["save_to"] = str(trajectory_path(traj_dir, job["material"], job["temperature"]))
        job["identity"] = run_identity(job, mlip, seed)
    reused = {}
    if resume:
        # runs of the protocol that md.mlip.runs_only leaves out are kept for a later piece
        protocol = run_list(OmegaConf.merge(mlip, {"runs_only": []}))
        prune_stale_runs(traj_dir, [Path(job["save_to"]) for job in jobs]
                         + [trajectory_path(traj_dir, m, t) for m, t, _ in protocol if m is not None])  # fmt: skip
        reused = {i: load_saved_run(Path(job["save_to"]), job["identity"], previous_wall_s)
                  for i, job in enumerate(jobs)}  # fmt: skip
        reused = {i: r for i, r in reused.items() if r is not None}
        for i, job in enumerate(jobs):
            if i not in reused and mlip.batch:
                job["restart"] = load_checkpoint(Path(job["save_to"]), job["identity"])
                if job["restart"] is None:
                    extension = extension_state(Path(job["save_to"]), job["identity"], previous_wall_s)
                    if extension is not None:
                        job["restart"], continued = extension
                        job["identity"] = {**job["identity"], CONTINUED_FROM: continued}
                        log.info("%s %g K: extending the finished %d-step run (%s)", job["material"],
                                 job["temperature"], continued["steps"],
                                 "from its end state" if continued["exact"] else "momenta drawn afresh")  # fmt: skip
                elif CONTINUED_FROM in job["restart"]:
                    job["identity"] = {**job["identity"],
                                       CONTINUED_FROM: json.loads(str(job["restart"].pop(CONTINUED_FROM)))}  # fmt: skip
    # production time a checkpoint carries from the interrupted invocation that wrote it; the part from
    # the shorter finished run it extends is in that run's timing file instead
    resumed_after = {i: float(job["restart"]["elapsed_s"]) - float(job["restart"].get("extended_wall_s", 0.0))
                     for i, job in enumerate(jobs) if job.get("restart") is not None}  # fmt: skip
    for i in reused:
        log.info("%s %g K: reusing the finished run in %s", jobs[i]["material"], jobs[i]["temperature"],
                 jobs[i]["save_to"])  # fmt: skip
    todo = [i for i in range(len(jobs)) if i not in reused]
    init_args = (str(mlip.model), device, int(mlip.threads))
    # batched: n_jobs batches (one per process) instead of n_jobs single runs
    tasks = ([[todo[k] for k in group] for group in batch_groups([job_cost(jobs[i]) for i in todo], int(mlip.n_jobs))]
             if mlip.batch
             else [[i] for i in todo]) if todo else []  # fmt: skip
    if not tasks:
        results = []
    elif len(tasks) == 1 or mlip.n_jobs == 1:
        _init_worker(*init_args)
        _WORKER["init"] = init_args
        if mlip.batch:
            results = [_simulate_batch([dict(jobs[i]) for i in task]) for task in tasks]
        else:
            results = [[_simulate_one(dict(jobs[i]))] for (i,) in tasks]
    else:
        from superionic.cluster import map_in_order, open_client

        # without a cluster config (a direct call), local worker processes
        target = cluster if cluster is not None else OmegaConf.create({"kind": "local", "n_workers": 1})
        with open_client(target, n_workers=min(int(mlip.n_jobs), len(tasks))) as client:
            if mlip.batch:
                results = map_in_order(client, _simulate_batch_on_worker, [[dict(jobs[i]) for i in task]
                                       for task in tasks], init_args=init_args)  # fmt: skip
            else:
                results = [[r] for r in map_in_order(client, _simulate_on_worker, [dict(jobs[i]) for (i,) in tasks],
                                                     init_args=init_args)]  # fmt: skip
    by_index = {i: out for task, outs in zip(tasks, results, strict=True) for i, out in zip(task, outs, strict=True)}
    by_index.update(reused)
    outputs = [by_index[i] for i in range(len(jobs))]
    trajectories, unstable, timings = [], [], []
    for i, (job, (traj, thermo, timing)) in enumerate(zip(jobs, outputs, strict=True)):
        material, temperature = job["material"], job["temperature"]
        problem = stability_problem(thermo, temperature)
        if problem:
            log.warning("%s at %g K unstable: %s", material, temperature, problem)
            unstable.append(traj.source)
        log.info("%s %g K: %d atoms, %d steps, %.1f ms/step, %.1f us/atom-step", material,
                 temperature, timing.n_atoms, timing.steps, timing.ms_per_step,
                 timing.us_per_atom_step)  # fmt: skip
        # how the run came to its length: this invocation's extension, or a reused run's record
        continued = (saved_continuation(Path(job["save_to"])) if i in reused
                     else job["identity"].get(CONTINUED_FROM, {}))  # fmt: skip
        timings.append({"run": traj.source, "n_atoms": timing.n_atoms, "steps": timing.steps, "reused": i in reused,
                        "resumed_after_s": round(resumed_after.get(i, 0.0), 3),
                        "extended_from_steps": int(continued.get("steps", 0)),
                        "momenta_redrawn": continued.get("exact") is False,
                        "wall_s": round(timing.wall_s, 3),
                        "ms_per_step": round(timing.ms_per_step, 3),
                        "us_per_atom_step": round(timing.us_per_atom_step, 3)})  # fmt: skip
        trajectories.append(traj)
    return trajectories, unstable, timings


def trajectory_path(traj_dir: Path, material: str, temperature: float) -> Path:
    return traj_dir / material.replace(":", "_") / f"{temperature:g}K.npz"


def checkpoint_path(npz_path: Path) -> Path:
    """A running run's latest checkpoint (``<T>K.npz`` -> ``<T>K_checkpoint.npz``), gone once it finishes."""
    return npz_path.with_name(f"{npz_path.stem}_checkpoint.npz")


def end_state_path(npz_path: Path) -> Path:
    """A finished run's end state (``<T>K.npz`` -> ``<T>K_end.npz``): a longer run continues from it."""
    return npz_path.with_name(f"{npz_path.stem}_end.npz")


def continuation_rng(identity: Mapping, from_steps: int) -> np.random.Generator:
    """The random stream of a run continued past ``from_steps`` without an end state: not the run's
    own stream (:func:`run_seed`), whose draws the first part already used."""
    return run_seed(int(identity["seed"]), str(identity["material"]), float(identity["temperature"]), int(from_steps))


def extension_state(npz_path: Path, identity: dict, previous_wall_s: Mapping[str, float] | None):
    """``(restart state, continued_from)`` that continues the finished run saved at ``npz_path`` into the
    longer run ``identity``, or None when that run is not the same run cut shorter.

    From the run's end state the longer run is exactly the one a single
    invocation would have made (``continued_from["exact"]``). A run saved
    before end states were kept has positions and samples only: it continues
    with momenta drawn afresh (:func:`superionic.md.batched._restore`) and a
    random stream of its own (:func:`continuation_rng`).
    """
    if not all(p.exists() for p in run_files(npz_path)):
        return None
    saved = _identity_of(load_record(npz_path))
    interval = int(identity["sample_interval"])
    old_steps = int(saved.get("steps", 0)) // interval * interval
    if ({k: v for k, v in saved.items() if k != "steps"} != {k: v for k, v in identity.items() if k != "steps"}
            or not 0 < old_steps < int(identity["steps"]) // interval * interval):  # fmt: skip
        return None
    traj, thermo = load_trajectory(npz_path)
    if traj.origin is None or traj.n_frames != old_steps // interval + 1:
        return None
    wall = float((previous_wall_s or {}).get(traj.source, 0.0))
    samples = {"displacements": traj.displacements,
               **{f"thermo_{k}": thermo[k] for k in THERMO_KEYS}}  # fmt: skip
    end_path = end_state_path(npz_path)
    if end_path.exists():
        with np.load(end_path) as z:
            end = {k: z[k] for k in z.files}
        if json.loads(str(end.pop("identity"))) == saved:
            return {**end, **samples, "extended_wall_s": end["elapsed_s"]}, {"steps": old_steps, "exact": True}
    state = {
        "step": np.array(int(identity["equilibration_steps"]) + old_steps),
        "positions": traj.origin + traj.displacements[:, -1, :], "origin": np.asarray(traj.origin, dtype=np.float64),
        "rng_state": np.array(json.dumps(continuation_rng(identity, old_steps).bit_generator.state)),
        "elapsed_s": np.array(wall), "extended_wall_s": np.array(wall), **samples,
    }  # fmt: skip
    return state, {"steps": old_steps, "exact": False}


def run_record_path(npz_path: Path) -> Path:
    """The identity record saved beside a run's files (``<T>K.npz`` -> ``<T>K_run.json``)."""
    return npz_path.with_name(f"{npz_path.stem}_run.json")


def run_files(npz_path: Path) -> list[Path]:
    """Every file a saved run consists of: its run files and its identity record."""
    return [*run_file_paths(npz_path), run_record_path(npz_path)]


def run_identity(job: Mapping, mlip: DictConfig, seed: int) -> dict:
    """Everything that determines a run's trajectory: a saved run is reused only when all of it matches."""
    import hashlib

    s: Structure = job["structure"]
    cell = np.round(np.concatenate([s.lattice.matrix.ravel(), s.frac_coords.ravel()]), 8)
    digest = hashlib.sha256(cell.tobytes() + " ".join(str(e) for e in s.species).encode()).hexdigest()
    return {
        "material": str(job["material"]), "temperature": float(job["temperature"]), "steps": int(job["steps"]),
        "structure_sha256": digest, "n_atoms": len(s), "timestep_fs": float(job["timestep_fs"]),
        "equilibration_steps": int(job["equilibration_steps"]), "sample_interval": int(job["sample_interval"]),
        "thermostat": str(job["thermostat"]), "thermostat_time_fs": float(job["thermostat_time_fs"]),
        "seed": int(seed), "model": str(mlip.model), "engine": "fast" if mlip.batch else "ase",
    }  # fmt: skip


def load_record(npz_path: Path) -> dict:
    """A saved run's record: its identity, and ``continued_from`` when it extends a shorter run."""
    return json.loads(run_record_path(npz_path).read_text(encoding="utf-8"))


def saved_continuation(npz_path: Path) -> dict:
    """The ``continued_from`` of a saved run's record: which shorter run it extends ({} if none)."""
    return load_record(npz_path).get(CONTINUED_FROM, {})


def load_saved_run(npz_path: Path, identity: dict, previous_wall_s: Mapping[str, float] | None):
    """``(trajectory, thermo, timing)`` of a saved run whose record equals ``identity``, else None.

    Its wall time comes from ``previous_wall_s`` (0 when the earlier timing file is gone).
    """
    if not all(p.exists() for p in run_files(npz_path)):
        return None
    if _identity_of(load_record(npz_path)) != identity:
        return None
    traj, thermo = load_trajectory(npz_path)
    steps = (traj.n_frames - 1) * identity["sample_interval"]
    wall = float((previous_wall_s or {}).get(traj.source, 0.0))
    return traj, thermo, MDTiming(steps=steps, n_atoms=identity["n_atoms"], wall_s=wall)


def prune_stale_runs(traj_dir: Path, keep_runs: Sequence[Path]) -> list[Path]:
    """Delete files under ``traj_dir`` that belong to none of ``keep_runs`` (their npz paths)."""
    keep = {p.resolve() for run in keep_runs for p in [*run_files(run), checkpoint_path(run), end_state_path(run)]}
    stale = [p for p in traj_dir.rglob("*") if p.is_file() and p.resolve() not in keep] if traj_dir.exists() else []
    for path in stale:
        path.unlink()
        log.info("removed %s: not a run of this configuration", path)
    return stale


def wall_clock(total_wall_s: float, previous: Mapping, timings: Sequence[Mapping]) -> dict:
    """This invocation's wall clock and the protocol's so far (``cumulative_wall_s``).

    Reused runs, and runs that extend a finished shorter run, bring the earlier
    invocation's cumulative time (``previous``, its timing file); runs extended
    in any invocation are counted as such. An interrupted invocation wrote no timing file: its time is what
    the checkpoints it left carry (``resumed_after_s`` of the runs continued from
    them), the longest of them since its batches ran side by side; its start-up
    and equilibration are not included, so that part is a lower bound.
    """
    n_reused = sum(bool(t["reused"]) for t in timings)
    n_extended = sum(int(t.get("extended_from_steps", 0)) > 0 for t in timings)
    earlier = (float(previous.get("cumulative_wall_s", previous.get("total_wall_s", 0.0)))
               if n_reused or n_extended else 0.0)  # fmt: skip
    interrupted = max((float(t.get("resumed_after_s", 0.0)) for t in timings), default=0.0)
    return {"total_wall_s": round(total_wall_s, 1), "cumulative_wall_s": round(total_wall_s + earlier + interrupted, 1),
            "interrupted_wall_s": round(interrupted, 1), "reused_runs": n_reused, "extended_runs": n_extended,
            "redrawn_runs": sum(bool(t.get("momenta_redrawn")) for t in timings),
            "resumed_runs": sum(float(t.get("resumed_after_s", 0.0)) > 0 for t in timings)}  # fmt: skip


@stage("mlip-md", sections=["md", "seed"])
def run_stage(cfg: DictConfig) -> StageResult:
    md = cfg.md
    out = Path(md.report_dir)
    traj_dir = Path(md.out_dir) / TRAJ_DIR
    resume = bool(md.mlip.resume)
    if traj_dir.exists() and not resume:
        # our own output folder: stale runs of another config must not linger
        shutil.rmtree(traj_dir)
    previous = json.loads((out / TIMING_JSON).read_text(encoding="utf-8")) if resume and (out / TIMING_JSON).exists() else {}
    previous_wall = {r["run"]: float(r["wall_s"]) for r in previous.get("runs", [])}
    structures, notes = gather_structures(md)
    if not structures:
        raise ValueError("no structures to simulate (md.mlip.materials / cif_dir / candidates_csv)")
    start = time.perf_counter()
    trajectories, unstable, timings = simulate_all(structures, md.mlip, int(cfg.seed), traj_dir, cfg.cluster,
                                                   resume=resume, previous_wall_s=previous_wall)  # fmt: skip
    total_wall = time.perf_counter() - start
    # analyse exactly the stored (float32) data, as a later re-analysis would
    stored = [load_trajectory(trajectory_path(traj_dir, t.material, t.temperature))[0]
              for t in trajectories]  # fmt: skip
    results, fits = T.analyze_trajectories(
        stored, md.analysis, md.mlip.min_duration_ps,
        extra_reasons={source: REASON_UNSTABLE for source in unstable},
    )
    runs_df = T.runs_frame(results)
    fits_df = T.fits_frame(fits)
    paths = [write_csv(runs_df, out / RUNS_CSV), write_csv(fits_df, out / FITS_CSV)]
    metrics = T.summary_metrics(runs_df, fits_df)
    metrics["label"] = str(md.mlip.label)
    metrics["notes"] = notes
    metrics["n_unstable"] = len(unstable)
    paths.append(write_json(metrics, out / METRICS_JSON))
    n_steps = sum(t["steps"] for t in timings)
    n_atom_steps = sum(t["steps"] * t["n_atoms"] for t in timings)
    md_wall = sum(t["wall_s"] for t in timings)
    timing = {
        "device": resolve_device(md.mlip.device),
        "threads": int(md.mlip.threads),
        "n_jobs": int(md.mlip.n_jobs),
        **wall_clock(total_wall, previous, timings),
        "production_steps": n_steps,
        # all runs together, parallel jobs included
        "steps_per_s_overall": round(n_steps / max(total_wall, 1e-9), 3),
        "ms_per_step": round(1000.0 * md_wall / max(n_steps, 1), 2),
        "us_per_atom_step": round(1e6 * md_wall / max(n_atom_steps, 1), 2),
        "runs": timings,
    }
    # timings vary run to run: kept out of the (deterministic) metrics file
    paths.append(write_json(timing, out / TIMING_JSON))
    paths.append(plots.arrhenius_grid([plots.Series("MLIP", runs_df, fits_df, "tab:red")],
                                      md.analysis.target_temperature, out / FIGURE))  # fmt: skip
    return StageResult({**{k: v for k, v in metrics.items() if k not in ("materials", "notes")},
                        **{k: v for k, v in timing.items() if not isinstance(v, list | str)}}, paths)
