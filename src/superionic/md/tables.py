"""Analyse a set of trajectories into the two tables both MD stages write.

``runs`` table: one row per trajectory (diffusivity, He et al. error,
conductivity, exclusion reasons). ``arrhenius`` table: one row per material
(activation energy and room-temperature conductivity with intervals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic.md.analysis import (
    ArrheniusFit,
    RunResult,
    Trajectory,
    analyze_run,
    fit_material,
    flag_cell_mismatch,
    with_reason,
)

# runs table
COL_MATERIAL = "material"
COL_FORMULA = "formula"
COL_T = "temperature_K"
COL_SOURCE = "source"
COL_N_SITES = "n_sites"
COL_N_MOBILE = "n_mobile"
COL_N_FRAMES = "n_frames"
COL_DURATION = "duration_ps"
COL_D = "D_cm2_s"
COL_N_EFF = "n_eff_hops"
COL_RSD = "D_rel_err"
COL_LOG10_D = "log10_D"
COL_LOG10_D_ERR = "log10_D_err"
COL_SIGMA_T = "sigma_T_S_cm"
COL_MSD_END = "msd_fit_end_A2"
COL_FW_MSD = "framework_msd_fit_end_A2"
COL_FW_SPECIES = "framework_species"
COL_FW_RATIO = "framework_D_ratio"
COL_USED = "used_in_fit"
COL_REASONS = "excluded_because"

# arrhenius table
COL_STATUS = "status"
COL_N_POINTS = "n_points"
COL_T_USED = "temperatures_used_K"
COL_T_DROPPED = "temperatures_dropped_non_arrhenius_K"
COL_EA = "Ea_eV"
COL_EA_ERR = "Ea_err_eV"
COL_EA_LO = "Ea_ci_low_eV"
COL_EA_HI = "Ea_ci_high_eV"
COL_LOG10_SIGMA = "log10_sigma_target_S_cm"
COL_LOG10_SIGMA_ERR = "log10_sigma_target_err"
COL_LOG10_SIGMA_LO = "log10_sigma_target_ci_low"
COL_LOG10_SIGMA_HI = "log10_sigma_target_ci_high"
COL_LOG10_D_TARGET = "log10_D_target_cm2_s"
COL_CHI2_RED = "chi2_red"
COL_P = "p_value"

FLOAT_FORMAT = "%.6g"


def analyze_trajectories(
    trajectories: Sequence[Trajectory],
    analysis: DictConfig,
    min_duration_ps: float,
    extra_reasons: Mapping[str, str] | None = None,
) -> tuple[list[RunResult], list[ArrheniusFit]]:
    """Per-run analysis, cell-consistency flag, then one Arrhenius fit per material.

    ``extra_reasons`` (run source -> reason) excludes runs for reasons found
    outside the trajectory analysis (e.g. an unstable MD run).
    """
    results = [
        analyze_run(
            t,
            mobile_specie=analysis.mobile_specie,
            fit_start_fraction=analysis.fit_start_fraction,
            fit_end_fraction=analysis.fit_end_fraction,
            site_distance=analysis.site_distance,
            max_relative_error=analysis.max_relative_error,
            min_mobile_ions=analysis.min_mobile_ions,
            min_frames=analysis.min_frames,
            min_duration_ps=min_duration_ps,
            framework_msd_floor=analysis.framework_msd_floor,
            framework_ratio_max=analysis.framework_ratio_max,
            drift_correction=bool(analysis.drift_correction),
        )
        for t in trajectories
    ]
    results = flag_cell_mismatch(results)
    extra = dict(extra_reasons or {})
    results = [with_reason(r, extra[r.source]) if r.source in extra else r for r in results]
    traj_by_key = {(t.material, t.temperature, t.source): t for t in trajectories}
    fits: list[ArrheniusFit] = []
    final: list[RunResult] = []
    for material in sorted({r.material for r in results}):
        runs = sorted((r for r in results if r.material == material), key=lambda r: r.temperature)
        # carrier density from the material's majority cell (a flagged cell never sets it)
        ref = next((r for r in runs if r.usable), runs[0])
        volume = traj_by_key[(ref.material, ref.temperature, ref.source)].volume
        fit, runs = fit_material(
            runs,
            min_points=analysis.min_points,
            p_min=analysis.arrhenius_p_min,
            target_temperature=analysis.target_temperature,
            confidence=analysis.confidence,
            n_mobile=ref.n_mobile,
            volume_a3=volume,
        )
        fits.append(fit)
        final.extend(runs)
    return final, fits


def runs_frame(results: Sequence[RunResult]) -> pd.DataFrame:
    rows = [
        {
            COL_MATERIAL: r.material,
            COL_FORMULA: r.formula,
            COL_T: r.temperature,
            COL_SOURCE: r.source,
            COL_N_SITES: r.n_sites,
            COL_N_MOBILE: r.n_mobile,
            COL_N_FRAMES: r.n_frames,
            COL_DURATION: r.duration_ps,
            COL_D: r.diffusivity,
            COL_N_EFF: r.n_eff,
            COL_RSD: r.rel_error,
            COL_LOG10_D: r.log10_d,
            COL_LOG10_D_ERR: r.log10_d_err,
            COL_SIGMA_T: r.conductivity,
            COL_MSD_END: r.msd_fit_end,
            COL_FW_MSD: r.framework_msd_fit_end,
            COL_FW_SPECIES: r.framework_species,
            COL_FW_RATIO: r.framework_ratio,
            COL_USED: r.usable,
            COL_REASONS: ";".join(r.reasons),
        }
        for r in results
    ]
    return pd.DataFrame(rows).sort_values([COL_MATERIAL, COL_T]).reset_index(drop=True)


def fits_frame(fits: Sequence[ArrheniusFit]) -> pd.DataFrame:
    rows = [
        {
            COL_MATERIAL: f.material,
            COL_FORMULA: f.formula,
            COL_STATUS: f.status,
            COL_N_POINTS: f.n_points,
            COL_T_USED: " ".join(f"{t:g}" for t in f.temperatures),
            COL_T_DROPPED: " ".join(f"{t:g}" for t in f.dropped_temperatures),
            COL_EA: f.ea,
            COL_EA_ERR: f.ea_err,
            COL_EA_LO: f.ea_ci[0],
            COL_EA_HI: f.ea_ci[1],
            COL_LOG10_SIGMA: f.log10_sigma_target,
            COL_LOG10_SIGMA_ERR: f.log10_sigma_target_err,
            COL_LOG10_SIGMA_LO: f.log10_sigma_target_ci[0],
            COL_LOG10_SIGMA_HI: f.log10_sigma_target_ci[1],
            COL_LOG10_D_TARGET: f.log10_d_target,
            COL_CHI2_RED: f.chi2_red,
            COL_P: f.p_value,
        }
        for f in fits
    ]
    return pd.DataFrame(rows).sort_values(COL_MATERIAL).reset_index(drop=True)


TEXT_COLUMNS = (COL_MATERIAL, COL_FORMULA, COL_SOURCE, COL_FW_SPECIES, COL_REASONS, COL_STATUS,
                COL_T_USED, COL_T_DROPPED)  # fmt: skip


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_csv` (empty text cells stay empty strings)."""
    df = pd.read_csv(path)
    for col in TEXT_COLUMNS:
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    if COL_USED in df.columns:
        df[COL_USED] = df[COL_USED].astype(bool)
    return df


