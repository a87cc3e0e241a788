"""``nasicon-sisso``: SISSO's residual SIS rounds and the l0 search up to 3D.

SISSO (Ouyang et al. 2018) does not screen once: after the best 1D model, a
new SIS pool is ranked against that model's residual, the best 2D model is
searched over the union of both pools, and so on. A feature that only helps
in combination with another (the paper's t2 ranks ~176,000th by its own
correlation with the target) can reach the search that way.

Here the model of every dimension is the least-squares ranking model of
:mod:`superionic.nasicon.ranking` (RankRLS = least squares of rank(y) on the
standardized features, fitted on the fit rows), so the residual of a
descriptor is rank(y) minus its fit, on the fit rows. Round by round:

1. pool 1 = SIS top ``residual_pool_size`` against the SIS target
   (``descriptor.sis_target``); 1D = the best single feature of pool 1;
2. pool d = SIS top ``residual_pool_size`` against the residual of the best
   (d-1)-D descriptor, features already pooled excluded; dD = the best
   d-tuple of the union of pools 1..d (every tuple scored exactly);

up to ``max_dimension`` (<= 3). "Best" is always the validation ranking
accuracy; the ranking directions come from the fit rows. As the control
without residual rounds, one SIS pool of the same total size
(``max_dimension * residual_pool_size``) against the SIS target is searched
with the same l0 search in every dimension.

Honest selection: the selection (:func:`select`) receives the targets of the
fit and validation rows only; the test targets are read once, afterwards, by
:func:`final_table` for the reported figures. Every feature must be defined
and finite on all compositions (the tolerance factor is evaluated on each of
them), which uses the test compositions' primary features, never their
targets.
"""

from __future__ import annotations

import logging
import time
import resource
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from numba import config as numba_config
from numba import get_num_threads, set_num_threads
from omegaconf import DictConfig
from scipy.stats import rankdata

from superionic.io import write_csv, write_json
from superionic.nasicon import data as nd
from superionic.nasicon import sis as ns
from superionic.nasicon.ranking import (
    direction,
    direction3,
    pair_search,
    rankrls_inputs,
    ranking_accuracy,
    single_search,
    standardize,
    triple_search,
)
from superionic.nasicon.space import SpaceParams, build_and_screen, params_from_cfg
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

MAX_DIMENSION = 3
RESIDUAL, SINGLE_POOL, PAPER = "residual", "single_pool", "paper"
VARIANTS = (RESIDUAL, SINGLE_POOL)
TABLE_COLUMNS = (
    "variant", "dimension", "features", "weights", "searched",
    "fit_ranking_accuracy", "val_ranking_accuracy", "test_ranking_accuracy", "chosen",
)


@dataclass
class Found:
    """The best descriptor of one dimension in one feature set."""

    variant: str
    dimension: int
    index: tuple[int, ...]  # rows of the variant's feature matrix
    expressions: list[str]
    val_accuracy: float
    searched: int  # descriptors scored exactly (triples: minus the degenerate ones)


@dataclass
class Selection:
    """What :func:`select` found, from fit and validation rows only."""

    found: list[Found]
    # Per variant: expressions and values (all compounds) of the searched features.
    expressions: dict[str, list[str]]
    values: dict[str, np.ndarray]
    rounds: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def check_settings(pool_size: int, max_dimension: int) -> None:
    if pool_size < 3:
        raise ValueError(f"descriptor.residual_pool_size must be >= 3, got {pool_size}")
    if not 1 <= max_dimension <= MAX_DIMENSION:
        raise ValueError(f"descriptor.max_dimension must be in [1, {MAX_DIMENSION}], got {max_dimension}")


def rank_residual(z_fit: np.ndarray, y_fit: np.ndarray, ridge: float) -> np.ndarray:
    """Residual of the RankRLS fit of rank(y) on the rows of ``z_fit`` (standardized, fit rows)."""
    ranks = rankdata(y_fit)
    rs = (ranks - ranks.mean()) / ranks.std()
    n = z_fit.shape[1]
    gram = z_fit @ z_fit.T / n
    w = np.linalg.solve(gram + ridge * np.eye(len(gram)), z_fit @ rs / n)
    return rs - w @ z_fit


