"""Cost of CHGNet NVT molecular dynamics: ms per MD step and us per atom-step.

Compares the stage's energy+forces calculator with CHGNet's stock ASE
calculator (energy, forces, stress, magmoms) on the same structure.

    python benchmarks/md_mlip_cost.py --steps 20 --threads 2 --device cpu
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import torch
    from chgnet.model.dynamics import CHGNetCalculator

    from superionic.md import mlip
    from superionic.md.io import starting_structures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aimd", default="../shared/datasets/aimd")
    parser.add_argument("--materials", nargs="+", default=["mp-532413"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--supercell", type=float, default=0.0, help="min cell width (A)")
    parser.add_argument("--stock", action="store_true", help="also time the stock efsm calculator")
    args = parser.parse_args()

    device = mlip.resolve_device(args.device)
    torch.set_num_threads(args.threads)
    model = mlip.load_model("0.3.0", device)
    calcs = {"energy+forces": mlip.make_calculator(model, device)}
    if args.stock:
        calcs["stock efsm"] = CHGNetCalculator(model, use_device=device)
    structures = starting_structures(Path(args.aimd), args.materials)
    print(f"device={device} threads={args.threads} torch={torch.__version__}")
    for material, s in structures.items():
        cell = mlip.supercell_for(s, args.supercell)
        for name, calc in calcs.items():
            # 2 warm-up steps (graph code paths, allocator), then the timed run
            mlip.run_nvt(cell, calc, material=material, temperature=1000.0, timestep_fs=2.0,
                         equilibration_steps=0, steps=2, sample_interval=1, thermostat="bussi",
                         thermostat_time_fs=100.0, rng=np.random.default_rng(0))  # fmt: skip
            start = time.perf_counter()
            _, _, timing = mlip.run_nvt(cell, calc, material=material, temperature=1000.0,
                                        timestep_fs=2.0, equilibration_steps=0, steps=args.steps,
                                        sample_interval=1, thermostat="bussi",
                                        thermostat_time_fs=100.0, rng=np.random.default_rng(0))  # fmt: skip
            wall = time.perf_counter() - start
            print(f"{material} {len(cell)} atoms  {name:14s} {timing.ms_per_step:8.1f} ms/step "
                  f"{timing.us_per_atom_step:8.1f} us/atom-step  ({args.steps} steps, {wall:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
