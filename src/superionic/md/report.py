"""Stage ``md-report``: AIMD vs MLIP comparison, ``reports/md.md`` and its figures.

Every number is read from the AIMD and MLIP stage outputs; nothing is typed in.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic import files
from superionic.io import write_csv, write_json, write_text
from superionic.md import aimd, mlip, plots
from superionic.md import tables as T
from superionic.md.runlength import ArrheniusPoints, FitPoints, factor_for_rsd, length_factor_for_ea
from superionic.reports.render import link
from superionic.reports.render import render as render_template
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

COMPARISON_CSV = f"{files.MD_REPORT_DIR}/comparison.csv"
PAIRS_CSV = f"{files.MD_REPORT_DIR}/comparison_same_temperature.csv"
METRICS_JSON = files.MD_COMPARISON_METRICS
FIG_OVERLAY = f"{files.MD_REPORT_DIR}/arrhenius_aimd_vs_mlip.png"
FIG_PARITY_EA = f"{files.MD_REPORT_DIR}/parity_ea.png"
FIG_PARITY_SIGMA = f"{files.MD_REPORT_DIR}/parity_log10_sigma_300K.png"
FIG_PARITY_D = f"{files.MD_REPORT_DIR}/parity_log10_D_same_T.png"
# the resolved config `make md-validation` ran from, beside its outputs
VALIDATION_PARAMS = "params.yaml"
# two-sided 95 % normal quantile for the validation intervals
Z95 = 1.959964

# comparison table columns
C_EA_AIMD, C_EA_AIMD_ERR = "Ea_aimd_eV", "Ea_aimd_err_eV"
C_EA_MLIP, C_EA_MLIP_ERR = "Ea_mlip_eV", "Ea_mlip_err_eV"
C_DEA, C_DEA_ERR = "dEa_mlip_minus_aimd_eV", "dEa_err_eV"
# the temperatures each fit used: the MLIP's may lie below the AIMD's (its framework melts sooner)
C_T_AIMD, C_T_MLIP = "aimd_temperatures_K", "mlip_temperatures_K"
C_S_AIMD, C_S_AIMD_ERR = "log10_sigma_aimd", "log10_sigma_aimd_err"
C_S_MLIP, C_S_MLIP_ERR = "log10_sigma_mlip", "log10_sigma_mlip_err"
C_LD_AIMD, C_LD_AIMD_ERR = "log10_D_aimd", "log10_D_aimd_err"
C_LD_MLIP, C_LD_MLIP_ERR = "log10_D_mlip", "log10_D_mlip_err"


def compare_fits(aimd_fits: pd.DataFrame, mlip_fits: pd.DataFrame) -> pd.DataFrame:
    """Per material simulated by the MLIP: both Arrhenius results side by side."""
    a = aimd_fits.set_index(T.COL_MATERIAL)
    rows = []
    for m in mlip_fits.itertuples(index=False):
        material = getattr(m, T.COL_MATERIAL)
        row = {
            T.COL_MATERIAL: material,
            T.COL_FORMULA: getattr(m, T.COL_FORMULA),
            "aimd_status": a.loc[material, T.COL_STATUS] if material in a.index else "no_aimd",
            "mlip_status": getattr(m, T.COL_STATUS),
            C_T_AIMD: a.loc[material, T.COL_T_USED] if material in a.index else "",
            C_T_MLIP: getattr(m, T.COL_T_USED),
            C_EA_AIMD: a.loc[material, T.COL_EA] if material in a.index else math.nan,
            C_EA_AIMD_ERR: a.loc[material, T.COL_EA_ERR] if material in a.index else math.nan,
            C_EA_MLIP: getattr(m, T.COL_EA),
            C_EA_MLIP_ERR: getattr(m, T.COL_EA_ERR),
            C_S_AIMD: a.loc[material, T.COL_LOG10_SIGMA] if material in a.index else math.nan,
            C_S_AIMD_ERR: a.loc[material, T.COL_LOG10_SIGMA_ERR] if material in a.index else math.nan,
            C_S_MLIP: getattr(m, T.COL_LOG10_SIGMA),
            C_S_MLIP_ERR: getattr(m, T.COL_LOG10_SIGMA_ERR),
        }
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df[C_DEA] = df[C_EA_MLIP] - df[C_EA_AIMD]
    df[C_DEA_ERR] = np.hypot(df[C_EA_MLIP_ERR], df[C_EA_AIMD_ERR])
    return df.sort_values(T.COL_MATERIAL).reset_index(drop=True)


def same_temperature_pairs(aimd_runs: pd.DataFrame, mlip_runs: pd.DataFrame) -> pd.DataFrame:
    """log10 D of both methods at the same (material, temperature), both runs usable.

    Needs no extrapolation, so it is the most direct comparison a short MLIP
    run allows.
    """
    keys = [T.COL_MATERIAL, T.COL_T]
    cols = [*keys, T.COL_LOG10_D, T.COL_LOG10_D_ERR]
    a = aimd_runs[aimd_runs[T.COL_USED]][cols + [T.COL_FORMULA]]
    m = mlip_runs[mlip_runs[T.COL_USED]][cols]
    pairs = a.merge(m, on=keys, suffixes=("_aimd", "_mlip"))
    pairs = pairs.rename(columns={
        f"{T.COL_LOG10_D}_aimd": C_LD_AIMD, f"{T.COL_LOG10_D_ERR}_aimd": C_LD_AIMD_ERR,
        f"{T.COL_LOG10_D}_mlip": C_LD_MLIP, f"{T.COL_LOG10_D_ERR}_mlip": C_LD_MLIP_ERR,
    })  # fmt: skip
    pairs["dlog10_D_mlip_minus_aimd"] = pairs[C_LD_MLIP] - pairs[C_LD_AIMD]
    return pairs.sort_values(keys).reset_index(drop=True)


def weighted_mean(values: np.ndarray, errors: np.ndarray) -> tuple[float, float, int, float]:
    """Inverse-variance weighted mean, its standard error, the number of values and the Birge
    ratio sqrt(chi2 / (n - 1)) of the values about the mean (nan if none; 1 for one value).

    The error is widened by the Birge ratio when that exceeds 1: materials that soften by
    different amounts must not give a pooled interval narrower than their own spread.
    """
    ok = np.isfinite(values) & np.isfinite(errors) & (errors > 0)
    if not ok.any():
        return math.nan, math.nan, 0, math.nan
    w = 1.0 / errors[ok] ** 2
    mean = float((w * values[ok]).sum() / w.sum())
    n = int(ok.sum())
    birge = math.sqrt(float((w * (values[ok] - mean) ** 2).sum()) / (n - 1)) if n > 1 else 1.0
    return mean, float(max(1.0, birge) / math.sqrt(w.sum())), n, birge


def comparison_metrics(comp: pd.DataFrame, pairs: pd.DataFrame) -> dict:
    out: dict = {}
    if not comp.empty:
        dea, dea_n = comp[C_DEA].to_numpy(float), comp[C_DEA_ERR].to_numpy(float)
        mean, err, n, birge = weighted_mean(dea, dea_n)
        out["dEa_weighted_mean_eV"], out["dEa_weighted_mean_err_eV"], out["n_materials_both_fits"] = mean, err, n
        out["dEa_birge_ratio"] = birge
        both = np.isfinite(dea)
        out["n_materials_mlip_lower_Ea"] = int((dea[both] < 0).sum())
        if both.any():
            out["dEa_median_eV"] = float(np.median(dea[both]))
            ratio = (comp[C_EA_MLIP] / comp[C_EA_AIMD]).to_numpy(float)[both]
            out["Ea_ratio_mlip_over_aimd_median"] = float(np.median(ratio))
    if not pairs.empty:
        d = pairs["dlog10_D_mlip_minus_aimd"].to_numpy(float)
        e = np.hypot(pairs[C_LD_AIMD_ERR].to_numpy(float), pairs[C_LD_MLIP_ERR].to_numpy(float))
        mean, err, n, birge = weighted_mean(d, e)
        out["dlog10_D_same_T_weighted_mean"], out["dlog10_D_same_T_err"], out["n_same_T_pairs"] = mean, err, n
        out["dlog10_D_same_T_birge_ratio"] = birge
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
            for k, v in sorted(out.items()) if not (isinstance(v, float) and not math.isfinite(v))}  # fmt: skip


# --- report context ------------------------------------------------------------------

TEMPLATE = "md.md.j2"
BARRIER_TEMPLATE = "md_barrier.md.j2"


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records") if not frame.empty else []


def fit_rows(fits: pd.DataFrame, runs: pd.DataFrame) -> list[dict]:
    """One row per material of an Arrhenius table, with how many of its runs the fit used."""
    rows = []
    for f in _records(fits):
        mruns = runs[runs[T.COL_MATERIAL] == f[T.COL_MATERIAL]]
        rows.append({
            "material": f[T.COL_MATERIAL], "formula": f[T.COL_FORMULA],
            "n_used": int(mruns[T.COL_USED].sum()), "n_runs": len(mruns),
            "temperatures_used": f[T.COL_T_USED], "status": f[T.COL_STATUS],
            "ea": f[T.COL_EA], "ea_err": f[T.COL_EA_ERR], "ea_low": f[T.COL_EA_LO], "ea_high": f[T.COL_EA_HI],
            "log10_sigma": f[T.COL_LOG10_SIGMA], "log10_sigma_err": f[T.COL_LOG10_SIGMA_ERR],
            "log10_sigma_low": f[T.COL_LOG10_SIGMA_LO], "log10_sigma_high": f[T.COL_LOG10_SIGMA_HI],
            "chi2_red": f[T.COL_CHI2_RED],
        })  # fmt: skip
    return rows


def run_rows(runs: pd.DataFrame) -> list[dict]:
    """One row per trajectory of a runs table; ``excluded_because`` as a list of reasons."""
    rows = []
    for r in _records(runs):
        reasons = r[T.COL_REASONS]
        reasons = [] if (isinstance(reasons, float) or not reasons) else str(reasons).split(";")
        rows.append({
            "material": r[T.COL_MATERIAL], "temperature": r[T.COL_T], "n_mobile": r[T.COL_N_MOBILE],
            "duration_ps": r[T.COL_DURATION], "D": r[T.COL_D], "n_eff": r[T.COL_N_EFF], "rsd": r[T.COL_RSD],
            "framework_msd": r[T.COL_FW_MSD], "framework_species": r[T.COL_FW_SPECIES],
            "framework_ratio": r[T.COL_FW_RATIO], "excluded_because": reasons,
        })  # fmt: skip
    return rows


def barrier(m: dict) -> dict:
    """The comparison metrics the barrier paragraph quotes, and its verdict at 2 sigma: ``lower`` (the
    MLIP underestimates the barrier), ``higher``, ``unresolved``, or None without a material fitted by both."""
    n = m.get("n_materials_both_fits", 0)
    verdict = None
    if n:
        mean, err = m["dEa_weighted_mean_eV"], m["dEa_weighted_mean_err_eV"]
        verdict = "lower" if mean + 2 * err < 0 else "higher" if mean - 2 * err > 0 else "unresolved"
    return {
        "n_materials": n, "verdict": verdict,
        "dea": m.get("dEa_weighted_mean_eV"), "dea_err": m.get("dEa_weighted_mean_err_eV"),
        "n_lower": m.get("n_materials_mlip_lower_Ea"),
        "ratio_median": m.get("Ea_ratio_mlip_over_aimd_median", math.nan),
        "n_pairs": m.get("n_same_T_pairs"),
        "dlog10_d": m.get("dlog10_D_same_T_weighted_mean"), "dlog10_d_err": m.get("dlog10_D_same_T_err"),
    }  # fmt: skip


def barrier_statement(m: dict, label: str) -> str:
    """The literature expectation (softened PES of universal potentials trained
    mostly on near-equilibrium data -> lower barriers, higher D) against what
    this run measured."""
    return render_template(BARRIER_TEMPLATE, {"barrier": barrier(m), "label": label}).rstrip("\n")


def plan_context(cfg: DictConfig, aimd_runs: pd.DataFrame, aimd_fits: pd.DataFrame) -> dict:
    """The validation run-length plan's rows and totals."""
    plan = validation_plan(cfg, aimd_runs, aimd_fits)
    out = {"rows": _records(plan),
           "mlip_ps": float(cfg.md.mlip.steps) * float(cfg.md.mlip.timestep_fs) / 1000}
    if not plan.empty:
        longest = plan.loc[plan["ps_per_replica"].idxmax()]
        per_material = plan.groupby([T.COL_MATERIAL, T.COL_FORMULA], sort=False)[["ps_per_replica", "atom_steps"]].sum()
        out |= {"total_ps": plan["ps_per_replica"].sum(), "total_atom_steps": plan["atom_steps"].sum(),
                "longest": {"formula": longest["formula"], "temperature_K": longest["temperature_K"],
                            "ps_per_replica": longest["ps_per_replica"]},
                "by_material": [{"formula": formula, "ps": row["ps_per_replica"], "atom_steps": row["atom_steps"]}
                                for (_, formula), row in per_material.sort_values("ps_per_replica").iterrows()]}  # fmt: skip
    return out


