"""Batched vs standard CHGNet MD: atom-steps per second side by side, same trajectories.

Runs the same systems (AIMD materials x temperatures) in one run on the same
cores: the stage's standard ASE loop (:func:`superionic.md.mlip.run_nvt`, one
run after another, ``--threads`` torch threads), the lockstep engine
(:mod:`superionic.md.batched` with :mod:`superionic.md.chgnet_fast`) in the
same process on the same threads, and the same engine split over
``--workers`` processes of one thread each (as ``md.mlip.batch: true`` with
``md.mlip.n_jobs`` runs it). Prints the throughputs and their ratios, the
largest position / energy deviation between the standard and the engine's
trajectories, where a step's time goes (CHGNet's graph converter and forward
against the array graphs and the factored forward), and the validation
run-length plan at the best measured throughput.

    python benchmarks/mlip_batched_md.py --steps 20 --threads 2 --workers 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


def jobs_for(structures: dict, temperatures: list[float], steps: int, seed: int) -> list[dict]:
    from superionic.md import mlip

    return [dict(structure=s, material=m, temperature=t, timestep_fs=2.0, equilibration_steps=0, steps=steps,
                 sample_interval=1, thermostat="bussi", thermostat_time_fs=100.0,
                 rng=mlip.run_seed(seed, m, t), progress_interval=10**9)
            for m, s in sorted(structures.items()) for t in temperatures]  # fmt: skip


_POTENTIAL: dict = {}


def _worker_init(threads: int, device: str) -> None:
    import torch

    from superionic.md import batched, mlip

    torch.set_num_threads(threads)
    _POTENTIAL["engine"] = batched.BatchedPotential(mlip.load_model("0.3.0", device), device)


def _worker_run(jobs: list[dict]) -> list:
    from superionic.md import batched, mlip

    return batched.run_nvt_batched(jobs, _POTENTIAL["engine"], equilibration_tau_fs=mlip.EQUILIBRATION_TAU_FS)


def run_in_workers(pool, jobs: list[dict], n_workers: int) -> tuple[list, float]:
    """The jobs split over the workers by cost, as the stage splits them; results in job order."""
    from superionic.md.mlip import batch_groups, job_cost

    groups = batch_groups([job_cost(job) for job in jobs], n_workers)
    start = time.perf_counter()
    futures = [pool.submit(_worker_run, [jobs[i] for i in group]) for group in groups]
    outputs = [f.result() for f in futures]
    wall = time.perf_counter() - start
    by_index = {i: out for group, outs in zip(groups, outputs) for i, out in zip(group, outs)}
    return [by_index[i] for i in range(len(jobs))], wall


def main() -> None:
    import torch

    from superionic.md import aimd, batched, mlip, runlength
    from superionic.md.io import starting_structures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aimd", default="../shared/datasets/aimd")
    parser.add_argument("--materials", nargs="+", default=["mp-532413", "mp-1222492", "mp-676361"])
    parser.add_argument("--temperatures", nargs="+", type=float, default=[800.0, 1400.0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes of one thread each for the split run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--aimd-runs", default=f"reports/md/{aimd.RUNS_CSV}",
                        help="aimd stage runs table, for the validation run-length plan")  # fmt: skip
    args = parser.parse_args()

    device = mlip.resolve_device(args.device)
    torch.set_num_threads(args.threads)
    model = mlip.load_model("0.3.0", device)
    calc = mlip.make_calculator(model, device)
    potential = batched.BatchedPotential(model, device)
    structures = starting_structures(Path(args.aimd), args.materials)
    n_sys = len(structures) * len(args.temperatures)
    print(f"device={device} threads={args.threads} torch={torch.__version__}; {n_sys} systems "
          f"({', '.join(f'{m} {len(s)} atoms' for m, s in structures.items())}) x {args.temperatures} K, "
          f"{args.steps} steps each")  # fmt: skip

    # warm-up (allocator, code paths) on both paths, untimed
    warm = jobs_for(structures, args.temperatures[:1], 2, 1)
    for job in warm:
        mlip.run_nvt(job.pop("structure"), calc, **job)
    batched.run_nvt_batched(jobs_for(structures, args.temperatures[:1], 2, 1), potential,
                            equilibration_tau_fs=mlip.EQUILIBRATION_TAU_FS)  # fmt: skip

    start = time.perf_counter()
    standard = [mlip.run_nvt(job.pop("structure"), calc, **job)
                for job in jobs_for(structures, args.temperatures, args.steps, 0)]  # fmt: skip
    wall_standard = time.perf_counter() - start
    start = time.perf_counter()
    fast = batched.run_nvt_batched(jobs_for(structures, args.temperatures, args.steps, 0), potential,
                                   equilibration_tau_fs=mlip.EQUILIBRATION_TAU_FS)  # fmt: skip
    wall_batched = time.perf_counter() - start

    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(args.workers, initializer=_worker_init, initargs=(1, device)) as pool:
        run_in_workers(pool, jobs_for(structures, args.temperatures[:1], 2, 1), args.workers)  # warm-up
        split, wall_split = run_in_workers(pool, jobs_for(structures, args.temperatures, args.steps, 0), args.workers)

    atom_steps = sum(t.n_atoms * t.steps for _, _, t in standard)
    rates = {"standard ASE loop, one process": atom_steps / wall_standard,
             "engine, same process and threads": atom_steps / wall_batched,
             f"engine, {args.workers} processes x 1 thread": atom_steps / wall_split}  # fmt: skip
    base = rates["standard ASE loop, one process"]
    for name, rate in rates.items():
        print(f"{name:38s}: {rate:8.0f} atom-steps/s ({atom_steps / rate:.1f} s)  {rate / base:.2f}x")
    for label, other in (("same process", fast), (f"{args.workers} processes", split)):
        dx = max(float(np.abs(a.displacements - b.displacements).max()) for (a, _, _), (b, _, _) in zip(standard, other))
        de = max(float(np.abs(a["potential_energy"] - b["potential_energy"]).max()) for (_, a, _), (_, b, _)
                 in zip(standard, other))  # fmt: skip
        print(f"max deviation from the standard loop over {args.steps} steps, engine ({label}): position {dx:.2e} A, "
              f"potential energy {de:.2e} eV")  # fmt: skip

    # where one step goes: graphs and energy+forces, CHGNet's own path against the engine's
    from pymatgen.core import Lattice, Structure

    from superionic.md.chgnet_fast import crystal_graph

    cells = [s for s in structures.values() for _ in args.temperatures]

    def timed(fn, reps=3):
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps

    conv = model.graph_converter
    t_graph = timed(lambda: [conv(Structure(Lattice(s.lattice.matrix), s.species, s.frac_coords)) for s in cells])
    t_array_graph = timed(lambda: [crystal_graph(s.lattice.matrix, s.atomic_numbers, s.frac_coords,
                                                 atom_cutoff=conv.atom_graph_cutoff,
                                                 bond_cutoff=conv.bond_graph_cutoff) for s in cells])  # fmt: skip
    graphs = [conv(s) for s in cells]
    t_engine = timed(lambda: potential(graphs))
    t_stock_batch = timed(lambda: model.predict_graph(graphs, task="ef", batch_size=len(graphs)))
    t_stock_seq = timed(lambda: [model.predict_graph(g, task="ef") for g in graphs])
    print(f"per step, all {len(cells)} systems, {args.threads} threads: graphs: CHGNet converter {1e3 * t_graph:.0f} ms, "
          f"array graphs {1e3 * t_array_graph:.0f} ms; energy+forces: CHGNet one-by-one {1e3 * t_stock_seq:.0f} ms, "
          f"CHGNet batched {1e3 * t_stock_batch:.0f} ms, factored engine {1e3 * t_engine:.0f} ms")  # fmt: skip
    rate_best = max(rates.values())

    runs_csv, fits_csv = Path(args.aimd_runs), Path(args.aimd_runs).with_name(Path(aimd.FITS_CSV).name)
    if runs_csv.exists() and fits_csv.exists():
        from superionic.config import compose
        from superionic.md.report import validation_plan

        cfg = compose(["md=validation"])
        plan = validation_plan(cfg, pd.read_csv(runs_csv), pd.read_csv(fits_csv), with_run_settings=True,
                               atom_steps_per_s=rate_best, n_cores=args.threads)  # fmt: skip
        rsd = float(cfg.md.validation_rsd)
        print(f"\nvalidation run lengths (AIMD fit D at md.validation_temperatures, He et al. RSD <= {rsd:g}, at the best throughput above):")
        print(plan[["material", "formula", "temperature_K", "n_atoms", "n_mobile", "D_cm2_s", "ps_per_replica",
                    "steps_per_replica", "wall_h", "core_h"]].to_string(index=False, float_format="%.3g"))  # fmt: skip
        print(runlength.summary_line(plan, rsd, rate_best, args.threads))

if __name__ == "__main__":
    main()
