"""Benchmark: E_hull + Li stability window for every Li entry of the snapshot.

Times ``superionic.screening.hull.hull_and_windows`` (one pymatgen
PhaseDiagram per maximal chemical system, vectorized facet algebra) over all
Li compounds of ``mp2019_formation_energy.csv``, with 1 and 2 worker
processes, and prints throughput. Usage:

    python benchmarks/screening_thermo.py [--data-dir ../shared/datasets] [--jobs 1 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from superionic.screening.hull import LITHIUM, hull_and_windows
from superionic.screening.mpdata import read_formation_energies
from superionic.screening.thermo import parse_amounts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args()

    start = time.perf_counter()
    formation = read_formation_energies(args.data_dir)
    amounts = parse_amounts(formation["composition"])
    energies = formation["formation_energy_per_atom"].to_numpy(dtype=float)
    query = np.flatnonzero([LITHIUM in a for a in amounts])
    print(f"read + parse {len(formation):,} compositions: {time.perf_counter() - start:.1f} s")
    print(f"Li entries: {len(query):,}; CPUs visible: {os.cpu_count()}; load avg: {os.getloadavg()}")
    reference = None
    for jobs in args.jobs:
        start = time.perf_counter()
        cpu0 = time.process_time()
        out, results = hull_and_windows(amounts, energies, query, tol=args.tol, n_jobs=jobs)
        wall = time.perf_counter() - start
        inside = sum(r.seconds for r in results)
        print(
            f"n_jobs={jobs}: {wall:.1f} s wall for {len(query):,} entries ({len(query) / wall:.0f} entries/s), "
            f"{len(results):,} phase diagrams, {sum(r.n_facets for r in results):,} facets; "
            f"sum of per-diagram times {inside:.1f} s; parent CPU {time.process_time() - cpu0:.1f} s"
        )
        slowest = sorted(results, key=lambda r: -r.seconds)[:3]
        print("  slowest diagrams: " + "; ".join(f"{'-'.join(r.elements)} {r.n_entries} entries {r.seconds:.1f} s" for r in slowest))
        if reference is None:
            reference = out
        else:
            same = all(np.array_equal(reference[k], out[k], equal_nan=True) for k in ("e_hull", "mu_li_min", "mu_li_max"))
            print(f"  identical to n_jobs={args.jobs[0]}: {same}")


if __name__ == "__main__":
    main()
