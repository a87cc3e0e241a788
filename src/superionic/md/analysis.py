"""Trajectory analysis: MSD -> diffusivity -> Arrhenius -> room-temperature conductivity.

Pure functions on numpy arrays; the AIMD and MLIP stages both call
:func:`analyze_run` per trajectory and :func:`fit_material` per material, so
the two methods are analysed identically.

Framework drift correction (``md.analysis.drift_correction``): the mean
displacement of all framework (non-mobile) sites, unweighted per site, is
subtracted frame by frame from every site's displacement before any MSD,
exactly as pymatgen's ``DiffusionAnalyzer`` does. Thermostats and force noise
let the whole cell's centre of mass wander; that collective translation is no
ion transport, but it enters the Li MSD and biases D (up for an independent
drift; either way when momentum conservation couples the Li to the framework),
most for slow conductors, where the drift is comparable to the Li motion. Without
framework sites there is nothing to reference and the correction is a no-op.

Units: displacements in A, times in fs, D in cm^2/s, conductivity in S/cm,
energies in eV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

# physical constants (CODATA 2018, exact where SI defines them)
K_B_EV = 8.617333262e-5  # eV/K
K_B_J = 1.380649e-23  # J/K
E_CHARGE = 1.602176634e-19  # C
A2_PER_FS_TO_CM2_PER_S = 0.1  # 1 A^2/fs = 1e-16 cm^2 / 1e-15 s

# He et al. 2018, npj Comput. Mater. 4, 18, eq. 8: empirical relative standard
# deviation of D from the effective number of ion hops.
HE_RSD_A = 3.43
HE_RSD_B = 0.04

# exclusion reasons (stable strings: they land in CSV files and the report)
REASON_FEW_FRAMES = "too_few_frames"
REASON_SHORT = "too_short"
REASON_FEW_IONS = "too_few_mobile_ions"
REASON_CELL_MISMATCH = "cell_differs_from_other_runs"
REASON_NON_DIFFUSIVE = "too_few_hops"
REASON_FRAMEWORK = "framework_mobile_melting"
REASON_UNSTABLE = "unstable_md"
REASON_NON_ARRHENIUS = "non_arrhenius_dropped"


@dataclass(frozen=True)
class Trajectory:
    """One MD run: per-site displacements from the starting positions.

    ``displacements`` has shape (n_sites, n_frames, 3) in A, frame 0 = zeros,
    unwrapped (continuous across periodic boundaries). ``origin`` (n_sites, 3)
    Cartesian positions at frame 0 and ``cell`` (3, 3) lattice vectors as rows,
    in A, when known: the analysis needs neither, trajectory files do.
    """

    material: str
    temperature: float  # K
    species: tuple[str, ...]  # per site
    displacements: np.ndarray
    frame_interval_fs: float
    volume: float  # A^3
    formula: str = ""
    source: str = ""
    origin: np.ndarray | None = None
    cell: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.displacements.shape[1])

    @property
    def duration_fs(self) -> float:
        return (self.n_frames - 1) * self.frame_interval_fs


def framework_drift(displacements: np.ndarray, framework: np.ndarray) -> np.ndarray:
    """Per-frame mean displacement of the framework sites, shape (n_frames, 3).

    ``framework`` is a boolean mask over sites. Unweighted mean over sites (not
    mass-weighted), as in ``DiffusionAnalyzer``; zeros without framework sites.
    """
    x = np.asarray(displacements, dtype=np.float64)
    mask = np.asarray(framework, dtype=bool)
    if mask.shape != (x.shape[0],):
        raise ValueError(f"framework mask has shape {mask.shape}, need ({x.shape[0]},) for the sites")
    if not mask.any():
        return np.zeros(x.shape[1:])
    return x[mask].mean(axis=0)


def remove_framework_drift(traj: Trajectory, mobile_specie: str) -> Trajectory:
    """The trajectory with the framework's mean displacement subtracted from every site."""
    framework = np.asarray(traj.species) != mobile_specie
    drift = framework_drift(traj.displacements, framework)
    return replace(traj, displacements=traj.displacements - drift[None, :, :])


