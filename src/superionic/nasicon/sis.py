"""``nasicon-sis``: operator feature space + sure independence screening.

SIS runs on the fit rows only (the authors' training split minus the
stratified validation share), so the validation rows used to rank the 2D
descriptors afterwards are untouched by every selection step.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
from numba import config as numba_config
from numba import get_num_threads, set_num_threads
from omegaconf import DictConfig
from scipy.stats import rankdata

from superionic.io import write_csv, write_json, write_npy
from superionic.nasicon import data as nd
from superionic.config import SisTarget
from superionic.nasicon.space import SISResult, build_and_screen, params_from_cfg
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

SIS_TARGETS = tuple(t.value for t in SisTarget)
# Columns of the SIS table.
RANK, EXPRESSION, R, ABS_R, N_OPS, RUNG = "rank", "expression", "r", "abs_r", "n_ops", "rung"
PROBE_NAMES = ("paper_t1", "paper_t2")


def sis_target(y_fit: np.ndarray, kind: str) -> np.ndarray:
    """The vector SIS correlates with: the target or its (average) ranks."""
    if kind == "rank":
        return rankdata(y_fit)
    if kind == "raw":
        return np.asarray(y_fit, dtype=float)
    raise ValueError(f"descriptor.sis_target must be one of {SIS_TARGETS}, got {kind!r}")


def run_sis(data: pd.DataFrame, cfg: DictConfig) -> SISResult:
    """Pure step: the tidy table (fit rows first) -> SIS result."""
    features = nd.feature_names(data)
    roles = data[nd.ROLE].to_numpy()
    n_fit = int((roles == "fit").sum())
    if not (roles[:n_fit] == "fit").all():
        raise ValueError("the data table must list the fit rows first")
    y_fit = sis_target(data[nd.TARGET].to_numpy()[:n_fit], str(cfg.descriptor.sis_target))
    t1, t2 = nd.paper_descriptor(data)
    n_jobs = int(cfg.descriptor.n_jobs)
    if n_jobs < 1:
        raise ValueError(f"descriptor.n_jobs must be >= 1, got {n_jobs}")
    previous = get_num_threads()
    set_num_threads(min(n_jobs, numba_config.NUMBA_NUM_THREADS))
    try:
        return build_and_screen(
            data[features].to_numpy().T,
            features,
            y_fit,
            params_from_cfg(cfg),
            seed=int(cfg.seed),
            probes={PROBE_NAMES[0]: t1, PROBE_NAMES[1]: t2},
        )
    finally:
        set_num_threads(previous)


def sis_table(res: SISResult) -> pd.DataFrame:
    return pd.DataFrame(
        {
            RANK: np.arange(1, len(res.expressions) + 1),
            EXPRESSION: res.expressions,
            R: np.round(res.r, 10),
            ABS_R: np.round(np.abs(res.r), 10),
            N_OPS: res.n_ops,
            RUNG: res.rung,
        }
    )


def sis_metrics(res: SISResult, cfg: DictConfig) -> dict:
    return {
        "complexity": int(cfg.descriptor.complexity),
        "last_rung_basis": int(cfg.descriptor.last_rung_basis),
        "sis_size": len(res.expressions),
        "sis_target": str(cfg.descriptor.sis_target),
        "n_candidates": res.n_candidates,
        "n_unique_valid": res.n_unique_valid,
        "counts_by_rung": res.counts,
        "primary_duplicates": res.primary_duplicates,
        "abs_r_best": round(float(np.abs(res.r[0])), 10),
        "abs_r_last": round(float(np.abs(res.r[-1])), 10),
        "paper_descriptor": {
            k: {kk: (round(v, 10) if isinstance(v, float) else v) for kk, v in p.items()}
            for k, p in res.probes.items()
        },
    }


@stage("nasicon-sis", sections=["seed", "descriptor"])
def run_stage(cfg: DictConfig) -> StageResult:
    paths = cfg.nasicon.paths
    data = pd.read_parquet(paths.data)
    t0 = time.perf_counter()
    res = run_sis(data, cfg)
    wall = time.perf_counter() - t0
    table = sis_table(res)
    write_csv(table, paths.sis_features, float_format=None)
    write_npy(res.values, paths.sis_matrix)
    metrics = sis_metrics(res, cfg)
    write_json(metrics, paths.sis_metrics)
    timings = {
        "stage_wall_s": round(wall, 2),
        **{k: round(v, 2) for k, v in res.timings.items()},
        "features_per_s": round(res.n_candidates / res.timings["generate_and_sis_s"], 1),
        # Peak resident memory of the process (Linux: KiB).
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    write_json(timings, Path(paths.timings) / "sis.json")
    log.info("SIS: %d candidates -> %d kept (%.1f s)", res.n_candidates, len(table), wall)
    return StageResult({**metrics, "timing": timings}, [paths.sis_features, paths.sis_metrics])
