"""Stage ``pool-features``: CD-145 composition descriptors of every distinct pool formula.

One row per reduced formula of both releases' pools (polymorphs share a
composition, so they share descriptors; the releases share most formulas).
The ranking, the rediscovery test and the V_ox estimate all read this one
table instead of featurizing again, whichever release ``screen.release``
selects.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic import files
from superionic.screening import columns as C
from superionic.io import TABLE_DECIMALS, report_path, write_json, write_parquet
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

METRICS_FILE = f"{files.SCREEN_POOL_FEATURES_DIR}/pool_features_metrics.json"


def featurize_pool(formulas: pd.Series) -> pd.DataFrame:
    """CD-145 per distinct formula, sorted by formula; all-NaN rows are unreadable formulas."""
    from superionic.features.composition import featurize_formulas

    distinct = sorted(set(formulas))
    features = featurize_formulas(distinct)
    features.insert(0, C.REDUCED_FORMULA, distinct)
    return features


def features_for(table: pd.DataFrame, features: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The feature rows of ``table`` (by reduced formula), index aligned with ``table``."""
    indexed = features.set_index(C.REDUCED_FORMULA)
    missing = sorted(set(table[C.REDUCED_FORMULA]) - set(indexed.index))
    if missing:
        raise ValueError(f"{len(missing)} formulas lack pool features (rerun `dvc repro pool-features`): {missing[:5]}")
    out = indexed.loc[table[C.REDUCED_FORMULA], columns]
    out.index = table.index
    return out.astype(float)


@stage("pool-features", sections=["screen"])
def run_stage(cfg: DictConfig) -> StageResult:
    screen = cfg.screen
    formulas = pd.concat(
        [pd.read_parquet(path, columns=[C.REDUCED_FORMULA])[C.REDUCED_FORMULA] for path in (screen.pool, screen.pool2024)]
    )
    start = time.perf_counter()
    features = featurize_pool(formulas)
    seconds = time.perf_counter() - start
    values = features.drop(columns=[C.REDUCED_FORMULA]).to_numpy(dtype=float)
    metrics = {
        "n_formulas": len(features),
        "n_unreadable": int((~np.isfinite(values).any(axis=1)).sum()),
        "n_rows_with_nan": int((~np.isfinite(values)).any(axis=1).sum()),
    }
    write_parquet(features, screen.pool_features)
    path = write_json(metrics, report_path(screen.report_dir, METRICS_FILE), decimals=TABLE_DECIMALS)
    log.info("pool-features: %d formulas in %.1f s", len(features), seconds)
    return StageResult({**metrics, "featurize_seconds": seconds}, [path])
