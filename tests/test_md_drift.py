"""Framework drift correction: synthetic invariance, and a cross-check against pymatgen's
DiffusionAnalyzer on a real AIMD run (Kang et al. 2023)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from superionic.md import analysis as A
from superionic.md.io import read_aimd_dict, trajectory_from_aimd_dict

REPO_ROOT = Path(__file__).resolve().parents[1]
# one real run: 300 frames every 200 fs, 20 Li in 100 sites (the files are ~1 MB each)
AIMD_RUN = ("mp-532413", "1100K.json.gz")
# the same arithmetic in a different order (FFT here, FFT plus prefix sums there): rounding only
RTOL_EXACT = 1e-9


def aimd_dir() -> Path:
    """As the config: SUPERIONIC_DATA_DIR, else ../shared/datasets from the repo, then aimd/."""
    path = Path(os.environ.get("SUPERIONIC_DATA_DIR", "../shared/datasets"))
    return (path if path.is_absolute() else REPO_ROOT / path) / "aimd"


def run_kw(drift_correction: bool) -> dict:
    return dict(mobile_specie="Li", fit_start_fraction=0.1, fit_end_fraction=0.5, site_distance=3.0,
                max_relative_error=1.0, min_mobile_ions=8, min_frames=50, min_duration_ps=20.0,
                framework_msd_floor=1.0, framework_ratio_max=0.05,
                drift_correction=drift_correction)  # fmt: skip


def synthetic(rng: np.random.Generator, n_frames: int = 200) -> A.Trajectory:
    li = np.cumsum(rng.normal(0.0, 0.6, size=(16, n_frames, 3)), axis=1)
    fw = rng.normal(0.0, 0.1, size=(16, n_frames, 3))
    disp = np.concatenate([li, fw])
    disp -= disp[:, :1]
    return A.Trajectory("m", 1000.0, ("Li",) * 16 + ("S",) * 16, disp, 100.0, 1500.0, "LiS", "m/1000K")


def test_uniform_drift_leaves_corrected_msd_unchanged():
    rng = np.random.default_rng(0)
    traj = synthetic(rng)
    # a whole-cell translation: a steady drift plus a random walk of the centre of mass
    walk = np.cumsum(rng.normal(0.0, 0.3, size=(traj.n_frames, 3)), axis=0) + np.linspace(0, 20, traj.n_frames)[:, None]
    walk -= walk[0]
    drifted = replace(traj, displacements=traj.displacements + walk[None])
    li = np.array(traj.species) == "Li"
    clean = A.remove_framework_drift(traj, "Li")
    moved = A.remove_framework_drift(drifted, "Li")
    np.testing.assert_allclose(A.msd_multi_origin(moved.displacements[li]),
                               A.msd_multi_origin(clean.displacements[li]), rtol=1e-9, atol=1e-9)
    # uncorrected, the drift dominates the MSD
    assert A.msd_multi_origin(drifted.displacements[li])[-1] > 2 * A.msd_multi_origin(traj.displacements[li])[-1]
    # and analyze_run gives the same D with the correction on
    r_clean = A.analyze_run(traj, **run_kw(True))
    r_moved = A.analyze_run(drifted, **run_kw(True))
    assert r_moved.diffusivity == pytest.approx(r_clean.diffusivity, rel=1e-9)
    assert A.analyze_run(drifted, **run_kw(False)).diffusivity > 2 * r_clean.diffusivity


def test_drift_is_the_unweighted_framework_mean_and_a_noop_without_framework():
    disp = np.arange(4 * 3 * 3, dtype=float).reshape(4, 3, 3)
    framework = np.array([False, True, True, False])
    np.testing.assert_allclose(A.framework_drift(disp, framework), disp[1:3].mean(axis=0))
    np.testing.assert_array_equal(A.framework_drift(disp, np.zeros(4, bool)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="framework mask"):
        A.framework_drift(disp, np.ones(3, bool))
    only_li = A.Trajectory("m", 1000.0, ("Li",) * 4, disp, 100.0, 100.0)
    np.testing.assert_array_equal(A.remove_framework_drift(only_li, "Li").displacements, disp)


def test_drift_corrected_d_matches_diffusion_analyzer_on_aimd_run():
    """Same MSD curve and the same D under each fit rule as pymatgen's DiffusionAnalyzer.

    The file stores the analyzer with ``smoothed="constant"`` (MSD averaged over
    100 origins only); we rebuild it with ``smoothed="max"`` and ``min_obs=1``:
    the multiple-time-origin MSD at every lag from 1 ps to the end, which is our
    definition, so the curves must agree to rounding. D is then compared under
    both fit rules: theirs (1/dt-weighted fit over all those lags) applied to our
    MSD, and ours (unweighted fit, 10-50 % window) applied to their MSD.
    """
    analyzer_mod = pytest.importorskip(
        "pymatgen.analysis.diffusion.analyzer", reason="pymatgen-analysis-diffusion not installed (dev extra)"
    )
    path = aimd_dir().joinpath(*AIMD_RUN)
    if not path.exists():
        pytest.skip(f"AIMD data not found at {path} (set SUPERIONIC_DATA_DIR to the shared datasets)")
    d = read_aimd_dict(path)
    traj, _ = trajectory_from_aimd_dict(d, AIMD_RUN[0])
    da = analyzer_mod.DiffusionAnalyzer.from_dict({**d, "smoothed": "max", "min_obs": 1})
    lags = np.rint(np.asarray(da.dt) / traj.frame_interval_fs).astype(int)
    assert lags[0] == 5 and lags[-1] == traj.n_frames - 1 and np.all(np.diff(lags) == 1)
    li = np.array(traj.species) == "Li"

    corrected = A.remove_framework_drift(traj, "Li")
    # the drift itself (DiffusionAnalyzer keeps it as (1, frames, 3))
    np.testing.assert_allclose(traj.displacements - corrected.displacements,
                               np.broadcast_to(da.drift, traj.displacements.shape), atol=1e-12)
    msd = A.msd_multi_origin(corrected.displacements[li])
    np.testing.assert_allclose(msd[lags], da.msd, rtol=RTOL_EXACT)

    # their fit rule on our MSD
    d_theirs_rule, _ = analyzer_mod.get_diffusivity_from_msd(msd[lags], np.asarray(da.dt), "max")
    assert d_theirs_rule == pytest.approx(da.diffusivity, rel=RTOL_EXACT)
    # our fit rule on their MSD (lags below 1 ps are outside our window: NaN proves they are unused)
    theirs_full = np.full(traj.n_frames, np.nan)
    theirs_full[lags] = da.msd
    d_ours_on_theirs = A.fit_diffusivity(theirs_full, traj.frame_interval_fs, 0.1, 0.5).diffusivity
    result = A.analyze_run(traj, **run_kw(True))
    assert result.diffusivity == pytest.approx(d_ours_on_theirs, rel=RTOL_EXACT)

    # without the correction the curves differ measurably (the check above is not vacuous)
    raw = A.msd_multi_origin(traj.displacements[li])
    assert np.abs(raw[lags] / da.msd - 1.0).max() > 1e-3
    assert A.analyze_run(traj, **run_kw(False)).diffusivity != pytest.approx(result.diffusivity, rel=1e-3)
