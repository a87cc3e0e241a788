"""`superionic explore` end to end: compositions per minute on 2 cores, fast path and full ensemble.

The space is the configured one (``explore`` in params.yaml) with its first
slot's grid refined until it holds at least ``--min-compositions``. Timed in
one run:

* **fast path** (what ranks the whole space): enumerate, vectorised CD-145 +
  Li block straight from the amount matrix, calibrated default model with
  trust columns and inner-model spread;
* **end to end**: the fast path plus nearest training materials for the shown
  rows and the ensemble cross-check of the top and the random sample;
* **baseline**: what the same ranking would cost through the previous tools,
  measured on a sample and extrapolated: formula text -> pymatgen ->
  matminer CD-145 -> the 200-model ensemble (two evaluations per split-model);
* **full ensemble alone** on a sample, single-evaluation path, 2 threads.

Needs ``dvc repro generalize ensemble``. Usage:

    python benchmarks/explore_rate.py [--params params.yaml] [--min-compositions 100000] [--sample 1000]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
from omegaconf import OmegaConf
from pymatgen.core import Composition

from superionic.config import load_params
from superionic.explore import stage
from superionic.explore.space import build_space


def refined(spec: dict, minimum: int) -> dict:
    """The spec with slot 1's step halved until the space holds ``minimum`` compositions."""
    spec = copy.deepcopy(spec)
    while build_space(spec).size < minimum:
        start, stop, step = spec["sites"][0]["levels"]
        spec["sites"][0]["levels"] = [start, stop, step / 2]
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--min-compositions", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=1000, help="rows timed through the baseline path")
    args = parser.parse_args()
    cfg = load_params(args.params)
    spec = refined(OmegaConf.to_container(cfg.explore, resolve=True), args.min_compositions)
    deployed, ensemble = stage._load_models(cfg)
    train = stage._training_table(cfg)
    print(f"space {spec['host']}: {build_space(spec).size} compositions, {os.cpu_count()} CPUs")

    start = time.perf_counter()
    result = stage.explore(spec, deployed, ensemble, train, int(cfg.seed))
    wall = time.perf_counter() - start
    n = len(result.ranked)
    seconds = result.seconds
    fast = seconds["enumerate"] + seconds["featurize"] + seconds["rank"]
    print(f"fast path:   enumerate {seconds['enumerate']:.2f} s, features {seconds['featurize']:.2f} s, "
          f"rank {seconds['rank']:.2f} s -> {60 * n / fast:,.0f} compositions/min")
    print(f"end to end:  {wall:.1f} s for {n} compositions -> {60 * n / wall:,.0f} compositions/min "
          f"(incl. neighbours {seconds['neighbours']:.1f} s, ensemble check of {int(seconds['ensemble_rows'])} "
          f"rows {seconds['ensemble']:.1f} s)")

    # the baseline on a sample of the same space
    from superionic.features.composition import featurize_compositions_matminer

    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(n, size=min(args.sample, n), replace=False))
    texts = result.ranked["composition"].to_numpy()[rows]
    start = time.perf_counter()
    X = featurize_compositions_matminer([Composition(t) for t in texts])[ensemble.feature_columns]
    for member in ensemble.member_names:
        for model, calibrated in zip(ensemble.models[member], ensemble.calibrators[member], strict=True):
            model.predict(X)
            calibrated.predict_proba(X)
    base = time.perf_counter() - start
    print(f"baseline:    {len(rows)} compositions in {base:.1f} s -> {60 * len(rows) / base:,.0f} compositions/min "
          f"(matminer + 200-model ensemble, two evaluations each)")
    start = time.perf_counter()
    ensemble.assess(X, n_jobs=2)
    ens = time.perf_counter() - start
    print(f"ensemble:    {60 * len(rows) / ens:,.0f} compositions/min (single evaluation, 2 threads)")
    check = result.faithfulness
    print(f"speed-up of the fast path over the baseline: {(60 * n / fast) / (60 * len(rows) / base):.0f}x; "
          f"ranking faithfulness on {check['sample_size']} random rows: Spearman {check['spearman_sample']:.3f}, "
          f"label agreement {check['label_agreement_sample']:.3f}")


if __name__ == "__main__":
    main()