def msd_multi_origin(displacements: np.ndarray) -> np.ndarray:
    """Mean squared displacement averaged over all time origins and sites.

    ``displacements``: (n_sites, n_frames, 3). Returns MSD(lag) for lag =
    0..n_frames-1 frames, MSD(lag) = < |r(t0+lag) - r(t0)|^2 >_{t0, sites}.
    FFT-based (O(N log N) per site and axis), exact up to rounding.
    """
    x = np.asarray(displacements, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"displacements must have shape (sites, frames, 3), got {x.shape}")
    n_sites, n, _ = x.shape
    if n_sites == 0:
        raise ValueError("no sites selected for the MSD")
    # S2: autocorrelation sum_k x(k) x(k+m), via zero-padded FFT
    size = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(x, n=size, axis=1)
    acf = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n, :].sum(axis=(0, 2))
    # S1: sum_k [x(k)^2 + x(k+m)^2], by a running subtraction
    sq = (x * x).sum(axis=2).sum(axis=0)  # per frame, summed over sites
    total = 2.0 * sq.sum()
    s1 = np.empty(n)
    for m in range(n):
        if m > 0:
            total -= sq[m - 1] + sq[n - m]
        s1[m] = total
    counts = (n - np.arange(n)) * n_sites
    msd = (s1 - 2.0 * acf) / counts
    msd[0] = 0.0
    return np.maximum(msd, 0.0)


def msd_brute_force(displacements: np.ndarray) -> np.ndarray:
    """Direct O(N^2) multiple-origin MSD (reference for tests)."""
    x = np.asarray(displacements, dtype=np.float64)
    n = x.shape[1]
    out = np.zeros(n)
    for lag in range(1, n):
        out[lag] = ((x[:, lag:] - x[:, :-lag]) ** 2).sum(axis=2).mean()
    return out


@dataclass(frozen=True)
class DiffusivityFit:
    diffusivity: float  # cm^2/s, may be <= 0 for a non-diffusive run
    intercept: float  # A^2 (vibrational offset)
    fit_start_fs: float
    fit_end_fs: float


def fit_diffusivity(
    msd: np.ndarray, frame_interval_fs: float, start_fraction: float, end_fraction: float
) -> DiffusivityFit:
    """D = slope/6 of a straight line (free intercept) through MSD(t) in the window."""
    if not 0.0 <= start_fraction < end_fraction <= 1.0:
        raise ValueError(
            f"need 0 <= fit_start_fraction < fit_end_fraction <= 1, got "
            f"{start_fraction}, {end_fraction} (md.analysis)"
        )
    n = len(msd)
    lo = int(math.floor(start_fraction * (n - 1)))
    hi = int(math.ceil(end_fraction * (n - 1)))
    if hi - lo < 2:
        raise ValueError(f"MSD fit window holds {hi - lo + 1} points; need >= 3")
    t = np.arange(lo, hi + 1) * frame_interval_fs
    slope, intercept = np.polyfit(t, msd[lo : hi + 1], 1)
    return DiffusivityFit(
        diffusivity=float(slope / 6.0 * A2_PER_FS_TO_CM2_PER_S),
        intercept=float(intercept),
        fit_start_fs=float(t[0]),
        fit_end_fs=float(t[-1]),
    )


def effective_hops(diffusivity: float, n_mobile: int, duration_fs: float, site_distance: float) -> float:
    """He et al. N_eff = N_mobile * MSD(t_total) / a^2, with MSD(t_total) = 6 D t_total.

    Using the fitted D (rather than the noisy single-origin MSD at the full
    duration) gives a smooth estimate; a non-positive D means no hops.
    """
    if diffusivity <= 0.0:
        return 0.0
    msd_total = 6.0 * diffusivity / A2_PER_FS_TO_CM2_PER_S * duration_fs
    return float(n_mobile * msd_total / site_distance**2)


