"""Stage ``voltage``: the oxidation voltage of every 2024 pool formula, with its source named.

A voltage window needs energies of one functional for the whole chemical
system, which the 2024 file (MP's mixed GGA/GGA+U/r2SCAN E_hull, no
energies) does not give. V_ox is therefore taken, in this order, from:

1. ``mp2019-gga``: the project's own grand-potential computation on the 2019
   GGA(+U) energies (stage ``thermo``), when the formula is on the 2019 hull
   *and* its chemical system is complete there: every composition of the
   system (and of its sub-systems) that is on the 2024 hull has a 2019
   energy. A stable competitor missing from 2019 would make the window too
   wide, so such systems fall through to the next source.
2. ``wang2024``: Wang et al. 2024 by reduced formula (median of duplicate rows).
3. ``ml-estimate`` (flagged; only with ``screen.vox_model.enabled``): a
   LightGBM regressor on CD-145 trained on all Wang formulas, its error
   stated by chemical-system-grouped cross-validation. The RMSE of that CV
   goes with every estimate (``v_ox_error``): the funnel counts an estimate
   as decisive only when it clears the threshold by more than that.
4. ``unknown``: no source. The funnel lists these on their own, never passing
   or dropping them silently.

Where (1) and (2) both exist they are compared (agreement in the report).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic import files
from superionic.screening import columns as C
from superionic.screening.columns import (  # noqa: F401 (the voltage table's names, re-exported)
    GGA_COMPLETE, GGA_MISSING, GGA_ON_HULL, GGA_V_OX, GGA_V_RED, ML_V_OX, SOURCE_GGA, SOURCE_ML, SOURCE_UNKNOWN,
    SOURCE_WANG, SOURCES, V_OX_ERROR, WANG_V_OX, WANG_V_RED,
)
from superionic.screening.esw import WANG_OX_MEDIAN, WANG_RED_MEDIAN
from superionic.screening.esw import window_stats
from superionic.io import TABLE_DECIMALS, report_path, write_csv, write_json, write_parquet
from superionic.screening.thermo import missing_in_system
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

VOLTAGE_COLUMNS = [
    C.REDUCED_FORMULA, C.CHEMSYS, GGA_ON_HULL, GGA_V_OX, GGA_V_RED, GGA_MISSING, GGA_COMPLETE,
    WANG_V_OX, WANG_V_RED, ML_V_OX, C.V_OX, C.V_RED, C.V_OX_SOURCE, V_OX_ERROR,
]  # fmt: skip
METRICS_FILE = files.SCREEN_VOLTAGE_METRICS
AGREEMENT_FILE = files.SCREEN_VOLTAGE_AGREEMENT
ML_CV_FILE = f"{files.SCREEN_VOLTAGE_DIR}/voltage_ml_cv.csv"


def missing_competitors(hull_2024: pd.DataFrame, known_2019: set[str]) -> dict[frozenset[str], list[str]]:
    """2024 hull compositions (two or more elements) without a 2019 energy, by element set.

    ``hull_2024``: reduced formula and chemsys of the materials on the 2024 hull.
    """
    lacking = hull_2024[~hull_2024[C.REDUCED_FORMULA].isin(known_2019)]
    lacking = lacking[lacking[C.CHEMSYS].str.contains("-", regex=False)]
    out: dict[frozenset[str], list[str]] = {}
    for chemsys, formula in zip(lacking[C.CHEMSYS], lacking[C.REDUCED_FORMULA], strict=True):
        out.setdefault(frozenset(chemsys.split("-")), []).append(formula)
    return {k: sorted(set(v)) for k, v in out.items()}


def assign_sources(
    formulas: pd.DataFrame,
    thermo_2019: pd.DataFrame,
    missing: dict[frozenset[str], list[str]],
    wang: pd.DataFrame,
    ml_v_ox: pd.Series | None = None,
    ml_error: float = np.nan,
) -> pd.DataFrame:
    """V_ox (and V_red where the source has it) per formula, in the documented order.

    ``formulas``: distinct reduced formula + chemsys. ``thermo_2019``: the
    thermo stage's table. ``wang``: per-formula medians
    (:func:`superionic.screening.esw.wang_by_formula`). ``ml_v_ox``: estimate
    by reduced formula, or None when the model is off; ``ml_error`` its RMSE.
    """
    out = formulas[[C.REDUCED_FORMULA, C.CHEMSYS]].drop_duplicates(C.REDUCED_FORMULA).reset_index(drop=True)
    ground = thermo_2019[thermo_2019[C.GROUND_STATE]].drop_duplicates(C.REDUCED_FORMULA).set_index(C.REDUCED_FORMULA)
    on_hull = out[C.REDUCED_FORMULA].map(ground[C.ON_HULL]).eq(True)
    out[GGA_ON_HULL] = on_hull
    out[GGA_V_OX] = out[C.REDUCED_FORMULA].map(ground[C.V_OX]).where(on_hull)
    out[GGA_V_RED] = out[C.REDUCED_FORMULA].map(ground[C.V_RED]).where(on_hull)
    per_system = {s: missing_in_system(s, missing) for s in out[C.CHEMSYS].unique()}
    out[GGA_MISSING] = [" ".join(per_system[s]) for s in out[C.CHEMSYS]]
    out[GGA_COMPLETE] = on_hull & (out[GGA_MISSING] == "")
    wang_by = wang.set_index(C.REDUCED_FORMULA)
    out[WANG_V_OX] = out[C.REDUCED_FORMULA].map(wang_by[WANG_OX_MEDIAN])
    out[WANG_V_RED] = out[C.REDUCED_FORMULA].map(wang_by[WANG_RED_MEDIAN])
    out[ML_V_OX] = out[C.REDUCED_FORMULA].map(ml_v_ox) if ml_v_ox is not None else np.nan

    gga = out[GGA_COMPLETE].to_numpy(dtype=bool)
    has_wang = out[WANG_V_OX].notna().to_numpy()
    has_ml = out[ML_V_OX].notna().to_numpy()
    choice = np.select([gga, has_wang, has_ml], [0, 1, 2], default=3)
    out[C.V_OX_SOURCE] = np.asarray(SOURCES, dtype=object)[choice]
    out[C.V_OX] = np.choose(
        choice, [out[GGA_V_OX].to_numpy(float), out[WANG_V_OX].to_numpy(float), out[ML_V_OX].to_numpy(float),
                 np.full(len(out), np.nan)]
    )
    out[C.V_RED] = np.choose(
        choice, [out[GGA_V_RED].to_numpy(float), out[WANG_V_RED].to_numpy(float), np.full(len(out), np.nan),
                 np.full(len(out), np.nan)]
    )
    out[V_OX_ERROR] = np.where(choice == 2, ml_error, np.nan)
    return out[VOLTAGE_COLUMNS].sort_values(C.REDUCED_FORMULA, ignore_index=True)


def gga_vs_wang(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Where source 1 applies and Wang also has the formula: how well do they agree?"""
    both = table[table[GGA_COMPLETE] & table[WANG_V_OX].notna()].copy()
    both[C.DIFF_V_OX] = both[GGA_V_OX] - both[WANG_V_OX]
    stats = {
        "v_ox": window_stats(both[GGA_V_OX], both[WANG_V_OX]),
        "v_red": window_stats(both[GGA_V_RED], both[WANG_V_RED]),
    }
    cols = [C.REDUCED_FORMULA, C.CHEMSYS, GGA_V_OX, WANG_V_OX, C.DIFF_V_OX, GGA_V_RED, WANG_V_RED]
    return both[cols].reset_index(drop=True), stats


