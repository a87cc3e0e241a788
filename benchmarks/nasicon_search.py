"""Throughput of the NASICON descriptor search: feature generation + SIS, and the pair search.

    python benchmarks/nasicon_search.py                 # paper scale: complexity 2, k = 2000
    python benchmarks/nasicon_search.py --sis-size 500  # quicker

Reads the raw Ouyang 2021 data (``--data-dir``), builds the same table as the
``nasicon-data`` stage and times the two phases separately. The first call of
each numba kernel is timed apart (compilation, or loading from its cache).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from numba import set_num_threads

from superionic.config import compose
from superionic.nasicon import data as nd
from superionic.nasicon import sis as ns
from superionic.nasicon.ranking import pair_search, standardize
from superionic.nasicon.space import build_and_screen, params_from_cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"))
    parser.add_argument("--complexity", type=int, default=2)
    parser.add_argument("--sis-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_num_threads(args.threads)
    cfg = compose([f"data_dir={Path(args.data_dir).resolve()}", f"descriptor.complexity={args.complexity}",
                   f"descriptor.sis_size={args.sis_size}"])
    raw = nd.load_raw(Path(cfg.data_dir))
    data, _ = nd.assemble(raw["train"], raw["test"], raw["train_2d"], raw["test_2d"], raw["features"], raw["exp"],
                          0.0, 0.2, 3.0, int(cfg.seed))
    names = nd.feature_names(data)
    n_fit = int((data[nd.ROLE] == "fit").sum())
    y = data[nd.TARGET].to_numpy()
    x = data[names].to_numpy().T
    y_sis = ns.sis_target(y[:n_fit], "rank")
    print(f"cores available: {os.cpu_count()}, numba threads: {args.threads}, "
          f"load average: {os.getloadavg()[0]:.1f}")

    t = time.perf_counter()
    build_and_screen(x, names, y_sis, params_from_cfg(compose(["descriptor.complexity=1", "descriptor.sis_size=10"])))
    print(f"warm-up (numba load/compile): {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    res = build_and_screen(x, names, y_sis, params_from_cfg(cfg), seed=int(cfg.seed))
    dt = time.perf_counter() - t
    print(f"feature generation + SIS: complexity {args.complexity}, {res.n_candidates:,} candidates "
          f"({res.n_unique_valid:,} valid, distinct) in {dt:.1f} s = {res.n_candidates / dt:,.0f} features/s")

    z = standardize(res.values, n_fit)
    val = np.flatnonzero(data[nd.ROLE].to_numpy() == "validation")
    sl = slice(int(val[0]), int(val[-1]) + 1)
    pair_search(z[:20], y, n_fit, sl, n_jobs=args.threads)  # warm-up
    t = time.perf_counter()
    out = pair_search(z, y, n_fit, sl, n_jobs=args.threads)
    dt = time.perf_counter() - t
    n_pairs = len(out["accuracy"])
    print(f"pair search: {n_pairs:,} pairs x {len(val)} validation compounds in {dt:.1f} s "
          f"= {n_pairs / dt:,.0f} pairs/s; best validation ranking accuracy {out['accuracy'].max():.4f}")


if __name__ == "__main__":
    main()
