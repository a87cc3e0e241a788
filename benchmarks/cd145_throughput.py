"""CD-145 throughput and agreement: matminer (the reference) vs the array featurizer.

Usage: python benchmarks/cd145_throughput.py [--n 20000] [--data-dir DIR] [--repeat 3]
       python benchmarks/cd145_throughput.py --n 0     # every composition in the file

Both featurizers get the same seeded sample of Materials Project 2019
compositions (as pymatgen Compositions, parsed before timing) in one process.
Reported: compositions/s for matminer (single process) and for
``featurize_compositions`` (amount matrix + arrays + DataFrame), the
speed-up, the largest relative difference, whether NaN patterns agree, and
the rate of ``cd145_from_matrix`` alone on a prebuilt amount matrix (the
exploration use case, where compositions are generated as arrays).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from superionic.features.cd145 import amounts_matrix, cd145_from_matrix, feature_labels
from superionic.features.composition import featurize_compositions, featurize_compositions_matminer


def best_time(task: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Fastest of ``repeat`` runs (the others are noise from the shared machine) and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = task()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(fast: np.ndarray, reference: np.ndarray) -> dict[str, float | bool]:
    """Largest relative difference where matminer's value is non-zero and finite, and NaN agreement."""
    both = np.isfinite(fast) & np.isfinite(reference)
    nonzero = both & (reference != 0)
    rel = np.abs(fast[nonzero] - reference[nonzero]) / np.abs(reference[nonzero])
    return {
        "max_rel_diff": float(rel.max(initial=0.0)),
        "max_abs_diff_at_zero": float(np.abs(fast[both & (reference == 0)]).max(initial=0.0)),
        "nan_patterns_agree": bool(np.array_equal(np.isnan(fast), np.isnan(reference))),
        "allclose_1e-9": bool(np.allclose(fast, reference, rtol=1e-9, atol=1e-12, equal_nan=True)),
        "rows_with_nan": int(np.isnan(reference).any(axis=1).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="sample size; 0 for every composition")
    parser.add_argument("--data-dir", default=os.environ.get("SUPERIONIC_DATA_DIR", "../shared/datasets"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of the array featurizer (best is kept)")
    args = parser.parse_args()
    table = pd.read_csv(Path(args.data_dir) / "materials_project/mp2019_formation_energy.csv", keep_default_na=False)
    formulas = table["composition"] if args.n == 0 else table["composition"].sample(args.n, random_state=0)
    compositions = [Composition(f) for f in formulas]
    n = len(compositions)
    print(f"{n} compositions, {os.cpu_count()} CPUs")

    start = time.perf_counter()
    feature_labels()  # element tables are built once per process; shown apart from the rate
    print(f"array tables built once: {time.perf_counter() - start:.2f} s")

    start = time.perf_counter()
    reference = featurize_compositions_matminer(compositions, n_jobs=1)
    matminer_s = time.perf_counter() - start
    fast_s, fast = best_time(lambda: featurize_compositions(compositions), args.repeat)
    matrix_s, (matrix, elements) = best_time(lambda: amounts_matrix(compositions), args.repeat)
    core_s, core = best_time(lambda: cd145_from_matrix(matrix, elements), args.repeat)

    print(f"matminer (1 process):        {matminer_s:8.2f} s  {n / matminer_s:10.0f} compositions/s")
    print(f"featurize_compositions:      {fast_s:8.3f} s  {n / fast_s:10.0f} compositions/s")
    print(f"  amounts_matrix alone:      {matrix_s:8.3f} s  {n / matrix_s:10.0f} compositions/s")
    print(f"  cd145_from_matrix alone:   {core_s:8.3f} s  {n / core_s:10.0f} compositions/s ({matrix.shape[1]} columns)")
    print(f"speed-up: {matminer_s / fast_s:.0f}x (featurize_compositions), {matminer_s / core_s:.0f}x (matrix core)")
    agreement = compare(fast.to_numpy(), reference.to_numpy())
    print(", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in agreement.items()))
    if not np.array_equal(core, fast.to_numpy(), equal_nan=True):
        print("note: cd145_from_matrix differs from featurize_compositions")


if __name__ == "__main__":
    main()