# --- the fourth source: an estimate learned from Wang 2024 -----------------------------


def _regressor(model: DictConfig, seed: int):
    from lightgbm import LGBMRegressor

    return LGBMRegressor(
        n_estimators=model.n_estimators, learning_rate=model.learning_rate, num_leaves=model.num_leaves,
        min_child_samples=model.min_child_samples, random_state=seed, n_jobs=1, deterministic=True,
        force_row_wise=True, verbose=-1,
    )


def fit_vox_model(
    X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, model: DictConfig, seed: int
) -> tuple[Any, pd.DataFrame, dict[str, float]]:
    """Fitted regressor, out-of-fold predictions (chemical-system groups) and their error.

    Fixed hyper-parameters from config: nothing is tuned on the folds that
    state the error.
    """
    from sklearn.model_selection import GroupKFold

    n_folds = min(model.cv_folds, len(np.unique(groups)))
    oof = np.full(len(y), np.nan)
    for train, test in GroupKFold(n_splits=n_folds).split(X, y, groups):
        oof[test] = _regressor(model, seed).fit(X.iloc[train], y[train]).predict(X.iloc[test])
    residual = oof - y
    stats = {
        "n": len(y),
        "folds": n_folds,
        "mae_v": float(np.mean(np.abs(residual))),
        "rmse_v": float(np.sqrt(np.mean(residual**2))),
        "r2": float(1 - np.sum(residual**2) / np.sum((y - y.mean()) ** 2)),
        "within_0p5_v": float(np.mean(np.abs(residual) <= 0.5)),
    }
    fitted = _regressor(model, seed).fit(X, y)
    return fitted, pd.DataFrame({"oof_v_ox": oof, "wang_v_ox": y}), stats