def interval95(value: float, err: float) -> dict:
    """``value`` with its 95 % interval, and which side of zero the interval lies on."""
    lo, hi = value - Z95 * err, value + Z95 * err
    side = "lower" if hi < 0 else "higher" if lo > 0 else "unresolved"
    return {"value": value, "low": lo, "high": hi, "half_width": Z95 * err, "side": side}


def validation_context(md: DictConfig, plan: pd.DataFrame) -> dict | None:
    """What the committed ``make md-validation`` outputs (``md.validation_dir``) say.

    None when they are absent, or when this report is that run's own.
    ``plan`` (:func:`validation_plan` with run settings) names the protocol's
    runs that were not part of it and their cost at its measured throughput.
    """
    from omegaconf import OmegaConf

    vdir = Path(md.validation_dir)
    if vdir.resolve() == Path(md.report_dir).resolve() or not (vdir / COMPARISON_CSV).exists():
        return None
    comp = T.read_csv(vdir / COMPARISON_CSV)
    pairs = T.read_csv(vdir / PAIRS_CSV)
    metrics = json.loads((vdir / METRICS_JSON).read_text(encoding="utf-8"))
    params = OmegaConf.load(vdir / VALIDATION_PARAMS)
    timing_path = vdir / mlip.TIMING_JSON
    timing = json.loads(timing_path.read_text(encoding="utf-8")) if timing_path.exists() else {}
    mlip_runs = T.read_csv(vdir / mlip.RUNS_CSV)
    ran = set(zip(mlip_runs[T.COL_MATERIAL], mlip_runs[T.COL_T].astype(float), strict=True))
    atom_steps = sum(r["steps"] * r["n_atoms"] for r in timing.get("runs", []))
    wall_s = timing.get("cumulative_wall_s", timing.get("total_wall_s"))
    rate = atom_steps / wall_s if wall_s else math.nan
    left = (plan[[(m, float(t)) not in ran for m, t in zip(plan[T.COL_MATERIAL], plan[T.COL_T], strict=True)]]
            if not plan.empty else plan)  # fmt: skip
    left_atom_steps = float(left["atom_steps"].sum()) if not left.empty else 0.0
    mlip_fits = T.read_csv(vdir / mlip.FITS_CSV)
    resolution, target_rsd = float(md.validation_resolution_ev), float(md.validation_rsd)
    points = fit_points(mlip_runs, mlip_fits, comp)
    # where MLIP runs alone cannot do it: the factor with the AIMD runs growing too
    both_points = (fit_points(mlip_runs, mlip_fits, comp, T.read_csv(vdir / aimd.RUNS_CSV), T.read_csv(vdir / aimd.FITS_CSV))
                   if (vdir / aimd.RUNS_CSV).exists() and (vdir / aimd.FITS_CSV).exists() else {})  # fmt: skip

    def with_aimd(materials: list[str], factor: float) -> float | None:
        if math.isfinite(factor) or not materials or not all(m in both_points for m in materials):
            return None
        return length_factor_for_ea([both_points[m] for m in materials], target_half_width=resolution, z=Z95)

    rows = []
    for r in _records(comp):
        both = math.isfinite(r[C_DEA]) and math.isfinite(r[C_DEA_ERR])
        material = r[T.COL_MATERIAL]
        factor = (length_factor_for_ea([points[material]], target_half_width=resolution, z=Z95)
                  if material in points else math.nan)  # fmt: skip
        rows.append({"material": material, "formula": r[T.COL_FORMULA],
                     "ea_aimd": interval95(r[C_EA_AIMD], r[C_EA_AIMD_ERR]),
                     "ea_mlip": interval95(r[C_EA_MLIP], r[C_EA_MLIP_ERR]) if math.isfinite(r[C_EA_MLIP]) else None,
                     "dea": interval95(r[C_DEA], r[C_DEA_ERR]) if both else None,
                     "t_aimd": _temperatures(r.get(C_T_AIMD)), "t_mlip": _temperatures(r.get(C_T_MLIP)),
                     "length_factor": factor, "mlip_status": r["mlip_status"],
                     "length_factor_with_aimd": with_aimd([material] if material in points else [], factor)})  # fmt: skip
    pooled = (interval95(metrics["dEa_weighted_mean_eV"], metrics["dEa_weighted_mean_err_eV"])
              if metrics.get("n_materials_both_fits") else None)  # fmt: skip
    both = comp[np.isfinite(comp[C_DEA].to_numpy(float)) & np.isfinite(comp[C_DEA_ERR].to_numpy(float))]
    # how much the pooled figure rests on any one material
    without = []
    if len(both) > 1:
        for material, formula in zip(both[T.COL_MATERIAL], both[T.COL_FORMULA], strict=True):
            rest = both[both[T.COL_MATERIAL] != material]
            mean, err, _, _ = weighted_mean(rest[C_DEA].to_numpy(float), rest[C_DEA_ERR].to_numpy(float))
            without.append({"material": material, "formula": formula, **interval95(mean, err)})
    pooled_factor = (length_factor_for_ea(list(points.values()), target_half_width=resolution, z=Z95)
                     if points else math.nan)  # fmt: skip
    timestep_fs = float(params.md.mlip.timestep_fs)
    fitted_runs = mlip_runs[mlip_runs[T.COL_USED].astype(bool) & mlip_runs[T.COL_MATERIAL].isin(points)]
    fitted_atom_steps = float((fitted_runs[T.COL_DURATION] * 1000.0 / timestep_fs * fitted_runs[T.COL_N_SITES]).sum())
    more_atom_steps = fitted_atom_steps * (pooled_factor - 1) if math.isfinite(pooled_factor) else math.inf
    same_t = (interval95(metrics["dlog10_D_same_T_weighted_mean"], metrics["dlog10_D_same_T_err"])
              if metrics.get("n_same_T_pairs") else None)  # fmt: skip
    return {
        "dir": str(vdir), "link": link(str(vdir), md.report), "runs_only": list(params.md.mlip.runs_only), "n_runs": len(mlip_runs),
        "n_used": int(mlip_runs[T.COL_USED].sum()), "rows": rows, "pooled": pooled,
        "excluded": {reason: [f"{x['material']} {x['temperature']:g} K" for x in run_rows(mlip_runs)
                              if reason in x["excluded_because"]]
                     for reason in sorted({r for x in run_rows(mlip_runs) for r in x["excluded_because"]})},
        "n_pooled": metrics.get("n_materials_both_fits", 0), "same_t": same_t, "without": without,
        "zero_barrier": [r["formula"] for r in rows if r["ea_mlip"] and r["dea"] and r["ea_mlip"]["side"] != "higher"],
        "birge": metrics.get("dEa_birge_ratio", math.nan), "birge_p": _common_value_p(metrics),
        "n_pairs": metrics.get("n_same_T_pairs", 0),
        "pairs": [{"material": p[T.COL_MATERIAL], "temperature": p[T.COL_T], "dlog10_d": p["dlog10_D_mlip_minus_aimd"],
                   "err": math.hypot(p[C_LD_AIMD_ERR], p[C_LD_MLIP_ERR])} for p in _records(pairs)],  # fmt: skip
        "wall_h": (wall_s or math.nan) / 3600, "n_reused": timing.get("reused_runs", 0), "n_resumed": timing.get("resumed_runs", 0),
        "n_extended": timing.get("extended_runs", 0), "n_redrawn": timing.get("redrawn_runs", 0), "atom_steps": atom_steps, "rate": rate,
        "device": timing.get("device", "?"), "n_jobs": timing.get("n_jobs", "?"), "threads": timing.get("threads", "?"),
        "left": [{"material": m, "formula": g[T.COL_FORMULA].iloc[0], "temperatures": sorted(g[T.COL_T].astype(float))}
                 for m, g in left.groupby(T.COL_MATERIAL, sort=True)] if not left.empty else [],  # fmt: skip
        "left_atom_steps": left_atom_steps,
        "left_hours": left_atom_steps / rate / 3600 if rate and math.isfinite(rate) else math.nan,
        # fitted runs short of the protocol's RSD(D) target, and how much longer each must be
        "above_rsd": [{"formula": r[T.COL_FORMULA], "temperature": float(r[T.COL_T]), "rsd": float(r[T.COL_RSD]),
                       "factor": factor_for_rsd(float(r[T.COL_RSD]), target_rsd)}
                      for r in _records(mlip_runs) if bool(r[T.COL_USED]) and float(r[T.COL_RSD]) > target_rsd],  # fmt: skip
        "target_rsd": target_rsd,
        "resolution": resolution, "pooled_factor": pooled_factor, "more_atom_steps": more_atom_steps,
        "pooled_factor_with_aimd": with_aimd(list(points), pooled_factor),
        "more_hours": more_atom_steps / rate / 3600 if rate and math.isfinite(rate) else math.nan,
    }


