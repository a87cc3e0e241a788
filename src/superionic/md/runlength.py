"""How long an MD run must be for a given precision of D, and what it costs.

He et al. 2018 (npj Comput. Mater. 4, 18): RSD(D) = A/sqrt(N_eff) + B with
N_eff = N_mobile * 6 D t / a^2 (:mod:`superionic.md.analysis`). Inverting it
gives the production time for a target RSD. Replicas of a run pool their hops
(N_eff adds up, as for a bigger cell), so R replicas each need 1/R of the
time; they cost the same atom-steps plus R equilibrations, and pay off only
where they run side by side (batched, :mod:`superionic.md.batched`) faster
than one long run.

The diffusivities come from the AIMD runs (the reference the MLIP is checked
against). An MLIP that softens the barrier diffuses faster and reaches the
target sooner, so AIMD-based lengths are an upper bound for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from superionic.md.analysis import A2_PER_FS_TO_CM2_PER_S, HE_RSD_A, HE_RSD_B, K_B_EV
from superionic.md import tables as T

# what estimate_run_lengths plans from: one row per run
TARGET_COLUMNS = [T.COL_MATERIAL, T.COL_FORMULA, T.COL_T, T.COL_N_SITES, T.COL_N_MOBILE, T.COL_D]
COLUMNS = ("material", "formula", "temperature_K", "n_atoms", "n_mobile", "D_cm2_s", "n_eff_needed", "replicas",
           "ps_per_replica", "steps_per_replica", "atom_steps", "wall_h", "core_h")  # fmt: skip


def hops_needed(target_rsd: float) -> float:
    """Effective hops N_eff at which the He et al. RSD equals ``target_rsd``."""
    if target_rsd <= HE_RSD_B:
        raise ValueError(f"target RSD must exceed the He et al. floor {HE_RSD_B}, got {target_rsd}")
    return (HE_RSD_A / (target_rsd - HE_RSD_B)) ** 2


def duration_for_rsd(diffusivity_cm2_s: float, n_mobile: int, target_rsd: float, site_distance: float,
                     replicas: int = 1) -> float:  # fmt: skip
    """Production time per replica (ps) for RSD(D) <= ``target_rsd``; inf if D <= 0."""
    if n_mobile < 1 or replicas < 1 or site_distance <= 0:
        raise ValueError("need n_mobile >= 1, replicas >= 1, site_distance > 0")
    if diffusivity_cm2_s <= 0:
        return math.inf
    d_a2_per_fs = diffusivity_cm2_s / A2_PER_FS_TO_CM2_PER_S
    total_fs = hops_needed(target_rsd) * site_distance**2 / (6.0 * d_a2_per_fs * n_mobile)
    return total_fs / replicas / 1000.0


def steps_for(duration_ps: float, timestep_fs: float, min_duration_ps: float, round_steps: int) -> int:
    """MD steps for ``duration_ps`` (at least ``min_duration_ps``), rounded up to ``round_steps``."""
    steps = math.ceil(max(duration_ps, min_duration_ps) * 1000.0 / timestep_fs)
    return int(math.ceil(steps / round_steps) * round_steps)


def arrhenius_targets(aimd_runs: pd.DataFrame, aimd_fits: pd.DataFrame, temperatures: Iterable[float],
                      reference_temperature: float) -> pd.DataFrame:  # fmt: skip
    """D at each of ``temperatures`` from every trustworthy AIMD Arrhenius fit (status ``ok``).

    ``aimd_fits`` carries Ea and log10 D at ``reference_temperature`` (the
    ``aimd`` stage's fits table); the cell (sites, mobile ions) is that of the
    material's runs used in the fit. Below the fitted range this extrapolates
    along the AIMD barrier: a potential with a lower barrier diffuses faster
    there, so lengths planned from it are upper bounds.
    """
    fitted = aimd_fits[aimd_fits[T.COL_STATUS] == "ok"]
    used = aimd_runs[aimd_runs[T.COL_USED].astype(bool)]
    rows = []
    for fit in fitted.to_dict("records"):
        cell = used[used[T.COL_MATERIAL] == fit[T.COL_MATERIAL]].iloc[0]
        for t in temperatures:
            log10_d = float(fit[T.COL_LOG10_D_TARGET]) - float(fit[T.COL_EA]) / (K_B_EV * math.log(10)) * (
                1.0 / float(t) - 1.0 / reference_temperature)
            rows.append({T.COL_MATERIAL: fit[T.COL_MATERIAL], T.COL_FORMULA: fit[T.COL_FORMULA], T.COL_T: float(t),
                         T.COL_N_SITES: int(cell[T.COL_N_SITES]), T.COL_N_MOBILE: int(cell[T.COL_N_MOBILE]),
                         T.COL_D: 10**log10_d})  # fmt: skip
    return pd.DataFrame(rows, columns=TARGET_COLUMNS)


def estimate_run_lengths(
    targets: pd.DataFrame,
    *,
    target_rsd: float,
    site_distance: float,
    timestep_fs: float,
    equilibration_steps: int,
    min_duration_ps: float,
    atom_steps_per_s: float | None,
    n_cores: int,
    replicas: int = 1,
    round_steps: int = 500,
) -> pd.DataFrame:
    """Run length and cost per row of ``targets`` (:data:`TARGET_COLUMNS`).

    Cost: production plus equilibration atom-steps of all replicas, at
    ``atom_steps_per_s`` (a measured throughput) for the wall time and
    ``n_cores`` times that for core hours; ``None`` leaves both NaN (a report
    must not carry a machine's wall-clock figure).
    """
    if atom_steps_per_s is not None and atom_steps_per_s <= 0:
        raise ValueError("atom_steps_per_s must be > 0")
    rows = []
    missing = set(TARGET_COLUMNS) - set(targets.columns)
    if missing:
        raise ValueError(f"run-length targets lack columns {sorted(missing)}")
    for r in targets.itertuples(index=False):
        ps = duration_for_rsd(float(r.D_cm2_s), int(r.n_mobile), target_rsd, site_distance, replicas)
        steps = steps_for(ps, timestep_fs, min_duration_ps, round_steps) if math.isfinite(ps) else math.inf
        atom_steps = replicas * (steps + equilibration_steps) * int(r.n_sites)
        wall_h = atom_steps / atom_steps_per_s / 3600.0 if atom_steps_per_s else math.nan
        rows.append({"material": r.material, "formula": r.formula, "temperature_K": float(r.temperature_K),
                     "n_atoms": int(r.n_sites), "n_mobile": int(r.n_mobile), "D_cm2_s": float(r.D_cm2_s),
                     "n_eff_needed": hops_needed(target_rsd), "replicas": replicas, "ps_per_replica": ps,
                     "steps_per_replica": steps, "atom_steps": atom_steps, "wall_h": wall_h,
                     "core_h": wall_h * n_cores})  # fmt: skip
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    return out.sort_values(["material", "temperature_K"], ignore_index=True)


def ea_error(temperatures: Iterable[float], rel_errors: Iterable[float], inflation: float = 1.0) -> float:
    """1-sigma error of Ea (eV) of the weighted Arrhenius fit of :func:`superionic.md.analysis.weighted_arrhenius`
    with these points' RSD(D) as the error of ln D, its covariance scaled by ``inflation`` (chi^2/dof when > 1)."""
    x = 1.0 / np.asarray(list(temperatures), dtype=float)
    w = 1.0 / np.asarray(list(rel_errors), dtype=float) ** 2
    if x.size < 2 or np.unique(x).size < 2:
        return math.inf
    xbar = float((w * x).sum() / w.sum())
    return K_B_EV * math.sqrt(inflation / float((w * (x - xbar) ** 2).sum()))


def rsd_after_lengthening(rel_error: float, factor: float) -> float:
    """He et al. RSD(D) of a run ``factor`` times longer (N_eff grows with the length at fixed D)."""
    return (rel_error - HE_RSD_B) / math.sqrt(factor) + HE_RSD_B


def factor_for_rsd(rel_error: float, target_rsd: float) -> float:
    """How many times longer a run of He et al. RSD ``rel_error`` must be to reach ``target_rsd``
    (1 when it does; the inverse of :func:`rsd_after_lengthening`)."""
    # N_eff grows with the length: the hops the target needs over the hops this run had
    return max(1.0, hops_needed(target_rsd) * ((rel_error - HE_RSD_B) / HE_RSD_A) ** 2)


@dataclass(frozen=True)
class ArrheniusPoints:
    """One Arrhenius fit's points as far as its Ea error goes: temperatures, RSD(D) per point
    and the chi^2/dof inflation of its covariance."""

    temperatures: tuple[float, ...]
    rel_errors: tuple[float, ...]
    inflation: float

    def ea_error(self, factor: float = 1.0) -> float:
        """1-sigma error of this fit's Ea with every run ``factor`` times longer."""
        errs = [rsd_after_lengthening(e, factor) for e in self.rel_errors]
        return ea_error(self.temperatures, errs, self.inflation)


@dataclass(frozen=True)
class FitPoints(ArrheniusPoints):
    """The fit that is lengthened and the error of the fit it is compared with, which longer
    runs of this one cannot shrink; given ``other``, the compared fit's points, its runs
    grow by the same factor and ``other_error`` shrinks with them."""

    other_error: float
    other: ArrheniusPoints | None = None

    def difference_error(self, factor: float) -> float:
        """1-sigma error of Ea(this) - Ea(other) with the runs ``factor`` times longer."""
        other = self.other_error
        if self.other is not None:
            # scaled, not recomputed: the compared fit's reported error stays the anchor
            other *= self.other.ea_error(factor) / self.other.ea_error()
        return math.hypot(self.ea_error(factor), other)


def length_factor_for_ea(fits: Sequence[FitPoints], *, target_half_width: float, z: float,
                         max_factor: float = 1e4) -> float:  # fmt: skip
    """How many times longer every run must be (or how many replicas of it) for the
    inverse-variance mean of the fits' Ea differences to have a ``z``-sigma half width
    <= ``target_half_width`` (one fit: that material's ΔEa).

    1 when already met; inf when even ``max_factor`` does not do it (the He et
    al. RSD floor of 0.04, or the compared fits' own errors, are too large).
    """
    if not fits:
        raise ValueError("need at least one fit")

    def half_width(factor: float) -> float:
        return z / math.sqrt(sum(1.0 / f.difference_error(factor) ** 2 for f in fits))

    if half_width(1.0) <= target_half_width:
        return 1.0
    if half_width(max_factor) > target_half_width:
        return math.inf
    low, high = 1.0, max_factor
    while high / low > 1.001:
        mid = math.sqrt(low * high)
        low, high = (mid, high) if half_width(mid) > target_half_width else (low, mid)
    return high


def summary_line(plan: pd.DataFrame, target_rsd: float, atom_steps_per_s: float, n_cores: int) -> str:
    """One sentence for the report: total length, atom-steps and time."""
    total_ps = float((plan["ps_per_replica"] * plan["replicas"]).sum())
    return (f"RSD(D) <= {target_rsd:g} for {len(plan)} runs needs {total_ps:.0f} "
            f"ps of MD in total ({plan['atom_steps'].sum():.3g} atom-steps): {plan['wall_h'].sum():.1f} h wall "
            f"({plan['core_h'].sum():.1f} core-h) at {atom_steps_per_s:.0f} atom-steps/s on {n_cores} cores.")  # fmt: skip