def l0_search(z: np.ndarray, y: np.ndarray, n_fit: int, dimension: int, ridge: float, n_jobs: int) -> tuple[tuple[int, ...], float, int]:
    """Best ``dimension``-tuple of the rows of ``z`` by validation ranking accuracy, every tuple scored.

    ``z`` and ``y`` hold the fit rows then the validation rows, nothing else.
    Ties go to the first tuple in lexicographic order.
    """
    val = slice(n_fit, z.shape[1])
    if z.shape[1] != len(y) or n_fit >= len(y):
        raise ValueError("l0_search needs fit rows then validation rows, with one target each")
    if dimension == 1:
        acc = single_search(z, y, n_fit, val, ridge)["accuracy"]
        best = int(np.argmax(acc))
        return (best,), float(acc[best]), len(acc)
    if dimension == 2:
        res = pair_search(z, y, n_fit, val, ridge=ridge, n_jobs=n_jobs)
        best = int(np.argmax(res["accuracy"]))
        return (int(res["first"][best]), int(res["second"][best])), float(res["accuracy"][best]), len(res["accuracy"])
    if dimension == 3:
        res = triple_search(z, y, n_fit, val, ridge=ridge, n_jobs=n_jobs)
        best = int(np.argmax(res["accuracy"]))
        idx = (int(res["first"][best]), int(res["second"][best]), int(res["third"][best]))
        if idx[2] < 0:
            raise ValueError("every triple is linearly dependent on the fit rows")
        return idx, float(res["accuracy"][best]), res["n_triples"] - res["n_degenerate"]
    raise ValueError(f"descriptor.max_dimension must be in [1, {MAX_DIMENSION}], got {dimension}")


def weights(z_fit: np.ndarray, y_fit: np.ndarray, index: tuple[int, ...], ridge: float) -> np.ndarray:
    """The search kernels' (unnormalized) RankRLS direction of a descriptor, same arithmetic."""
    gram, rho = rankrls_inputs(z_fit, y_fit)
    if len(index) == 1:
        return np.array([rho[index[0]]])
    if len(index) == 2:
        return direction(gram, rho, index[0], index[1], ridge)
    return direction3(gram, rho, *index, ridge)


def _screen(primaries, names, target, params: SpaceParams, size: int, seed: int, probes):
    return build_and_screen(primaries, names, target, replace(params, sis_size=size), seed=seed, probes=probes)


def select(
    primaries: np.ndarray,
    names: list[str],
    y_sel: np.ndarray,
    n_fit: int,
    params: SpaceParams,
    pool_size: int,
    max_dimension: int,
    sis_kind: str = "rank",
    ridge: float = 0.0,
    n_jobs: int = 1,
    seed: int = 0,
    probes: dict[str, np.ndarray] | None = None,
    residual_rounds: bool = True,
) -> Selection:
    """Residual SIS rounds + l0 search, and the single-pool control, on fit + validation rows.

    ``primaries`` (features, compounds) lists the fit compounds, then the
    validation compounds, then any others (test); ``y_sel`` holds the targets
    of the fit and validation compounds only, so no other target can enter.
    The other compounds' features only decide which expressions are valid.
    """
    check_settings(pool_size, max_dimension)
    n_sel = len(y_sel)
    if not 0 < n_fit < n_sel <= primaries.shape[1]:
        raise ValueError(f"need 0 < fit rows ({n_fit}) < fit + validation rows ({n_sel}) <= compounds")
    y_sel = np.asarray(y_sel, dtype=float)
    y_fit = y_sel[:n_fit]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # The single pool: also pool 1 of the residual rounds (its first pool_size).
    total = max_dimension * pool_size
    single = _screen(primaries, names, ns.sis_target(y_fit, sis_kind), params, total, seed, probes)
    timings["sis_single_pool_s"] = time.perf_counter() - t0
    z_single = standardize(single.values, n_fit)
    found: list[Found] = []
    for d in range(1, max_dimension + 1):
        t = time.perf_counter()
        idx, acc, searched = l0_search(z_single[:, :n_sel], y_sel, n_fit, d, ridge, n_jobs)
        timings[f"l0_{SINGLE_POOL}_{d}d_s"] = time.perf_counter() - t
        found.append(Found(SINGLE_POOL, d, idx, [single.expressions[i] for i in idx], acc, searched))
    expressions = {SINGLE_POOL: list(single.expressions)}
    values = {SINGLE_POOL: single.values}
    if not residual_rounds:
        return Selection(found, expressions, values, [], timings)

    # Residual rounds.
    u_expr = list(single.expressions[:pool_size])
    u_vals = [single.values[:pool_size]]
    rounds = [{
        "round": 1, "target": sis_kind, "pool": pool_size,
        "abs_r_first": float(abs(single.r[0])), "abs_r_last": float(abs(single.r[pool_size - 1])),
        "probes": single.probes,
    }]
    prev: Found | None = None
    for d in range(1, max_dimension + 1):
        if d > 1:
            t = time.perf_counter()
            z_u = standardize(np.concatenate(u_vals), n_fit)
            resid = rank_residual(z_u[list(prev.index), :n_fit], y_fit, ridge)
            # Ask for enough that pool_size new ones remain after dropping the pooled.
            res = _screen(primaries, names, resid, params, pool_size + len(u_expr), seed, probes)
            pooled = set(u_expr)
            new = [i for i, e in enumerate(res.expressions) if e not in pooled][:pool_size]
            u_expr += [res.expressions[i] for i in new]
            u_vals.append(res.values[new])
            timings[f"sis_round_{d}_s"] = time.perf_counter() - t
            rounds.append({
                "round": d, "target": f"residual of the {d - 1}D descriptor", "pool": len(new),
                "abs_r_first": float(abs(res.r[new[0]])), "abs_r_last": float(abs(res.r[new[-1]])),
                "residual_rms": float(np.sqrt(np.mean(resid ** 2))), "probes": res.probes,
            })
        z_u = standardize(np.concatenate(u_vals), n_fit)
        t = time.perf_counter()
        idx, acc, searched = l0_search(z_u[:, :n_sel], y_sel, n_fit, d, ridge, n_jobs)
        timings[f"l0_{RESIDUAL}_{d}d_s"] = time.perf_counter() - t
        prev = Found(RESIDUAL, d, idx, [u_expr[i] for i in idx], acc, searched)
        found.append(prev)
        rounds[-1]["union"] = len(u_expr)
    expressions[RESIDUAL] = u_expr
    values[RESIDUAL] = np.concatenate(u_vals)
    timings["select_s"] = time.perf_counter() - t0
    return Selection(found, expressions, values, rounds, timings)