def _common_value_p(metrics: dict) -> float:
    """p-value of the materials' ΔEa scatter if all shared one ΔEa (chi2 with n - 1 dof)."""
    from scipy.stats import chi2

    n, birge = metrics.get("n_materials_both_fits", 0), metrics.get("dEa_birge_ratio", math.nan)
    return float(chi2.sf(birge**2 * (n - 1), n - 1)) if n > 1 and math.isfinite(birge) else math.nan


def _temperatures(value) -> str:
    """A fit's temperatures as stored ("800 1100"), '' when it used none (NaN read back)."""
    return value if isinstance(value, str) else ""


def arrhenius_points(runs: pd.DataFrame, fits: pd.DataFrame, material: str) -> ArrheniusPoints | None:
    """A material's fit as :mod:`~superionic.md.runlength` lengthens it: its used runs' temperatures
    and RSD(D), and its chi^2/dof; None when fewer than 2 of its runs are among these outputs."""
    used = runs[(runs[T.COL_MATERIAL] == material) & runs[T.COL_USED].astype(bool)]
    if len(used) < 2 or material not in set(fits[T.COL_MATERIAL]):
        return None
    chi2 = float(fits.set_index(T.COL_MATERIAL).loc[material, T.COL_CHI2_RED])
    return ArrheniusPoints(tuple(used[T.COL_T].astype(float)), tuple(used[T.COL_RSD].astype(float)),
                           max(1.0, chi2) if math.isfinite(chi2) else 1.0)  # fmt: skip


