"""Batched vs standard CHGNet MD: atom-steps per second side by side, same trajectories.

Runs the same systems (AIMD materials x temperatures) twice in one process on
the same torch threads: the stage's standard ASE loop
(:func:`superionic.md.mlip.run_nvt`, one run after another) and the batched
engine (:mod:`superionic.md.batched`, one model evaluation per step for all).
Prints both throughputs, their ratio, the largest position / energy
deviation between the two trajectories of each run, where the batched step's
time goes, and the validation run-length plan at the measured throughput.

    python benchmarks/mlip_batched_md.py --steps 30 --threads 2
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


def main() -> None:
    import torch

    from superionic.md import aimd, batched, mlip, runlength
    from superionic.md.io import starting_structures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aimd", default="../shared/datasets/aimd")
    parser.add_argument("--materials", nargs="+", default=["mp-532413", "mp-1222492", "mp-676361"])
    parser.add_argument("--temperatures", nargs="+", type=float, default=[800.0, 1400.0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
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

    atom_steps = sum(t.n_atoms * t.steps for _, _, t in standard)
    rate_standard, rate_batched = atom_steps / wall_standard, atom_steps / wall_batched
    print(f"standard ASE loop (sequential): {rate_standard:8.0f} atom-steps/s ({wall_standard:.1f} s)")
    print(f"batched engine                : {rate_batched:8.0f} atom-steps/s ({wall_batched:.1f} s)")
    print(f"ratio batched/standard        : {rate_batched / rate_standard:.2f}x")
    dx = max(float(np.abs(a.displacements - b.displacements).max()) for (a, _, _), (b, _, _) in zip(standard, fast))
    de = max(float(np.abs(a["potential_energy"] - b["potential_energy"]).max()) for (_, a, _), (_, b, _)
             in zip(standard, fast))  # fmt: skip
    dt = max(float(np.abs(a["temperature"] - b["temperature"]).max()) for (_, a, _), (_, b, _) in zip(standard, fast))
    print(f"max deviation over {args.steps} steps: position {dx:.2e} A, potential energy {de:.2e} eV, "
          f"temperature {dt:.2e} K")  # fmt: skip

    # where one batched step goes: graphs, CHGNet's own force path, ours
    cells = [s for s in structures.values() for _ in args.temperatures]

    def timed(fn, reps=3):
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps

    graphs = [model.graph_converter(s) for s in cells]
    t_graph = timed(lambda: [model.graph_converter(s) for s in cells])
    t_ours = timed(lambda: potential(graphs))
    t_stock_batch = timed(lambda: model.predict_graph(graphs, task="ef", batch_size=len(graphs)))
    t_stock_seq = timed(lambda: [model.predict_graph(g, task="ef") for g in graphs])
    print(f"per step, all {len(cells)} systems: graphs {1e3 * t_graph:.0f} ms; energy+forces: CHGNet one-by-one "
          f"{1e3 * t_stock_seq:.0f} ms, CHGNet batched {1e3 * t_stock_batch:.0f} ms, "
          f"batched without the second-order graph {1e3 * t_ours:.0f} ms")  # fmt: skip

    runs_csv, fits_csv = Path(args.aimd_runs), Path(args.aimd_runs).with_name(Path(aimd.FITS_CSV).name)
    if runs_csv.exists() and fits_csv.exists():
        from superionic.config import compose
        from superionic.md.report import validation_plan

        cfg = compose(["md=validation"])
        plan = validation_plan(cfg, pd.read_csv(runs_csv), pd.read_csv(fits_csv), with_run_settings=True,
                               atom_steps_per_s=rate_batched, n_cores=args.threads)  # fmt: skip
        rsd = float(cfg.md.validation_rsd)
        print(f"\nvalidation run lengths (AIMD D, He et al. RSD <= {rsd:g}, at the batched throughput above):")
        print(plan[["material", "formula", "temperature_K", "n_atoms", "n_mobile", "D_cm2_s", "ps_per_replica",
                    "steps_per_replica", "wall_h", "core_h"]].to_string(index=False, float_format="%.3g"))  # fmt: skip
        print(runlength.summary_line(plan, rsd, rate_batched, args.threads))

if __name__ == "__main__":
    main()
