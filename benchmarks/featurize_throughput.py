"""Featurization throughput: CD-145 on N real compositions, 1 and 2 processes.

Usage: python benchmarks/featurize_throughput.py [--n 20000] [--chunksizes 200 2000]
Compositions come from the Materials Project snapshot (diverse, real).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
from pymatgen.core import Composition

from superionic.features.composition import featurize_compositions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--data-dir", default=os.environ.get("SUPERIONIC_DATA_DIR", "../shared/datasets"))
    parser.add_argument("--chunksizes", type=int, nargs="+", default=[200, 2000])
    args = parser.parse_args()
    table = pd.read_csv(Path(args.data_dir) / "materials_project/mp2019_formation_energy.csv", keep_default_na=False)
    compositions = [Composition(f) for f in table["composition"].sample(args.n, random_state=0)]
    print(f"{args.n} compositions, {os.cpu_count()} CPUs")
    runs = [(1, args.chunksizes[0])] + [(2, c) for c in args.chunksizes]
    for n_jobs, chunksize in runs:
        start = time.perf_counter()
        features = featurize_compositions(compositions, n_jobs=n_jobs, chunksize=chunksize)
        elapsed = time.perf_counter() - start
        print(
            f"n_jobs={n_jobs} chunksize={chunksize}: {elapsed:.1f} s, {args.n / elapsed:.0f} compositions/s, "
            f"{1000 * elapsed / args.n:.2f} s per 1000, NaN rows {int(features.isna().any(axis=1).sum())}"
        )


if __name__ == "__main__":
    main()