def choose(found: list[Found]) -> Found:
    """The descriptor with the best validation accuracy; ties: lower dimension, residual rounds first."""
    order = {v: i for i, v in enumerate(VARIANTS)}
    return min((f for f in found if f.variant in order), key=lambda f: (-f.val_accuracy, f.dimension, order[f.variant]))


def describe(values: np.ndarray, index: tuple[int, ...], y: np.ndarray, roles: np.ndarray, ridge: float) -> dict:
    """Fit / validation / test ranking accuracy of a descriptor (direction from the fit rows).

    The only place the test targets are read: call it once, on the chosen
    descriptors, after the selection.
    """
    fit, val, test = (roles == r for r in nd.ROLES)
    n_fit = int(fit.sum())
    if not fit[:n_fit].all():
        raise ValueError("the data must list the fit rows first")
    z = standardize(values[list(index)], n_fit)
    w = weights(z[:, :n_fit], y[:n_fit], tuple(range(len(index))), ridge)
    s = w @ z
    return {
        "weights": w / np.linalg.norm(w),
        "fit_ranking_accuracy": ranking_accuracy(s[fit], y[fit]),
        "val_ranking_accuracy": ranking_accuracy(s[val], y[val]),
        "test_ranking_accuracy": ranking_accuracy(s[test], y[test]),
    }


def paper_found(data: pd.DataFrame) -> tuple[list[Found], np.ndarray]:
    """The paper's t1 (1D) and t1, t2 (2D) as descriptors of their own 'variant'."""
    vals = data[[nd.PAPER_T1, nd.PAPER_T2]].to_numpy().T
    names = [nd.PAPER_T1_RAW, nd.PAPER_T2_RAW]
    return [Found(PAPER, 1, (0,), names[:1], float("nan"), 1), Found(PAPER, 2, (0, 1), names, float("nan"), 1)], vals


def final_table(sel: Selection, data: pd.DataFrame, ridge: float) -> tuple[pd.DataFrame, Found]:
    """Validation and test side by side for every found descriptor and the paper's."""
    y = data[nd.TARGET].to_numpy()
    roles = data[nd.ROLE].to_numpy()
    chosen = choose(sel.found)
    paper, paper_vals = paper_found(data)
    rows = []
    for f in [*sel.found, *paper]:
        vals = paper_vals if f.variant == PAPER else sel.values[f.variant]
        info = describe(vals, f.index, y, roles, ridge)
        if f.variant != PAPER and not np.isclose(info["val_ranking_accuracy"], f.val_accuracy, atol=1e-12):
            raise AssertionError(f"{f.variant} {f.dimension}D: search and direct evaluation disagree")
        rows.append({
            "variant": f.variant, "dimension": f.dimension, "features": " | ".join(f.expressions),
            "weights": " ".join(f"{w:.6f}" for w in info["weights"]), "searched": f.searched,
            **{k: info[k] for k in ("fit_ranking_accuracy", "val_ranking_accuracy", "test_ranking_accuracy")},
            "chosen": f is chosen,
        })
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)).round(8), chosen