def summary_metrics(runs: pd.DataFrame, fits: pd.DataFrame) -> dict:
    """Counts and per-material numbers for the metrics JSON (finite values only)."""
    reasons: dict[str, int] = {}
    for text in runs[COL_REASONS]:
        for reason in filter(None, str(text).split(";")):
            reasons[reason] = reasons.get(reason, 0) + 1
    per_material = {}
    for row in fits.itertuples(index=False):
        entry = {"n_points": int(getattr(row, COL_N_POINTS))}
        for key, col in (("Ea_eV", COL_EA), ("Ea_err_eV", COL_EA_ERR),
                         ("log10_sigma_300K", COL_LOG10_SIGMA),
                         ("log10_sigma_300K_err", COL_LOG10_SIGMA_ERR)):  # fmt: skip
            value = float(getattr(row, col))
            if np.isfinite(value):
                entry[key] = round(value, 6)
        per_material[getattr(row, COL_MATERIAL)] = entry
    return {
        "n_runs": int(len(runs)),
        "n_runs_used": int(runs[COL_USED].sum()),
        "n_runs_excluded": int((~runs[COL_USED]).sum()),
        "excluded_by_reason": dict(sorted(reasons.items())),
        "n_materials": int(len(fits)),
        "n_materials_fitted": int((fits[COL_STATUS] == "ok").sum()),
        "materials": per_material,
    }
