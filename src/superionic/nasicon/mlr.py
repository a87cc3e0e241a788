"""``nasicon-mlr``: every pair of SIS features ranked as a 2D descriptor.

All C(k, 2) pairs are scored exactly (no prefilter): RankRLS direction from
the fit rows, pairwise ranking accuracy on the validation rows (see
:mod:`superionic.nasicon.ranking`). The best ``top_n`` are then described in
full: ranking accuracy on fit / validation / test rows, F1, and a hinge-loss
RankSVM refit as a check on the least-squares direction.

F1 of a descriptor: the compounds are classified "stable" (E_hull - T*S_ideal
<= nasicon.stable_threshold) when their ranking score is at most a threshold;
the threshold maximizes F1 of the stable class on the fit rows and the F1
reported is that classifier's on the validation (and test) rows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.svm import LinearSVC

from superionic.io import write_csv, write_json
from superionic.nasicon import data as nd
from superionic.nasicon import sis as ns
from superionic.nasicon.ranking import direction, pair_search, ranking_accuracy, standardize
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

# Columns of the top-descriptor table.
TOP_COLUMNS = (
    "rank", "feature_1", "feature_2", "sis_rank_1", "sis_rank_2", "w_1", "w_2",
    "val_ranking_accuracy", "fit_ranking_accuracy", "test_ranking_accuracy",
    "f1_val", "f1_test", "hinge_w_1", "hinge_w_2", "hinge_val_ranking_accuracy",
)


def best_f1_threshold(score: np.ndarray, stable: np.ndarray) -> tuple[float, float]:
    """Threshold t maximizing F1 of 'stable iff score <= t'; returns (t, F1)."""
    order = np.argsort(score, kind="stable")
    s, st = score[order], stable[order].astype(int)
    n_stable = st.sum()
    if n_stable == 0:
        raise ValueError("no stable compound on the fit rows")
    tp = np.cumsum(st)
    q = np.arange(1, len(s) + 1)
    f1 = 2 * tp / (q + n_stable)
    # Only cut between distinct scores.
    cut_ok = np.append(s[1:] != s[:-1], True)
    f1 = np.where(cut_ok, f1, -1)
    best = int(np.argmax(f1))
    t = s[best] if best == len(s) - 1 else 0.5 * (s[best] + s[best + 1])
    return float(t), float(f1[best])


def f1_at(score: np.ndarray, stable: np.ndarray, t: float) -> float:
    pred = score <= t
    tp = int((pred & stable).sum())
    denom = int(pred.sum()) + int(stable.sum())
    return 2 * tp / denom if denom else 0.0


def hinge_direction(z_fit: np.ndarray, y_fit: np.ndarray, n_pairs: int, c: float, seed: int) -> np.ndarray:
    """L2-loss (squared hinge) RankSVM direction from sampled compound pairs of the fit rows.

    Solved in the primal, which converges on these non-separable pair sets
    (the L1-hinge dual does not within a sensible iteration budget).
    """
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(y_fit), n_pairs)
    b = rng.integers(0, len(y_fit), n_pairs)
    keep = y_fit[a] != y_fit[b]
    a, b = a[keep], b[keep]
    x = (z_fit[:, a] - z_fit[:, b]).T
    lab = np.sign(y_fit[a] - y_fit[b])
    svm = LinearSVC(C=c, loss="squared_hinge", fit_intercept=False, dual=False, random_state=seed)
    svm.fit(x, lab)
    return svm.coef_[0]


def describe(
    z: np.ndarray, y: np.ndarray, stable: np.ndarray, roles: np.ndarray, i: int, j: int, w: np.ndarray
) -> dict:
    """Ranking accuracy on fit/validation/test and the F1 of a 2D descriptor direction."""
    s = w[0] * z[i] + w[1] * z[j]
    fit, val, test = (roles == r for r in nd.ROLES)
    t, _ = best_f1_threshold(s[fit], stable[fit])
    return {
        "fit_ranking_accuracy": ranking_accuracy(s[fit], y[fit]),
        "val_ranking_accuracy": ranking_accuracy(s[val], y[val]),
        "test_ranking_accuracy": ranking_accuracy(s[test], y[test]),
        "f1_val": f1_at(s[val], stable[val], t),
        "f1_test": f1_at(s[test], stable[test], t),
    }


def run_mlr(data: pd.DataFrame, sis: pd.DataFrame, values: np.ndarray, cfg: DictConfig) -> tuple[pd.DataFrame, dict]:
    """Pure step: data table, SIS table and matrix -> top descriptors and metrics."""
    d = cfg.descriptor
    roles = data[nd.ROLE].to_numpy()
    n_fit = int((roles == "fit").sum())
    val = np.flatnonzero(roles == "validation")
    if not (roles[:n_fit] == "fit").all() or len(val) == 0:
        raise ValueError("the data table must list the fit rows first and hold validation rows")
    val_slice = slice(int(val[0]), int(val[-1]) + 1)
    y = data[nd.TARGET].to_numpy()
    stable = data[nd.STABLE].to_numpy()
    z = standardize(values, n_fit)
    t0 = time.perf_counter()
    res = pair_search(z, y, n_fit, val_slice, ridge=float(d.ranking_ridge), n_jobs=int(d.n_jobs))
    search_s = time.perf_counter() - t0
    acc = res["accuracy"]
    top = np.argsort(-acc, kind="stable")[: int(d.top_n)]
    rows = []
    for rank, p in enumerate(top, start=1):
        i, j = int(res["first"][p]), int(res["second"][p])
        # Scored with the unnormalized direction, the exact arithmetic of the
        # pair kernel, so that tied scores tie in both places.
        w = direction(res["gram"], res["rho"], i, j, float(d.ranking_ridge))
        info = describe(z, y, stable, roles, i, j, w)
        w = w / np.linalg.norm(w)
        if not np.isclose(info["val_ranking_accuracy"], acc[p], atol=1e-12):
            raise AssertionError("pair search and direct evaluation disagree")
        hw = hinge_direction(z[[i, j], :n_fit], y[:n_fit], int(d.hinge_pairs), float(d.hinge_c), int(cfg.seed))
        hw = hw / np.linalg.norm(hw)
        hs = hw[0] * z[i] + hw[1] * z[j]
        rows.append(
            {
                "rank": rank, "feature_1": sis[ns.EXPRESSION].iloc[i], "feature_2": sis[ns.EXPRESSION].iloc[j],
                "sis_rank_1": i + 1, "sis_rank_2": j + 1, "w_1": w[0], "w_2": w[1], **info,
                "hinge_w_1": hw[0], "hinge_w_2": hw[1],
                "hinge_val_ranking_accuracy": ranking_accuracy(hs[val], y[val]),
            }
        )
    table = pd.DataFrame(rows, columns=list(TOP_COLUMNS)).round(8)

    # The paper's t1, t2 (authors' values) through the very same protocol.
    paper = standardize(data[[nd.PAPER_T1, nd.PAPER_T2]].to_numpy().T, n_fit)
    pres = pair_search(paper, y, n_fit, val_slice, ridge=float(d.ranking_ridge), n_jobs=1)
    pw = direction(pres["gram"], pres["rho"], 0, 1, float(d.ranking_ridge))
    paper_info = describe(paper, y, stable, roles, 0, 1, pw)
    pw = pw / np.linalg.norm(pw)
    # 1D baselines: the best single SIS feature, and t1 alone.
    single = [
        ranking_accuracy(np.sign(res["rho"][i]) * z[i, val_slice], y[val_slice]) for i in range(z.shape[0])
    ]
    best_single = int(np.argmax(single))
    q = np.quantile(acc, [0.5, 0.9, 0.99, 1.0])
    metrics = {
        "n_pairs": int(len(acc)),
        "n_validation": int(len(val)),
        "best": {k: (round(v, 8) if isinstance(v, float) else v) for k, v in table.iloc[0].to_dict().items()},
        "paper_descriptor": {
            **{k: round(v, 8) for k, v in paper_info.items()},
            "w_1": round(float(pw[0]), 8), "w_2": round(float(pw[1]), 8),
            "pairs_better_on_validation": int((acc > paper_info["val_ranking_accuracy"]).sum()),
        },
        "best_single_feature": {
            "expression": sis[ns.EXPRESSION].iloc[best_single],
            "val_ranking_accuracy": round(float(single[best_single]), 8),
        },
        "val_accuracy_quantiles": {f"q{int(qq * 100)}": round(float(v), 8) for qq, v in zip((0.5, 0.9, 0.99, 1.0), q, strict=True)},
    }
    timing = {"pair_search_s": round(search_s, 2), "pairs_per_s": round(len(acc) / search_s, 1)}
    return table, {"metrics": metrics, "timing": timing}


@stage("nasicon-mlr", sections=["seed", "descriptor", "nasicon"])
def run_stage(cfg: DictConfig) -> StageResult:
    paths = cfg.nasicon.paths
    data = pd.read_parquet(paths.data)
    sis = pd.read_csv(paths.sis_features)
    values = np.load(paths.sis_matrix)
    t0 = time.perf_counter()
    table, out = run_mlr(data, sis, values, cfg)
    out["timing"]["stage_wall_s"] = round(time.perf_counter() - t0, 2)
    write_csv(table, paths.mlr_top, float_format="%.8f")
    write_json(out["metrics"], paths.mlr_metrics)
    write_json(out["timing"], Path(paths.timings) / "mlr.json")
    log.info("MLR: best %s | %s", table.iloc[0]["feature_1"], table.iloc[0]["feature_2"])
    return StageResult({**out["metrics"], "timing": out["timing"]}, [paths.mlr_top, paths.mlr_metrics])
