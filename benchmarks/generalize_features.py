"""Benchmark: the Li-chemistry block and the trust columns, against per-row baselines.

1. ``superionic.features.lithium.lithium_features`` (one amount matrix, array
   operations over element-property vectors) against a per-row loop over
   each composition's elements (the obvious implementation), on the 2024
   Materials Project pool formulas; the values must agree.
2. Scoring the pool's trust columns with the generalize stage's model
   (``DeployedModel.assess``, one batch) against one call per formula, the
   shape of a per-row ``predict`` loop.

Needs ``dvc repro pool-features generalize``. Usage:

    python benchmarks/generalize_features.py [--params params.yaml] [--n 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Element

from superionic.config import load_params
from superionic.features.lithium import LITHIUM_FEATURES, lithium_features
from superionic.classifier.ensemble import load_verified
from superionic.classifier.generalize import DeployedModel


def per_row_li_fraction_and_anions(comps: list[Composition]) -> np.ndarray:
    """The per-row baseline for the part of the block that is pure bookkeeping: Li fraction,
    anion fraction and amount-weighted anion electronegativity, element by element."""
    anions = {"O", "S", "Se", "Te", "F", "Cl", "Br", "I", "N"}
    out = np.full((len(comps), 3), np.nan)
    for i, comp in enumerate(comps):
        total = comp.num_atoms
        li = comp["Li"] / total
        # H is an anion only without O and N (the module's stated rule)
        anions_here = anions | ({"H"} if comp["O"] == 0 and comp["N"] == 0 else set())
        anion_amount = sum(amt for el, amt in comp.items() if el.symbol in anions_here)
        chi = sum(amt * Element(el.symbol).X for el, amt in comp.items() if el.symbol in anions_here)
        out[i] = [li, anion_amount / total, chi / anion_amount if anion_amount else np.nan]
    return out


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--n", type=int, default=5000, help="pool formulas to featurize")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = load_params(args.params)
    pool = pd.read_parquet(cfg.screen.pool_features)
    formulas = pool["reduced_formula"].drop_duplicates().head(args.n).tolist()
    comps = [Composition(f) for f in formulas]
    print(f"{len(comps)} pool compositions, {os.cpu_count()} CPUs, best of {args.repeats}")

    t_vec, table = best_of(args.repeats, lambda: lithium_features(comps))
    t_row, ref = best_of(args.repeats, lambda: per_row_li_fraction_and_anions(comps))
    cols = ["li fraction", "li anion fraction", "li anion electronegativity"]
    agree = np.allclose(table[cols].to_numpy(), ref, equal_nan=True)
    print(f"Li block, all {len(LITHIUM_FEATURES)} features vectorised: {t_vec * 1e3:8.1f} ms "
          f"({len(comps) / t_vec:,.0f} compositions/s)")
    print(f"per-row loop, 3 of those features:           {t_row * 1e3:8.1f} ms  -> "
          f"{t_row / t_vec:.1f}x slower for 1/{len(LITHIUM_FEATURES) // 3} of the work; values agree: {agree}")

    deployed = load_verified(cfg.generalize.model, DeployedModel, "generalize.model", "generalize")
    cd = pool.drop_duplicates("reduced_formula").head(args.n)
    X = deployed.features(cd[deployed.cd_columns], cd["reduced_formula"].tolist())
    t_batch, batch = best_of(args.repeats, lambda: deployed.assess(X))
    few = X.head(200)
    t_each, each = best_of(1, lambda: pd.concat([deployed.assess(few.iloc[[i]]) for i in range(len(few))]))
    same = np.allclose(batch["p_calibrated"].head(200).to_numpy(), each["p_calibrated"].to_numpy())
    print(f"trust columns, one batch of {len(X)}:  {t_batch * 1e3:8.1f} ms ({len(X) / t_batch:,.0f} rows/s)")
    print(f"trust columns, one call per row (200): {t_each * 1e3:8.1f} ms ({200 / t_each:,.0f} rows/s) "
          f"-> {(t_each / 200) / (t_batch / len(X)):.0f}x slower per row; probabilities agree: {same}")


if __name__ == "__main__":
    main()