def fit_points(mlip_runs: pd.DataFrame, mlip_fits: pd.DataFrame, comp: pd.DataFrame,
               aimd_runs: pd.DataFrame | None = None, aimd_fits: pd.DataFrame | None = None) -> dict[str, FitPoints]:  # fmt: skip
    """Per material with an Arrhenius fit in both methods: the MLIP fit's points and the AIMD
    fit's Ea error, what :func:`~superionic.md.runlength.length_factor_for_ea` extends; given
    the AIMD runs and fits, their points too, so that the AIMD runs grow with the MLIP's."""
    out = {}
    for r in _records(comp):
        material = r[T.COL_MATERIAL]
        if not (math.isfinite(r[C_DEA]) and math.isfinite(r[C_EA_AIMD_ERR])):
            continue
        points = arrhenius_points(mlip_runs, mlip_fits, material)
        if points is None:  # the runs behind the fit are not among these outputs: nothing to lengthen
            continue
        reference = arrhenius_points(aimd_runs, aimd_fits, material) if aimd_runs is not None else None
        if aimd_runs is not None and reference is None:
            continue
        out[material] = FitPoints(points.temperatures, points.rel_errors, points.inflation,
                                  float(r[C_EA_AIMD_ERR]), reference)  # fmt: skip
    return out