def chosen_values(sel: Selection, chosen: Found, data: pd.DataFrame) -> pd.DataFrame:
    """The chosen descriptor's features on every composition (input of the SVC stage)."""
    out = pd.DataFrame({nd.COMP: data[nd.COMP].to_numpy()})
    vals = sel.values[chosen.variant]
    for k, i in enumerate(chosen.index, start=1):
        out[f"t{k}"] = vals[i]
    return out


def run_select(data: pd.DataFrame, cfg: DictConfig) -> Selection:
    """Pure step: the tidy table -> selection, handing it the fit and validation targets only."""
    d = cfg.descriptor
    roles = data[nd.ROLE].to_numpy()
    n_fit = int((roles == "fit").sum())
    n_val = int((roles == "validation").sum())
    if not ((roles[:n_fit] == "fit").all() and (roles[n_fit:n_fit + n_val] == "validation").all()):
        raise ValueError("the data table must list the fit rows, then the validation rows")
    n_jobs = int(d.n_jobs)
    if n_jobs < 1:
        raise ValueError(f"descriptor.n_jobs must be >= 1, got {n_jobs}")
    features = nd.feature_names(data)
    t1, t2 = nd.paper_descriptor(data)
    # Only the fit and validation targets leave the table.
    y_sel = data[nd.TARGET].to_numpy()[: n_fit + n_val]
    previous = get_num_threads()
    set_num_threads(min(n_jobs, numba_config.NUMBA_NUM_THREADS))
    try:
        return select(
            data[features].to_numpy().T, features, y_sel, n_fit, params_from_cfg(cfg),
            pool_size=int(d.residual_pool_size), max_dimension=int(d.max_dimension),
            sis_kind=str(d.sis_target), ridge=float(d.ranking_ridge), n_jobs=n_jobs, seed=int(cfg.seed),
            probes={ns.PROBE_NAMES[0]: t1, ns.PROBE_NAMES[1]: t2},
        )
    finally:
        set_num_threads(previous)


def _plain(obj):
    if isinstance(obj, float | np.floating):
        return round(float(obj), 8)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def metrics_of(sel: Selection, table: pd.DataFrame, chosen: Found, cfg: DictConfig) -> dict:
    return _plain({
        "residual_pool_size": int(cfg.descriptor.residual_pool_size),
        "max_dimension": int(cfg.descriptor.max_dimension),
        "rounds": sel.rounds,
        "single_pool_size": len(sel.expressions[SINGLE_POOL]),
        "chosen": {
            "variant": chosen.variant, "dimension": chosen.dimension, "features": chosen.expressions,
            **table[table["chosen"]].iloc[0][
                ["fit_ranking_accuracy", "val_ranking_accuracy", "test_ranking_accuracy"]].to_dict(),
        },
        "descriptors": {
            f"{r['variant']}_{r['dimension']}d": {
                k: r[k] for k in ("features", "searched", "fit_ranking_accuracy", "val_ranking_accuracy",
                                  "test_ranking_accuracy")
            }
            for _, r in table.iterrows()
        },
    })


@stage("nasicon-sisso", sections=["seed", "descriptor"])
def run_stage(cfg: DictConfig) -> StageResult:
    paths = cfg.nasicon.paths
    data = pd.read_parquet(paths.data)
    t0 = time.perf_counter()
    sel = run_select(data, cfg)
    # Selection is over; the test targets are read here, once.
    table, chosen = final_table(sel, data, float(cfg.descriptor.ranking_ridge))
    write_csv(table, paths.sisso_table, float_format="%.8f")
    write_csv(chosen_values(sel, chosen, data), paths.sisso_descriptor, float_format="%.10g")
    metrics = metrics_of(sel, table, chosen, cfg)
    write_json(metrics, paths.sisso_metrics)
    timings = {"stage_wall_s": round(time.perf_counter() - t0, 2),
               # Peak resident memory of the process (Linux: KiB).
               "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               **{k: round(v, 2) for k, v in sel.timings.items()}}
    write_json(timings, Path(paths.timings) / "sisso.json")
    log.info("SISSO: chosen %s %dD %s (validation %.4f)", chosen.variant, chosen.dimension,
             chosen.expressions, chosen.val_accuracy)
    return StageResult({**metrics, "timing": timings}, [paths.sisso_table, paths.sisso_metrics])
