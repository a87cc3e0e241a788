"""Featurize stage: CD-145 for every distinct composition in the interim table.

Features are cached by composition key in ``paths.composition_features``
(a DVC output with ``persist: true``): a new source only costs the
compositions it adds, and compositions no longer present are dropped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from pymatgen.core import Composition

from superionic.data import columns as C
from superionic.features.composition import composition_feature_labels, featurize_compositions
from superionic.io import write_json, write_parquet
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)


def update_feature_cache(
    interim: pd.DataFrame, cache: pd.DataFrame | None,
) -> tuple[pd.DataFrame, dict]:
    """Return the feature table for the compositions in ``interim`` and counts.

    ``cache`` rows are reused when their columns match the current feature
    set; a changed feature set invalidates the whole cache.
    """
    labels = composition_feature_labels()
    wanted = interim.drop_duplicates(C.COMPOSITION).set_index(C.COMPOSITION)[C.AMOUNTS].sort_index()
    reusable = pd.DataFrame(columns=[C.COMPOSITION, *labels])
    if cache is not None and list(cache.columns) == [C.COMPOSITION, *labels]:
        reusable = cache[cache[C.COMPOSITION].isin(wanted.index)]
    todo = wanted[~wanted.index.isin(reusable[C.COMPOSITION])]
    log.info("featurize: %d compositions to compute, %d reused from the cache", len(todo), len(reusable))
    started = time.perf_counter()
    fresh = featurize_compositions([Composition(f) for f in todo])
    elapsed = time.perf_counter() - started
    fresh.insert(0, C.COMPOSITION, todo.index.to_numpy())
    table = pd.concat([reusable, fresh] if len(reusable) else [fresh], ignore_index=True)
    table = table.sort_values(C.COMPOSITION).reset_index(drop=True)
    nan_counts = table[labels].isna().sum()
    metrics = {
        "compositions": int(len(table)),
        "computed": int(len(todo)),
        "reused": int(len(reusable)),
        "rows_with_nan": int(table[labels].isna().any(axis=1).sum()),
        "features_with_nan": {k: int(v) for k, v in nan_counts[nan_counts > 0].items()},
        "seconds_per_1000": round(1000 * elapsed / len(todo), 3) if len(todo) else 0.0,
    }
    return table, metrics


def read_cache(path: Path) -> pd.DataFrame | None:
    """The persisted feature cache; a damaged one is named, set aside and rebuilt, never fatal."""
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        log.warning("%s: damaged feature cache (%s: %s); rebuilding it from scratch", path, type(exc).__name__, exc)
        return None


@stage("featurize", sections=["features", "paths"])
def run_stage(cfg: DictConfig) -> StageResult:
    interim = pd.read_parquet(cfg.paths.interim)
    cache_path = Path(cfg.paths.composition_features)
    cache = read_cache(cache_path)
    table, metrics = update_feature_cache(interim, cache)
    write_parquet(table, cache_path)
    # Timing and cache hits depend on history, not on the inputs; they go to
    # MLflow only, so the DVC metrics file is a function of the inputs.
    cache_stats = {k: metrics.pop(k) for k in ("seconds_per_1000", "computed", "reused")}
    write_json(metrics, cfg.paths.featurize_metrics)
    log.info("featurize: %d compositions (%d computed, %d reused)", len(table), cache_stats["computed"], cache_stats["reused"])
    return StageResult({**metrics, **cache_stats})