def he_relative_error(n_eff: float) -> float:
    """Relative standard deviation of D (He et al. 2018, eq. 8); inf without hops."""
    if n_eff <= 0.0:
        return math.inf
    return HE_RSD_A / math.sqrt(n_eff) + HE_RSD_B


def nernst_einstein_conductivity(
    diffusivity: float, n_mobile: int, volume_a3: float, temperature: float, charge: int = 1
) -> float:
    """sigma = n q^2 D / (k_B T) in S/cm (Haven ratio 1: tracer D taken as charge D)."""
    n_per_cm3 = n_mobile / (volume_a3 * 1e-24)
    return float(n_per_cm3 * (charge * E_CHARGE) ** 2 * diffusivity / (K_B_J * temperature))


@dataclass(frozen=True)
class RunResult:
    material: str
    formula: str
    temperature: float
    source: str
    n_sites: int
    n_mobile: int
    n_frames: int
    duration_ps: float
    diffusivity: float  # cm^2/s
    n_eff: float
    rel_error: float
    log10_d: float  # nan when D <= 0
    log10_d_err: float
    conductivity: float  # S/cm at the run temperature
    msd_fit_end: float  # A^2, mobile species, at the fit-window end
    framework_msd_fit_end: float  # A^2, the most mobile framework species
    framework_species: str
    framework_ratio: float  # D_framework / D_mobile
    reasons: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not self.reasons


def analyze_run(
    traj: Trajectory,
    *,
    mobile_specie: str,
    fit_start_fraction: float,
    fit_end_fraction: float,
    site_distance: float,
    max_relative_error: float,
    min_mobile_ions: int,
    min_frames: int,
    min_duration_ps: float,
    framework_msd_floor: float,
    framework_ratio_max: float,
    drift_correction: bool,
) -> RunResult:
    """Diffusivity, its He et al. error, conductivity, and every exclusion reason of one run.

    With ``drift_correction`` every MSD (mobile and framework species alike)
    is taken on framework-drift-corrected displacements (module docstring).
    """
    if drift_correction:
        traj = remove_framework_drift(traj, mobile_specie)
    species = np.asarray(traj.species)
    mobile = species == mobile_specie
    n_mobile = int(mobile.sum())
    reasons: list[str] = []
    if traj.n_frames < min_frames:
        reasons.append(REASON_FEW_FRAMES)
    if traj.duration_fs / 1000.0 < min_duration_ps:
        reasons.append(REASON_SHORT)
    if n_mobile < min_mobile_ions:
        reasons.append(REASON_FEW_IONS)
    nan = float("nan")
    if n_mobile == 0 or traj.n_frames < 4:
        # nothing to fit at all; still a reported row
        return RunResult(
            traj.material, traj.formula, traj.temperature, traj.source, len(species), n_mobile,
            traj.n_frames, traj.duration_fs / 1000.0, nan, 0.0, math.inf, nan, nan, nan, nan, nan,
            "", nan, tuple(reasons or [REASON_FEW_FRAMES]),
        )  # fmt: skip

    def window_fit(sel: np.ndarray) -> tuple[DiffusivityFit, float]:
        msd = msd_multi_origin(traj.displacements[sel])
        fit = fit_diffusivity(msd, traj.frame_interval_fs, fit_start_fraction, fit_end_fraction)
        end = int(round(fit.fit_end_fs / traj.frame_interval_fs))
        return fit, float(msd[end])

    fit, msd_end = window_fit(mobile)
    d = fit.diffusivity
    n_eff = effective_hops(d, n_mobile, traj.duration_fs, site_distance)
    rsd = he_relative_error(n_eff)
    if not rsd <= max_relative_error:
        reasons.append(REASON_NON_DIFFUSIVE)

    # framework mobility: the most mobile non-mobile species
    fw_msd, fw_ratio, fw_species = 0.0, 0.0, ""
    for sp in sorted(set(species[~mobile].tolist())):
        sp_fit, sp_msd = window_fit(species == sp)
        ratio = sp_fit.diffusivity / d if d > 0 else math.inf
        if sp_msd > fw_msd:
            fw_msd, fw_ratio, fw_species = sp_msd, ratio, sp
    if fw_msd > framework_msd_floor and fw_ratio > framework_ratio_max:
        reasons.append(REASON_FRAMEWORK)

    log10_d = math.log10(d) if d > 0 else nan
    log10_err = rsd / math.log(10) if math.isfinite(rsd) else nan
    return RunResult(
        material=traj.material,
        formula=traj.formula,
        temperature=float(traj.temperature),
        source=traj.source,
        n_sites=len(species),
        n_mobile=n_mobile,
        n_frames=traj.n_frames,
        duration_ps=traj.duration_fs / 1000.0,
        diffusivity=d,
        n_eff=n_eff,
        rel_error=rsd,
        log10_d=log10_d,
        log10_d_err=log10_err,
        conductivity=nernst_einstein_conductivity(d, n_mobile, traj.volume, traj.temperature),
        msd_fit_end=msd_end,
        framework_msd_fit_end=fw_msd,
        framework_species=fw_species,
        framework_ratio=fw_ratio,
        reasons=tuple(reasons),
    )