@stage("voltage", sections=["data_dir", "screen"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.features.composition import composition_feature_labels, featurize_formulas
    from superionic.screening.esw import wang_by_formula
    from superionic.screening.features import features_for
    from superionic.screening.mpdata import read_formation_energies, read_mp2024_e_hull, read_wang_esw
    from superionic.screening.pool import chemsys_of, parse_formula

    screen = cfg.screen
    pool = pd.read_parquet(screen.pool2024)
    thermo_2019 = pd.read_parquet(screen.thermo)
    formation = read_formation_energies(cfg.data_dir)
    known_2019 = {p[0] for p in formation[C.RAW_COMPOSITION].map(parse_formula) if p is not None}
    materials = read_mp2024_e_hull(cfg.data_dir)
    hull = materials[materials[C.RAW_E_ABOVE_HULL] <= screen.hull_tol]
    parsed = hull[C.RAW_FORMULA_2024].map(parse_formula).dropna()
    hull_2024 = pd.DataFrame(
        {C.REDUCED_FORMULA: [p[0] for p in parsed], C.CHEMSYS: [chemsys_of(p[1]) for p in parsed]}
    ).drop_duplicates()
    missing = missing_competitors(hull_2024, known_2019)
    wang, n_unparsed = wang_by_formula(read_wang_esw(cfg.data_dir))
    formulas = pool[[C.REDUCED_FORMULA, C.CHEMSYS]].drop_duplicates(C.REDUCED_FORMULA)

    ml_v_ox, ml_stats, outputs = None, None, []
    if screen.vox_model.enabled:
        labels = composition_feature_labels()
        wang_X = featurize_formulas(wang[C.REDUCED_FORMULA].tolist())
        usable = np.isfinite(wang_X.to_numpy()).any(axis=1)
        groups = np.array([chemsys_of(parse_formula(f)[1]) for f in wang[C.REDUCED_FORMULA]])
        y = wang[WANG_OX_MEDIAN].to_numpy(dtype=float)
        model, oof, ml_stats = fit_vox_model(
            wang_X[usable].reset_index(drop=True), y[usable], groups[usable], screen.vox_model, cfg.seed
        )
        pool_X = features_for(formulas, pd.read_parquet(screen.pool_features), labels)
        predictable = np.isfinite(pool_X.to_numpy()).any(axis=1)
        ml_v_ox = pd.Series(model.predict(pool_X[predictable]), index=formulas[C.REDUCED_FORMULA][predictable])
        outputs.append(write_csv(oof, report_path(screen.report_dir, ML_CV_FILE)))

    table = assign_sources(
        formulas, thermo_2019, missing, wang, ml_v_ox, ml_stats["rmse_v"] if ml_stats else np.nan
    )
    agreement, agreement_stats = gga_vs_wang(table)
    counts = table[C.V_OX_SOURCE].value_counts()
    metrics = {
        "n_formulas": len(table),
        "sources": {s: int(counts.get(s, 0)) for s in SOURCES},
        "n_gga_on_hull": int(table[GGA_ON_HULL].sum()),
        "n_gga_complete": int(table[GGA_COMPLETE].sum()),
        "n_wang_available": int(table[WANG_V_OX].notna().sum()),
        "n_2024_hull_compositions_without_2019_energy": int(sum(len(v) for v in missing.values())),
        "wang_unparsed_rows": n_unparsed,
        "gga_vs_wang": agreement_stats,
        "ml_model": ml_stats or {},
    }
    write_parquet(table, screen.voltage)
    outputs += [
        write_csv(agreement, report_path(screen.report_dir, AGREEMENT_FILE)),
        write_json(metrics, report_path(screen.report_dir, METRICS_FILE), decimals=TABLE_DECIMALS),
    ]
    log.info("voltage: %s", ", ".join(f"{k} {v}" for k, v in metrics["sources"].items()))
    return StageResult(metrics, outputs)
