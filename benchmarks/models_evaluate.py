"""Benchmark: the evaluate stage's paper protocol (9 models x N splits), n_jobs 1 vs 2.

    python benchmarks/models_evaluate.py [--splits 100] [--jobs 1 2] [--dataset PATH]

Uses the real dataset (paths.dataset) and tuned parameters (classifier.best_params)
when they exist, else a synthetic table of the same shape and the midpoints of
each search space. Prints seconds per model and in total, and fits per second.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from superionic.config import compose
from superionic.classifier.data import load, prepare, synthetic_frame
from superionic.classifier.evaluate import evaluate_paper
from superionic.classifier.zoo import model_spec


def midpoint(space: dict) -> dict:
    params = {}
    for name, s in space.items():
        if s["type"] == "categorical":
            params[name] = s["choices"][0]
        else:
            lo, hi = float(s["low"]), float(s["high"])
            mid = (lo * hi) ** 0.5 if s.get("log") else (lo + hi) / 2
            params[name] = int(round(mid / s.get("step", 1)) * s.get("step", 1)) if s["type"] == "int" else mid
    return params


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", type=int, default=600, help="synthetic rows if no dataset")
    args = parser.parse_args()
    cfg = compose()
    c = cfg.classifier
    names = list(c.model_names)
    specs = {n: model_spec(cfg, n) for n in names}
    if Path(cfg.paths.dataset).exists():
        data, source = load(cfg.paths.dataset), cfg.paths.dataset
    else:
        data, source = prepare(*synthetic_frame(args.rows, 145)), f"synthetic {args.rows} rows"
    if Path(c.best_params).exists():
        best = {n: m["params"] for n, m in json.loads(Path(c.best_params).read_text())["models"].items()}
        params_source = c.best_params
    else:
        best, params_source = {n: midpoint(specs[n]["search_space"]) for n in names}, "search-space midpoints"
    print(f"data: {source} ({len(data.frame)} x {len(data.feature_columns)}); params: {params_source}; "
          f"cpus: {os.cpu_count()}; load avg: {os.getloadavg()[0]:.2f}")
    for n_jobs in args.jobs:
        total = 0.0
        for name in names:
            start = time.perf_counter()
            evaluate_paper({name: specs[name]}, best, data, args.splits, c.test_size, cfg.seed, n_jobs=n_jobs)
            dt = time.perf_counter() - start
            total += dt
            print(f"n_jobs={n_jobs} {name:7s} {dt:7.1f} s  ({args.splits / dt:6.1f} fits/s)")
        print(f"n_jobs={n_jobs} TOTAL   {total:7.1f} s for {len(names)} models x {args.splits} splits")


if __name__ == "__main__":
    main()