def flag_cell_mismatch(results: list[RunResult]) -> list[RunResult]:
    """Flag runs whose cell (site count) differs from the majority of the material's runs.

    A run on a different, e.g. truncated, cell is not the same simulation
    series and cannot share an Arrhenius line with the others.
    """
    by_material: dict[str, list[int]] = {}
    for r in results:
        by_material.setdefault(r.material, []).append(r.n_sites)
    out = []
    for r in results:
        sizes = by_material[r.material]
        values, counts = np.unique(sizes, return_counts=True)
        majority = int(values[np.argmax(counts)])
        if counts.max() > len(sizes) / 2 and r.n_sites != majority:
            r = with_reason(r, REASON_CELL_MISMATCH)
        out.append(r)
    return out


def with_reason(r: RunResult, reason: str) -> RunResult:
    return replace(r, reasons=(*r.reasons, reason))


@dataclass(frozen=True)
class ArrheniusFit:
    material: str
    formula: str
    n_points: int
    temperatures: tuple[float, ...]  # used in the fit
    dropped_temperatures: tuple[float, ...]  # dropped as non-Arrhenius by the chi^2 rule
    ea: float  # eV
    ea_err: float  # 1 sigma
    ea_ci: tuple[float, float]
    log10_d_target: float  # at the target temperature
    log10_d_target_err: float
    log10_sigma_target: float
    log10_sigma_target_err: float
    log10_sigma_target_ci: tuple[float, float]
    chi2_red: float  # nan for 2 points
    p_value: float  # nan for 2 points
    status: str  # "ok" | "insufficient_points"


