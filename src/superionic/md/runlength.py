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
from collections.abc import Iterable

import pandas as pd

from superionic.md.analysis import A2_PER_FS_TO_CM2_PER_S, HE_RSD_A, HE_RSD_B
from superionic.md.tables import COL_MATERIAL

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


def estimate_run_lengths(
    aimd_runs: pd.DataFrame,
    materials: Iterable[str],
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
    """Run length and cost per (material, temperature) of the AIMD runs used in a fit.

    ``aimd_runs`` is the ``aimd`` stage's runs table (``aimd_runs.csv``); only
    runs with ``used_in_fit`` (those that pass the exclusion rules) are
    planned. Cost: production plus equilibration atom-steps of all replicas,
    at ``atom_steps_per_s`` (a measured throughput) for the wall time and
    ``n_cores`` times that for core hours; ``None`` leaves both NaN (a report
    must not carry a machine's wall-clock figure).
    """
    if atom_steps_per_s is not None and atom_steps_per_s <= 0:
        raise ValueError("atom_steps_per_s must be > 0")
    wanted = list(materials)
    used = aimd_runs[aimd_runs[COL_MATERIAL].isin(wanted) & aimd_runs["used_in_fit"].astype(bool)]
    rows = []
    for r in used.itertuples(index=False):
        ps = duration_for_rsd(float(r.D_cm2_s), int(r.n_mobile), target_rsd, site_distance, replicas)
        steps = steps_for(ps, timestep_fs, min_duration_ps, round_steps)
        atom_steps = replicas * (steps + equilibration_steps) * int(r.n_sites)
        wall_h = atom_steps / atom_steps_per_s / 3600.0 if atom_steps_per_s else math.nan
        rows.append({"material": r.material, "formula": r.formula, "temperature_K": float(r.temperature_K),
                     "n_atoms": int(r.n_sites), "n_mobile": int(r.n_mobile), "D_cm2_s": float(r.D_cm2_s),
                     "n_eff_needed": hops_needed(target_rsd), "replicas": replicas, "ps_per_replica": ps,
                     "steps_per_replica": steps, "atom_steps": atom_steps, "wall_h": wall_h,
                     "core_h": wall_h * n_cores})  # fmt: skip
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    return out.sort_values(["material", "temperature_K"], ignore_index=True)


def summary_line(plan: pd.DataFrame, target_rsd: float, atom_steps_per_s: float, n_cores: int) -> str:
    """One sentence for the report: total length, atom-steps and time."""
    total_ps = float((plan["ps_per_replica"] * plan["replicas"]).sum())
    return (f"RSD(D) <= {target_rsd:g} for {len(plan)} runs needs {total_ps:.0f} "
            f"ps of MD in total ({plan['atom_steps'].sum():.3g} atom-steps): {plan['wall_h'].sum():.1f} h wall "
            f"({plan['core_h'].sum():.1f} core-h) at {atom_steps_per_s:.0f} atom-steps/s on {n_cores} cores.")  # fmt: skip