def context(
    cfg: DictConfig,
    aimd_runs: pd.DataFrame,
    aimd_fits: pd.DataFrame,
    mlip_runs: pd.DataFrame,
    mlip_fits: pd.DataFrame,
    mlip_metrics: dict,
    timing: dict,
    comp: pd.DataFrame,
    pairs: pd.DataFrame,
    cmp_metrics: dict,
) -> dict:
    """Everything md.md.j2 shows, as plain data from the stage outputs and the comparison (no formatting)."""
    md, a, m = cfg.md, cfg.md.analysis, cfg.md.mlip
    runs = [{"material": material, "temperature": temperature, "ps": steps * m.timestep_fs / 1000}
            for material, temperature, steps in mlip.run_list(m) if material is not None]
    # the caveat is about the shortest run made, whichever way the runs are configured
    production_ps = min((r["ps"] for r in runs), default=m.steps * m.timestep_fs / 1000)
    return {
        "cfg": cfg,
        "min_hops": (3.43 / (a.max_relative_error - 0.04)) ** 2,
        "min_points": max(a.min_points, 2),
        "n_aimd_fitted": int((aimd_fits[T.COL_STATUS] == "ok").sum()),
        "aimd_fits": fit_rows(aimd_fits, aimd_runs),
        "aimd_runs": run_rows(aimd_runs),
        "mlip_fits": fit_rows(mlip_fits, mlip_runs),
        "mlip_runs": run_rows(mlip_runs),
        "label": mlip_metrics.get("label", ""),
        "notes": list(mlip_metrics.get("notes", [])),
        "timing": {"device": timing.get("device", "?"), "n_jobs": timing.get("n_jobs", 1),
                   "threads": timing.get("threads", "?")},
        "timing_file": f"{md.report_dir}/{mlip.TIMING_JSON}",
        "production": {
            "runs": runs,
            "ps": production_ps,
            "shorter_than_aimd": production_ps < md.aimd.min_duration_ps,
        },  # fmt: skip
        "comparison": [{
            "material": r[T.COL_MATERIAL], "formula": r[T.COL_FORMULA],
            "ea_aimd": r[C_EA_AIMD], "ea_aimd_err": r[C_EA_AIMD_ERR], "ea_mlip": r[C_EA_MLIP],
            "ea_mlip_err": r[C_EA_MLIP_ERR], "dea": r[C_DEA], "dea_err": r[C_DEA_ERR],
            "log10_sigma_aimd": r[C_S_AIMD], "log10_sigma_aimd_err": r[C_S_AIMD_ERR],
            "log10_sigma_mlip": r[C_S_MLIP], "log10_sigma_mlip_err": r[C_S_MLIP_ERR],
        } for r in _records(comp)],  # fmt: skip
        "pairs": [{
            "material": p[T.COL_MATERIAL], "temperature": p[T.COL_T],
            "log10_d_aimd": p[C_LD_AIMD], "log10_d_aimd_err": p[C_LD_AIMD_ERR],
            "log10_d_mlip": p[C_LD_MLIP], "log10_d_mlip_err": p[C_LD_MLIP_ERR],
            "dlog10_d": p["dlog10_D_mlip_minus_aimd"],
        } for p in _records(pairs)],  # fmt: skip
        "barrier": barrier(cmp_metrics),
        "plan": plan_context(cfg, aimd_runs, aimd_fits),
        "validation": validation_context(md, validation_plan(cfg, aimd_runs, aimd_fits, with_run_settings=True)),
        # figure links relative to the report's own folder
        "figures": {"dir": link(md.report_dir, md.report),
                    "aimd": aimd.FIGURE, "mlip": mlip.FIGURE, "overlay": FIG_OVERLAY,
                    "parity_ea": FIG_PARITY_EA, "parity_sigma": FIG_PARITY_SIGMA,
                    "parity_d": FIG_PARITY_D},  # fmt: skip
    }


