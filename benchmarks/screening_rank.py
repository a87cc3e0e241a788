"""Benchmark: the 2024 screening hot paths against the baselines they replace.

1. The funnel's filters (``superionic.screening.funnel.apply_filters``, one
   vectorised pass with ``np.select``) against the per-row ``itertuples`` loop
   the 2019-only funnel used, on the real 2024 pool (21,686 rows); the
   verdicts must be identical.
2. Scoring the pool with the ensemble (``Ensemble.assess``: votes and every
   split-model's calibrated probability in one pass) once per *distinct
   formula* against once per material row (polymorphs share a composition,
   hence every feature), the naive layout.

Needs the outputs of ``dvc repro funnel ensemble pool-features``. Usage:

    python benchmarks/screening_rank.py [--params params.yaml] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from superionic.config import load_params
from superionic.classifier.ensemble import load_ensemble
from superionic.screening import columns as C
from superionic.screening.features import features_for
from superionic.screening.funnel import STEPS, Thresholds, apply_filters, input_2024


def per_row_verdicts(table: pd.DataFrame, t: Thresholds) -> list[tuple[str, str]]:
    """The former implementation's shape: one Python iteration per row, verdict and reason."""
    out = []
    for row in table.itertuples(index=False):
        row = row._asdict()
        tms = sorted(set(row[C.CHEMSYS].split("-")) & t.transition_metals)
        v_ox, error = row[C.V_OX], row["v_ox_error"]
        decided = not np.isnan(v_ox) and abs(v_ox - t.oxidation_voltage_min) > (0.0 if np.isnan(error) else error)
        if tms:
            out.append((STEPS[1], "contains transition metal " + "-".join(tms)))
        elif not row[C.BAND_GAP] >= t.band_gap_min:
            out.append((STEPS[2], row[C.BAND_GAP_NOTE] if np.isnan(row[C.BAND_GAP])
                        else f"band gap {row[C.BAND_GAP]:.3f} eV < {t.band_gap_min:g}"))
        elif not row[C.E_HULL] <= t.ehull_max:
            out.append((STEPS[3], f"E_hull {row[C.E_HULL]:.4f} eV/atom > {t.ehull_max:g}"))
        elif not (decided and v_ox > t.oxidation_voltage_min):
            out.append((STEPS[4], f"V_ox {v_ox:.3f} V <= {t.oxidation_voltage_min:g}"))
        else:
            out.append(("", ""))
    return out


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = load_params(args.params)
    screen = cfg.screen
    print(f"CPUs visible: {os.cpu_count()}; load avg: {os.getloadavg()}")

    table = input_2024(pd.read_parquet(screen.pool2024), pd.read_parquet(screen.voltage))
    t = Thresholds.from_config(screen)
    vec_s, vec = best_of(args.repeats, lambda: apply_filters(table, t))
    row_s, rows = best_of(args.repeats, lambda: per_row_verdicts(table, t))
    same = vec[C.FAILED_AT].tolist() == [r[0] for r in rows]
    print(f"filters on {len(table):,} rows, verdicts and reasons: vectorised {vec_s * 1e3:.0f} ms, "
          f"per-row loop {row_s * 1e3:.0f} ms; identical verdicts: {same}")

    ensemble = load_ensemble(cfg.classifier.ensemble_model)
    features = pd.read_parquet(screen.pool_features)
    columns = list(ensemble.feature_columns)
    distinct = pd.DataFrame({C.REDUCED_FORMULA: sorted(set(table[C.REDUCED_FORMULA]))})
    X_distinct = features_for(distinct, features, columns)
    X_rows = features_for(table, features, columns)
    d_s, (_, p_distinct) = best_of(1, lambda: ensemble.assess(X_distinct))
    r_s, (_, p_rows) = best_of(1, lambda: ensemble.assess(X_rows))
    mean_by_formula = pd.Series(p_distinct.mean(axis=0), index=distinct[C.REDUCED_FORMULA])
    same_p = np.allclose(mean_by_formula.loc[table[C.REDUCED_FORMULA]].to_numpy(), p_rows.mean(axis=0))
    n_models = p_distinct.shape[0]
    print(f"ensemble ({n_models} split-models): {len(distinct):,} distinct formulas {d_s:.1f} s "
          f"({len(distinct) * n_models / d_s:,.0f} model-rows/s); {len(table):,} material rows {r_s:.1f} s; "
          f"speed-up {r_s / d_s:.2f}x; same probabilities: {same_p}")


if __name__ == "__main__":
    main()
