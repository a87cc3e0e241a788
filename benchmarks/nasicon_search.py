"""Throughput of the NASICON descriptor search: feature generation + SIS, and the pair search.

    python benchmarks/nasicon_search.py                 # paper scale: complexity 2, k = 2000
    python benchmarks/nasicon_search.py --sis-size 500  # quicker
    python benchmarks/nasicon_search.py --sisso         # + residual rounds and 3D, side by side

Reads the raw Ouyang 2021 data (``--data-dir``), builds the same table as the
``nasicon-data`` stage and times the two phases separately. The first call of
each numba kernel is timed apart (compilation, or loading from its cache).
"""

from __future__ import annotations

import argparse
import os
import resource
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
    parser.add_argument("--basis", type=int, default=0,
                        help="descriptor.last_rung_basis (rung 3: --complexity 3 --basis 2000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sisso", action="store_true", help="also time the residual rounds and the 3D search")
    parser.add_argument("--pool-size", type=int, default=None, help="SIS pool per residual round (default: config)")
    parser.add_argument("--max-dimension", type=int, default=None, help="default: config")
    args = parser.parse_args()
    set_num_threads(args.threads)
    cfg = compose([f"data_dir={Path(args.data_dir).resolve()}", f"descriptor.complexity={args.complexity}",
                   f"descriptor.sis_size={args.sis_size}", f"descriptor.last_rung_basis={args.basis}"])
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"feature generation + SIS: complexity {args.complexity} (basis {args.basis or 'full'}), "
          f"{res.n_candidates:,} candidates ({res.n_unique_valid:,} valid, distinct) in {dt:.1f} s "
          f"= {res.n_candidates / dt:,.0f} features/s; peak resident memory so far {peak:,.0f} MiB")
    for rung, c in res.counts.items():
        print(f"  rung {rung}: {c['candidates']:,} candidates, {c['valid']:,} valid and distinct")

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
    if not args.sisso:
        return
    from superionic.nasicon import sisso

    pool = int(cfg.descriptor.residual_pool_size) if args.pool_size is None else args.pool_size
    dim = int(cfg.descriptor.max_dimension) if args.max_dimension is None else args.max_dimension
    n_sel = n_fit + len(val)
    triple_warm = standardize(res.values[:6], n_fit)[:, :n_sel]
    sisso.l0_search(triple_warm, y[:n_sel], n_fit, 3, 0.0, args.threads)  # warm-up
    t = time.perf_counter()
    sel = sisso.select(x, names, y[:n_sel], n_fit, params_from_cfg(cfg), pool_size=pool, max_dimension=dim,
                       n_jobs=args.threads, seed=int(cfg.seed))
    total = time.perf_counter() - t
    tm = sel.timings
    rows = [("today: all pairs of one SIS pool", f"SIS {args.sis_size:,}", 2, n_pairs, dt)]
    for f in sel.found:
        key = f"l0_{f.variant}_{f.dimension}d_s"
        size = len(sel.expressions[sisso.SINGLE_POOL]) if f.variant == sisso.SINGLE_POOL else \
            sel.rounds[f.dimension - 1]["union"]
        rows.append((f"l0, {f.variant.replace('_', ' ')}", f"{size:,} features", f.dimension, f.searched, tm[key]))
    print(f"\n{'search':<36} {'space':>16} {'dim':>4} {'descriptors':>14} {'time (s)':>9} {'per s':>10}")
    for name, space, d, n_desc, secs in rows:
        print(f"{name:<36} {space:>16} {d:>4} {n_desc:>14,} {secs:>9.1f} {n_desc / max(secs, 1e-9):>10,.0f}")
    sis_s = sum(v for k, v in tm.items() if k.startswith("sis_"))
    print(f"\nresidual rounds to {dim}D with pool {pool}: {total:.1f} s in all (SIS screens {sis_s:.1f} s, "
          f"including the single-pool control)")
    for f in sel.found:
        print(f"  {f.variant:<12} {f.dimension}D  validation {f.val_accuracy:.4f}  {' | '.join(f.expressions)}")


if __name__ == "__main__":
    main()