def render(cfg: DictConfig, *tables) -> str:
    """reports/md.md from the stage outputs and the comparison (the arguments of :func:`context`)."""
    return render_template(TEMPLATE, context(cfg, *tables))


def validation_plan(cfg: DictConfig, aimd_runs: pd.DataFrame, aimd_fits: pd.DataFrame, *,
                    with_run_settings: bool = False, atom_steps_per_s: float | None = None,
                    n_cores: int = 1) -> pd.DataFrame:  # fmt: skip
    """Production length for RSD(D) <= ``md.validation_rsd`` per trustworthy AIMD material at each
    of ``md.validation_temperatures``, at the AIMD fit's diffusivity there (an upper bound for a
    softer potential).

    Bare lengths by default (the report); ``with_run_settings`` adds the config's
    equilibration, minimum duration and step rounding, i.e. what ``md=validation`` runs.
    """
    from superionic.md.runlength import arrhenius_targets, estimate_run_lengths

    a, m = cfg.md.analysis, cfg.md.mlip
    targets = arrhenius_targets(aimd_runs, aimd_fits, [float(t) for t in cfg.md.validation_temperatures],
                                float(a.target_temperature))  # fmt: skip
    extra = ({"equilibration_steps": int(m.equilibration_steps), "min_duration_ps": float(m.min_duration_ps),
              "round_steps": 500} if with_run_settings else
             {"equilibration_steps": 0, "min_duration_ps": 0.0, "round_steps": 1})  # fmt: skip
    return estimate_run_lengths(targets, target_rsd=float(cfg.md.validation_rsd),
                                site_distance=float(a.site_distance), timestep_fs=float(m.timestep_fs),
                                atom_steps_per_s=atom_steps_per_s, n_cores=n_cores, **extra)  # fmt: skip


