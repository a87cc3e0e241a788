"""Stage ``md-report``: AIMD vs MLIP comparison, ``reports/md.md`` and its figures.

Every number is read from the AIMD and MLIP stage outputs; nothing is typed in.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic import files
from superionic.io import write_csv, write_json, write_text
from superionic.md import aimd, mlip, plots
from superionic.md import tables as T
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

COMPARISON_CSV = f"{files.MD_REPORT_DIR}/comparison.csv"
PAIRS_CSV = f"{files.MD_REPORT_DIR}/comparison_same_temperature.csv"
METRICS_JSON = files.MD_COMPARISON_METRICS
FIG_OVERLAY = f"{files.MD_REPORT_DIR}/arrhenius_aimd_vs_mlip.png"
FIG_PARITY_EA = f"{files.MD_REPORT_DIR}/parity_ea.png"
FIG_PARITY_SIGMA = f"{files.MD_REPORT_DIR}/parity_log10_sigma_300K.png"
FIG_PARITY_D = f"{files.MD_REPORT_DIR}/parity_log10_D_same_T.png"

# comparison table columns
C_EA_AIMD, C_EA_AIMD_ERR = "Ea_aimd_eV", "Ea_aimd_err_eV"
C_EA_MLIP, C_EA_MLIP_ERR = "Ea_mlip_eV", "Ea_mlip_err_eV"
C_DEA, C_DEA_ERR = "dEa_mlip_minus_aimd_eV", "dEa_err_eV"
C_S_AIMD, C_S_AIMD_ERR = "log10_sigma_aimd", "log10_sigma_aimd_err"
C_S_MLIP, C_S_MLIP_ERR = "log10_sigma_mlip", "log10_sigma_mlip_err"
C_LD_AIMD, C_LD_AIMD_ERR = "log10_D_aimd", "log10_D_aimd_err"
C_LD_MLIP, C_LD_MLIP_ERR = "log10_D_mlip", "log10_D_mlip_err"


def run_lengths(mlip_cfg) -> str:
    """The production length(s) and temperatures, in words."""
    if mlip_cfg.runs:
        per = "; ".join(f"{r.material} {float(r.temperature):g} K {int(r.steps) * mlip_cfg.timestep_fs / 1000:g} ps"
                        for r in mlip_cfg.runs)  # fmt: skip
        return f"production runs (md.mlip.runs): {per}"
    return (f"{mlip_cfg.steps} production steps ({mlip_cfg.steps * mlip_cfg.timestep_fs / 1000:g} ps) at "
            f"{', '.join(f'{t:g}' for t in mlip_cfg.temperatures)} K")  # fmt: skip


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


def weighted_mean(values: np.ndarray, errors: np.ndarray) -> tuple[float, float, int]:
    """Inverse-variance weighted mean and its standard error (nan if none)."""
    ok = np.isfinite(values) & np.isfinite(errors) & (errors > 0)
    if not ok.any():
        return math.nan, math.nan, 0
    w = 1.0 / errors[ok] ** 2
    mean = float((w * values[ok]).sum() / w.sum())
    return mean, float(1.0 / math.sqrt(w.sum())), int(ok.sum())


def comparison_metrics(comp: pd.DataFrame, pairs: pd.DataFrame) -> dict:
    out: dict = {}
    if not comp.empty:
        dea, dea_n = comp[C_DEA].to_numpy(float), comp[C_DEA_ERR].to_numpy(float)
        mean, err, n = weighted_mean(dea, dea_n)
        out["dEa_weighted_mean_eV"], out["dEa_weighted_mean_err_eV"], out["n_materials_both_fits"] = mean, err, n
        both = np.isfinite(dea)
        out["n_materials_mlip_lower_Ea"] = int((dea[both] < 0).sum())
        if both.any():
            out["dEa_median_eV"] = float(np.median(dea[both]))
            ratio = (comp[C_EA_MLIP] / comp[C_EA_AIMD]).to_numpy(float)[both]
            out["Ea_ratio_mlip_over_aimd_median"] = float(np.median(ratio))
    if not pairs.empty:
        d = pairs["dlog10_D_mlip_minus_aimd"].to_numpy(float)
        e = np.hypot(pairs[C_LD_AIMD_ERR].to_numpy(float), pairs[C_LD_MLIP_ERR].to_numpy(float))
        mean, err, n = weighted_mean(d, e)
        out["dlog10_D_same_T_weighted_mean"], out["dlog10_D_same_T_err"], out["n_same_T_pairs"] = mean, err, n
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
            for k, v in sorted(out.items()) if not (isinstance(v, float) and not math.isfinite(v))}  # fmt: skip


# --- markdown ------------------------------------------------------------------------


def _f(x: float, fmt: str = ".2f") -> str:
    return "–" if x is None or not np.isfinite(x) else format(float(x), fmt)


def _pm(v: float, e: float, fmt: str = ".2f") -> str:
    if not np.isfinite(v):
        return "–"
    return f"{_f(v, fmt)} ± {_f(e, fmt)}"


def fits_table(fits: pd.DataFrame, runs: pd.DataFrame, target_t: float, conf: float) -> list[str]:
    pct = f"{100 * conf:.0f}%"
    lines = [
        f"| material | formula | runs used | T used (K) | Ea (eV) | Ea {pct} CI | log10 σ({target_t:g} K) (S/cm) | {pct} CI | χ²/dof | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in fits.itertuples(index=False):
        material = getattr(f, T.COL_MATERIAL)
        mruns = runs[runs[T.COL_MATERIAL] == material]
        lines.append(
            f"| {material} | {getattr(f, T.COL_FORMULA)} | {int(mruns[T.COL_USED].sum())}/{len(mruns)} | "
            f"{getattr(f, T.COL_T_USED) or '–'} | {_pm(getattr(f, T.COL_EA), getattr(f, T.COL_EA_ERR))} | "
            f"[{_f(getattr(f, T.COL_EA_LO))}, {_f(getattr(f, T.COL_EA_HI))}] | "
            f"{_pm(getattr(f, T.COL_LOG10_SIGMA), getattr(f, T.COL_LOG10_SIGMA_ERR))} | "
            f"[{_f(getattr(f, T.COL_LOG10_SIGMA_LO))}, {_f(getattr(f, T.COL_LOG10_SIGMA_HI))}] | "
            f"{_f(getattr(f, T.COL_CHI2_RED))} | {getattr(f, T.COL_STATUS)} |"
        )
    return lines


def runs_table(runs: pd.DataFrame) -> list[str]:
    lines = [
        "| run | T (K) | Li | ps | D (cm²/s) | N_eff | RSD(D) | framework MSD (Å², species) | D_fw/D_Li | excluded because |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs.itertuples(index=False):
        reasons = getattr(r, T.COL_REASONS)
        reasons = "" if (isinstance(reasons, float) or not reasons) else str(reasons).replace(";", ", ")
        lines.append(
            f"| {getattr(r, T.COL_MATERIAL)} | {getattr(r, T.COL_T):g} | {getattr(r, T.COL_N_MOBILE)} | "
            f"{_f(getattr(r, T.COL_DURATION), '.1f')} | {_f(getattr(r, T.COL_D), '.2e')} | "
            f"{_f(getattr(r, T.COL_N_EFF), '.1f')} | {_f(getattr(r, T.COL_RSD))} | "
            f"{_f(getattr(r, T.COL_FW_MSD), '.2f')} ({getattr(r, T.COL_FW_SPECIES)}) | "
            f"{_f(getattr(r, T.COL_FW_RATIO), '.3f')} | {reasons or 'used'} |"
        )
    return lines


def render(
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
) -> str:
    a, md = cfg.md.analysis, cfg.md
    # figure links relative to the report's own folder
    fig = Path(os.path.relpath(md.report_dir, Path(md.report).parent)).as_posix()
    target, conf = a.target_temperature, a.confidence
    label = mlip_metrics.get("label", "")
    n_fit = int((aimd_fits[T.COL_STATUS] == "ok").sum())
    L: list[str] = []
    L += [
        "# Ionic conductivity from molecular dynamics",
        "",
        "Generated by `superionic md-report` from the outputs of the `aimd` and `mlip-md` stages; "
        "do not edit by hand.",
        "",
        "## Method",
        "",
        f"- Li diffusivity from the multiple-time-origin mean squared displacement, straight-line fit "
        f"(free intercept) between {a.fit_start_fraction:.0%} and {a.fit_end_fraction:.0%} of each run; "
        f"D = slope/6.",
        (
            "- Framework drift correction: before the MSD, the mean displacement of the framework "
            "(non-Li) sites is subtracted frame by frame from every site, as pymatgen's "
            "DiffusionAnalyzer does, because a wandering cell centre of mass (thermostat and force "
            "noise) is no ion transport but would bias the Li MSD and hence D."
            if a.drift_correction
            else "- No framework drift correction (`md.analysis.drift_correction: false`): a drifting "
            "cell centre of mass counts as Li motion."
        ),
        f"- Uncertainty of D: He et al. 2018 (npj Comput. Mater. 4, 18), RSD = 3.43/√N_eff + 0.04 with "
        f"N_eff = N_Li · 6D·t_total / a², a = {a.site_distance:g} Å.",
        "- Conductivity: Nernst–Einstein σ = n e² D / (k_B T), n = Li per cell volume, Haven ratio 1 "
        "(tracer D used as charge D).",
        f"- Arrhenius: weighted least squares of ln D vs 1/T (weights 1/RSD²); covariance inflated by "
        f"max(1, χ²/dof); extrapolated to {target:g} K; intervals are {conf:.0%} (normal quantile). "
        f"Extrapolating from ≥ 800 K to {target:g} K assumes one mechanism over the whole range: the "
        f"intervals are statistical only and do not cover a mechanism change below the simulated range.",
        "",
        "**Exclusion rules** (applied to every run of both methods, reasons listed per run):",
        "",
        f"1. `too_few_frames`: fewer than {a.min_frames} frames; `too_short`: shorter than "
        f"{md.aimd.min_duration_ps:g} ps (AIMD) / {md.mlip.min_duration_ps:g} ps (MLIP).",
        f"2. `too_few_mobile_ions`: fewer than {a.min_mobile_ions} Li in the cell; "
        "`cell_differs_from_other_runs`: not the cell most runs of the material use (a truncated cell).",
        f"3. `too_few_hops`: RSD(D) > {a.max_relative_error:g} (D not resolved from zero: fewer than "
        f"~{(3.43 / (a.max_relative_error - 0.04)) ** 2:.0f} effective hops).",
        f"4. `framework_mobile_melting`: some framework species moved more than {a.framework_msd_floor:g} Å² "
        f"(MSD at the fit-window end) with D_framework/D_Li > {a.framework_ratio_max:g}: melting or "
        "decomposition, not Li hopping in the crystal.",
        f"5. Per material, with ≥ 3 points: if the weighted fit is inconsistent (χ² p-value < "
        f"{a.arrhenius_p_min:g}), the highest-temperature point is dropped as `non_arrhenius_dropped` "
        f"and the fit redone. Fewer than {max(a.min_points, 2)} usable temperatures: no fit "
        "(`insufficient_points`).",
        "",
        f"## AIMD (Kang et al. 2023): {n_fit} of {len(aimd_fits)} materials give a trustworthy Arrhenius fit",
        "",
        *fits_table(aimd_fits, aimd_runs, target, conf),
        "",
        f"![AIMD Arrhenius plots]({fig}/{aimd.FIGURE})",
        "",
        "Runs and exclusion decisions:",
        "",
        *runs_table(aimd_runs),
        "",
        "## MLIP molecular dynamics (CHGNet)",
        "",
    ]
    mlip_cfg = md.mlip
    L += [
        f"**{label}**. CHGNet {mlip_cfg.model} (weights bundled in the package), NVT "
        f"({mlip_cfg.thermostat} thermostat, τ = {mlip_cfg.thermostat_time_fs:g} fs), time step "
        f"{mlip_cfg.timestep_fs:g} fs, {mlip_cfg.equilibration_steps} equilibration + {run_lengths(mlip_cfg)}, "
        "starting from the AIMD cells, "
        f"device {timing.get('device', '?')}.",
        "",
        f"Trajectories: `{md.out_dir}/mlip/<material>/<T>K.extxyz` (unwrapped Cartesian positions, cell and "
        "pbc every saved sample; ASE, OVITO and pymatgen's DiffusionAnalyzer read it) with the MD log "
        "`<T>K_log.csv` (step, time, temperature, potential/kinetic/total energy).",
        "",
    ]
    if mlip_cfg.steps * mlip_cfg.timestep_fs / 1000 < md.aimd.min_duration_ps:
        L += [
            f"> These runs are far shorter than the AIMD runs ({md.aimd.min_duration_ps:g} ps minimum): "
            "their diffusivities are rough (few hops, fit window partly in the sub-ps vibrational "
            "regime) and the activation energies below are indicative only. The sub-ps fit window "
            "also catches part of the vibrational MSD rise, which biases short-run D upward, so the "
            "same-temperature D ratio below is an upper bound on the potential's own softening. Run "
            "`md=production` for numbers to act on.",
            "",
        ]
    for note in mlip_metrics.get("notes", []):
        L.append(f"- Candidates: {note}")
    if mlip_metrics.get("notes"):
        L.append("")
    L += [
        f"Cost: {timing.get('n_jobs', 1)} run(s) in parallel, {timing.get('threads', '?')} torch thread(s) "
        f"each, device {timing.get('device', '?')}; the wall clock per MD step and per atom-step of this run "
        f"is in `{md.report_dir}/{mlip.TIMING_JSON}` (kept out of git: it changes with every run) and in the "
        "MLflow run `mlip-md`. `benchmarks/md_mlip_cost.py` measures the cost on its own.",
        "",
        *fits_table(mlip_fits, mlip_runs, target, conf),
        "",
        f"![MLIP Arrhenius plots]({fig}/{mlip.FIGURE})",
        "",
        *runs_table(mlip_runs),
        "",
        "## AIMD vs MLIP",
        "",
        f"| material | formula | Ea AIMD (eV) | Ea MLIP (eV) | ΔEa MLIP−AIMD (eV) | log10 σ({target:g} K) AIMD | log10 σ({target:g} K) MLIP |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in comp.itertuples(index=False):
        L.append(
            f"| {getattr(r, T.COL_MATERIAL)} | {getattr(r, T.COL_FORMULA)} | "
            f"{_pm(getattr(r, C_EA_AIMD), getattr(r, C_EA_AIMD_ERR))} | "
            f"{_pm(getattr(r, C_EA_MLIP), getattr(r, C_EA_MLIP_ERR))} | "
            f"{_pm(getattr(r, C_DEA), getattr(r, C_DEA_ERR))} | "
            f"{_pm(getattr(r, C_S_AIMD), getattr(r, C_S_AIMD_ERR))} | "
            f"{_pm(getattr(r, C_S_MLIP), getattr(r, C_S_MLIP_ERR))} |"
        )
    L += ["", "Same material, same temperature (no extrapolation), both runs usable:", ""]
    if pairs.empty:
        L.append("No (material, temperature) pair is usable in both methods.")
    else:
        L += ["| material | T (K) | log10 D AIMD | log10 D MLIP | Δ MLIP−AIMD |", "|---|---|---|---|---|"]
        for p in pairs.itertuples(index=False):
            L.append(
                f"| {getattr(p, T.COL_MATERIAL)} | {getattr(p, T.COL_T):g} | "
                f"{_pm(getattr(p, C_LD_AIMD), getattr(p, C_LD_AIMD_ERR))} | "
                f"{_pm(getattr(p, C_LD_MLIP), getattr(p, C_LD_MLIP_ERR))} | "
                f"{_f(p.dlog10_D_mlip_minus_aimd)} |"
            )
    L += ["", "### Do universal potentials underestimate barriers here?", ""]
    L += [barrier_statement(cmp_metrics, label), ""]
    L += run_length_section(cfg, aimd_runs, aimd_fits)
    L += [
        f"![Arrhenius overlay]({fig}/{FIG_OVERLAY})",
        f"![Ea parity]({fig}/{FIG_PARITY_EA})",
        f"![sigma parity]({fig}/{FIG_PARITY_SIGMA})",
        f"![D parity]({fig}/{FIG_PARITY_D})",
        "",
    ]
    return "\n".join(L)


def validation_plan(cfg: DictConfig, aimd_runs: pd.DataFrame, aimd_fits: pd.DataFrame, *,
                    with_run_settings: bool = False, atom_steps_per_s: float | None = None,
                    n_cores: int = 1) -> pd.DataFrame:  # fmt: skip
    """Production length per AIMD run used in a trustworthy fit, for RSD(D) <= ``md.validation_rsd``.

    Bare lengths by default (the report); ``with_run_settings`` adds the config's
    equilibration, minimum duration and step rounding, i.e. what ``md=validation`` runs.
    """
    from superionic.md.runlength import estimate_run_lengths

    a, m = cfg.md.analysis, cfg.md.mlip
    trusted = aimd_fits.loc[aimd_fits["status"] == "ok", T.COL_MATERIAL]
    extra = ({"equilibration_steps": int(m.equilibration_steps), "min_duration_ps": float(m.min_duration_ps),
              "round_steps": 500} if with_run_settings else
             {"equilibration_steps": 0, "min_duration_ps": 0.0, "round_steps": 1})  # fmt: skip
    return estimate_run_lengths(aimd_runs, trusted, target_rsd=float(cfg.md.validation_rsd),
                                site_distance=float(a.site_distance), timestep_fs=float(m.timestep_fs),
                                atom_steps_per_s=atom_steps_per_s, n_cores=n_cores, **extra)  # fmt: skip


def run_length_section(cfg: DictConfig, aimd_runs: pd.DataFrame, aimd_fits: pd.DataFrame) -> list[str]:
    plan = validation_plan(cfg, aimd_runs, aimd_fits)
    rsd = float(cfg.md.validation_rsd)
    L = ["### What run length would settle it", ""]
    if plan.empty:
        return [*L, "No AIMD run is part of a trustworthy fit, so there is nothing to plan.", ""]
    L += [f"An Arrhenius fit is only as good as its D values. RSD(D) <= {rsd:g} (He et al.) at the AIMD "
          "diffusivity of every AIMD run in a trustworthy fit needs the production lengths below "
          f"(timestep {float(cfg.md.mlip.timestep_fs):g} fs, site distance {float(cfg.md.analysis.site_distance):g} Å). "
          "An MLIP that softens the barrier diffuses faster, so for it these are upper bounds. "
          "`md=validation` (`conf/md/validation.yaml`) runs them, batched (`md.mlip.batch`), at least 20 ps each; "
          "`python benchmarks/mlip_batched_md.py` prints their cost at the throughput it measures.", "",
          "| material | formula | T (K) | atoms | Li | D AIMD (cm²/s) | ps needed | steps | atom-steps |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in plan.itertuples(index=False):
        L.append(f"| {r.material} | {r.formula} | {r.temperature_K:g} | {r.n_atoms} | {r.n_mobile} | "
                 f"{r.D_cm2_s:.2e} | {r.ps_per_replica:.1f} | {r.steps_per_replica:,} | {r.atom_steps:.3g} |")
    longest = plan.loc[plan["ps_per_replica"].idxmax()]
    L += ["", f"In all {plan['ps_per_replica'].sum():.0f} ps ({plan['atom_steps'].sum():.3g} atom-steps), "
          f"against {float(cfg.md.mlip.steps) * float(cfg.md.mlip.timestep_fs) / 1000:g} ps per MLIP run in this "
          f"default configuration. The longest is {longest['formula']} at {longest['temperature_K']:g} K "
          f"({longest['ps_per_replica']:.0f} ps): its AIMD D is the smallest.", ""]
    return L


def barrier_statement(m: dict, label: str) -> str:
    """The literature expectation (softened PES of universal potentials trained
    mostly on near-equilibrium data -> lower barriers, higher D) against what
    this run measured."""
    lead = (
        "Universal potentials trained mostly on near-equilibrium DFT data tend to soften the "
        "potential-energy surface and so underestimate migration barriers (Deng et al. 2025, "
        "'Systematic softening in universal machine learning interatomic potentials', npj Comput. "
        "Mater.). Measured here"
    )
    parts = []
    n = m.get("n_materials_both_fits", 0)
    if n:
        parts.append(
            f"ΔEa = Ea(MLIP) − Ea(AIMD) = {m['dEa_weighted_mean_eV']:+.3f} ± "
            f"{m['dEa_weighted_mean_err_eV']:.3f} eV (inverse-variance mean over {n} material(s) with "
            f"both fits; MLIP lower in {m['n_materials_mlip_lower_Ea']} of {n}; median ratio "
            f"Ea(MLIP)/Ea(AIMD) = {m.get('Ea_ratio_mlip_over_aimd_median', math.nan):.2f})"
        )
    else:
        parts.append("no material has an Arrhenius fit in both methods, so ΔEa is not measured")
    if m.get("n_same_T_pairs"):
        parts.append(
            f"at equal temperature log10 D(MLIP) − log10 D(AIMD) = {m['dlog10_D_same_T_weighted_mean']:+.2f}"
            f" ± {m['dlog10_D_same_T_err']:.2f} over {m['n_same_T_pairs']} run pair(s)"
        )
    verdict = ""
    if n:
        lo = m["dEa_weighted_mean_eV"] + 2 * m["dEa_weighted_mean_err_eV"]
        hi = m["dEa_weighted_mean_eV"] - 2 * m["dEa_weighted_mean_err_eV"]
        if lo < 0:
            verdict = " The barrier underestimate is resolved at 2σ."
        elif hi > 0:
            verdict = " Here the MLIP barriers are HIGHER than AIMD at 2σ, against the usual tendency."
        else:
            verdict = " The difference is not resolved at 2σ with these runs."
    return f"{lead}: " + "; ".join(parts) + "." + verdict + f" (MLIP runs: {label}.)"


@stage("md-report", sections=["md"])
def run_stage(cfg: DictConfig) -> StageResult:
    md = cfg.md
    out = Path(md.report_dir)
    aimd_runs, aimd_fits = T.read_csv(out / aimd.RUNS_CSV), T.read_csv(out / aimd.FITS_CSV)
    mlip_runs, mlip_fits = T.read_csv(out / mlip.RUNS_CSV), T.read_csv(out / mlip.FITS_CSV)
    mlip_metrics = json.loads((out / mlip.METRICS_JSON).read_text(encoding="utf-8"))
    # the run's settings; its wall clock stays out of tracked files (mlip.TIMING_JSON, MLflow)
    timing = {"device": md.mlip.device, "n_jobs": md.mlip.n_jobs, "threads": md.mlip.threads}
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