def weighted_arrhenius(
    temperatures: np.ndarray, diffusivities: np.ndarray, rel_errors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Weighted least squares of ln D = ln D0 - Ea/(k_B T).

    Returns (params [ln D0, -Ea/k_B], covariance, chi^2, dof). sigma(ln D) is
    the relative error of D. With dof > 0 the covariance is inflated by
    max(1, chi^2/dof): scatter beyond the stated errors widens the interval,
    scatter below them never narrows it.
    """
    t = np.asarray(temperatures, dtype=float)
    y = np.log(np.asarray(diffusivities, dtype=float))
    s = np.asarray(rel_errors, dtype=float)
    if len(t) < 2 or np.unique(t).size < 2:
        raise ValueError("an Arrhenius fit needs at least two distinct temperatures")
    if np.any(~np.isfinite(y)) or np.any(~(s > 0)) or np.any(~np.isfinite(s)):
        raise ValueError("Arrhenius fit needs positive D and finite positive errors")
    x = np.column_stack([np.ones_like(t), 1.0 / t])
    w = 1.0 / s**2
    xtwx = x.T @ (x * w[:, None])
    cov = np.linalg.inv(xtwx)
    params = cov @ (x.T @ (w * y))
    resid = y - x @ params
    chi2 = float((w * resid**2).sum())
    dof = len(t) - 2
    if dof > 0:
        cov = cov * max(1.0, chi2 / dof)
    return params, cov, chi2, dof


def fit_material(
    runs: list[RunResult],
    *,
    min_points: int,
    p_min: float,
    target_temperature: float,
    confidence: float,
    n_mobile: int,
    volume_a3: float,
) -> tuple[ArrheniusFit, list[RunResult]]:
    """Arrhenius fit over the usable runs of one material, with the stated chi^2 rule.

    Rule: while >= 3 points remain and the weighted fit is inconsistent with
    the points' own errors (chi^2 p-value < ``p_min``), the highest
    temperature point is dropped (marked ``non_arrhenius_dropped``) and the fit
    redone: the hottest runs are the likeliest to have changed mechanism and
    the farthest from room temperature. ``n_mobile``/``volume_a3`` give the
    carrier density for the Nernst-Einstein conductivity.

    Returns the fit and the runs with the dropped ones re-flagged.
    """
    material = runs[0].material
    formula = runs[0].formula
    usable = sorted((r for r in runs if r.usable), key=lambda r: r.temperature)
    dropped: list[float] = []
    nan = float("nan")
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    if len({r.temperature for r in usable}) < max(min_points, 2):
        fit = ArrheniusFit(
            material, formula, len(usable), tuple(r.temperature for r in usable), (), nan, nan,
            (nan, nan), nan, nan, nan, nan, (nan, nan), nan, nan, "insufficient_points",
        )  # fmt: skip
        return fit, runs
    while True:
        t = np.array([r.temperature for r in usable])
        params, cov, chi2, dof = weighted_arrhenius(
            t, np.array([r.diffusivity for r in usable]), np.array([r.rel_error for r in usable])
        )
        p = float(stats.chi2.sf(chi2, dof)) if dof > 0 else nan
        if dof > 0 and p < p_min and len(usable) > max(min_points, 2):
            dropped.append(usable[-1].temperature)
            usable = usable[:-1]
            continue
        break
    ea = float(-params[1] * K_B_EV)
    ea_err = float(math.sqrt(cov[1, 1]) * K_B_EV)
    g = np.array([1.0, 1.0 / target_temperature])
    ln_d = float(g @ params)
    ln_d_err = float(math.sqrt(g @ cov @ g))
    sigma = nernst_einstein_conductivity(math.exp(ln_d), n_mobile, volume_a3, target_temperature)
    log10_sigma = math.log10(sigma)
    log10_err = ln_d_err / math.log(10)
    fit = ArrheniusFit(
        material=material,
        formula=formula,
        n_points=len(usable),
        temperatures=tuple(float(x) for x in t),
        dropped_temperatures=tuple(dropped),
        ea=ea,
        ea_err=ea_err,
        ea_ci=(ea - z * ea_err, ea + z * ea_err),
        log10_d_target=ln_d / math.log(10),
        log10_d_target_err=log10_err,
        log10_sigma_target=log10_sigma,
        log10_sigma_target_err=log10_err,
        log10_sigma_target_ci=(log10_sigma - z * log10_err, log10_sigma + z * log10_err),
        chi2_red=chi2 / dof if dof > 0 else nan,
        p_value=p,
        status="ok",
    )
    flagged = [
        with_reason(r, REASON_NON_ARRHENIUS) if r.usable and r.temperature in dropped else r
        for r in runs
    ]
    return fit, flagged