def read_inputs(md: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict, dict]:
    """The aimd and mlip-md stages' tables and metrics, and the run settings the report states."""
    out = Path(md.report_dir)
    aimd_runs, aimd_fits = T.read_csv(out / aimd.RUNS_CSV), T.read_csv(out / aimd.FITS_CSV)
    mlip_runs, mlip_fits = T.read_csv(out / mlip.RUNS_CSV), T.read_csv(out / mlip.FITS_CSV)
    mlip_metrics = json.loads((out / mlip.METRICS_JSON).read_text(encoding="utf-8"))
    # the run's settings; its wall clock stays out of tracked files (mlip.TIMING_JSON, MLflow)
    timing = {"device": md.mlip.device, "n_jobs": md.mlip.n_jobs, "threads": md.mlip.threads}
    return aimd_runs, aimd_fits, mlip_runs, mlip_fits, mlip_metrics, timing


@stage("md-report", sections=["md"])
def run_stage(cfg: DictConfig) -> StageResult:
    md = cfg.md
    out = Path(md.report_dir)
    aimd_runs, aimd_fits, mlip_runs, mlip_fits, mlip_metrics, timing = read_inputs(md)
    comp = compare_fits(aimd_fits, mlip_fits)
    pairs = same_temperature_pairs(aimd_runs, mlip_runs)
    cmp_metrics = comparison_metrics(comp, pairs)
    paths = [write_csv(comp, out / COMPARISON_CSV), write_csv(pairs, out / PAIRS_CSV),
             write_json(cmp_metrics, out / METRICS_JSON)]  # fmt: skip
    paths.append(plots.arrhenius_grid(
        [plots.Series("AIMD", aimd_runs[aimd_runs[T.COL_MATERIAL].isin(set(mlip_runs[T.COL_MATERIAL]))],
                      aimd_fits, "black"),
         plots.Series("MLIP", mlip_runs, mlip_fits, "tab:red")],
        md.analysis.target_temperature, out / FIG_OVERLAY))  # fmt: skip
    target = f"{md.analysis.target_temperature:g} K"
    empty = np.array([])
    col = (lambda df, c: df[c].to_numpy(float) if not df.empty else empty)  # noqa: E731
    labels = list(comp[T.COL_MATERIAL]) if not comp.empty else []
    paths.append(plots.parity(col(comp, C_EA_AIMD), col(comp, C_EA_AIMD_ERR), col(comp, C_EA_MLIP),
                              col(comp, C_EA_MLIP_ERR), labels, "Ea AIMD (eV)", "Ea MLIP (eV)",
                              out / FIG_PARITY_EA))  # fmt: skip
    paths.append(plots.parity(col(comp, C_S_AIMD), col(comp, C_S_AIMD_ERR), col(comp, C_S_MLIP),
                              col(comp, C_S_MLIP_ERR), labels, f"log10 σ({target}) AIMD",
                              f"log10 σ({target}) MLIP", out / FIG_PARITY_SIGMA))  # fmt: skip
    plabels = [f"{m} {t:g}K" for m, t in zip(pairs[T.COL_MATERIAL], pairs[T.COL_T], strict=True)] if not pairs.empty else []
    paths.append(plots.parity(col(pairs, C_LD_AIMD), col(pairs, C_LD_AIMD_ERR), col(pairs, C_LD_MLIP),
                              col(pairs, C_LD_MLIP_ERR), plabels, "log10 D AIMD (cm²/s)",
                              "log10 D MLIP (cm²/s)", out / FIG_PARITY_D))  # fmt: skip
    text = render(cfg, aimd_runs, aimd_fits, mlip_runs, mlip_fits, mlip_metrics, timing, comp,
                  pairs, cmp_metrics)  # fmt: skip
    report = write_text(text, md.report)
    paths.append(report)
    log.info("wrote %s", report)
    return StageResult(cmp_metrics, paths)
