"""Run-length estimate (He et al. RSD of D) and the md=validation runs it sets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from superionic.md import aimd, analysis, runlength

from conftest import REPO_ROOT

def test_duration_inverts_the_he_rsd():
    # D = 1e-5 cm^2/s, 20 Li, a = 3 A: the analysis' own N_eff and RSD at that length give back the target
    ps = runlength.duration_for_rsd(1e-5, 20, 0.3, 3.0)
    n_eff = analysis.effective_hops(1e-5, 20, ps * 1000.0, 3.0)
    assert analysis.he_relative_error(n_eff) == pytest.approx(0.3)
    assert runlength.hops_needed(0.3) == pytest.approx((3.43 / 0.26) ** 2)
    # replicas pool hops: R replicas need 1/R of the time each
    assert runlength.duration_for_rsd(1e-5, 20, 0.3, 3.0, replicas=4) == pytest.approx(ps / 4)
    assert runlength.duration_for_rsd(-1e-9, 20, 0.3, 3.0) == math.inf
    with pytest.raises(ValueError, match="floor"):
        runlength.hops_needed(0.04)


def test_steps_round_up_and_respect_the_minimum():
    assert runlength.steps_for(33.3, 2.0, 20.0, 500) == 17000
    assert runlength.steps_for(5.0, 2.0, 20.0, 500) == 10000


def test_targets_extrapolate_each_trustworthy_fit_along_its_barrier():
    # one fitted material (Ea 0.3 eV, D(300 K) = 1e-9) and one without a fit
    fits = pd.DataFrame({"material": ["m", "x"], "formula": ["LiX", "LiY"], "status": ["ok", "insufficient_points"],
                         "Ea_eV": [0.3, math.nan], "log10_D_target_cm2_s": [-9.0, math.nan]})  # fmt: skip
    runs = pd.DataFrame({"material": ["m", "m", "x"], "n_sites": [100, 100, 50], "n_mobile": [20, 20, 10],
                         "used_in_fit": [False, True, True]})  # fmt: skip
    targets = runlength.arrhenius_targets(runs, fits, [600.0, 800.0], 300.0)
    assert list(targets.columns) == runlength.TARGET_COLUMNS
    assert list(targets["material"]) == ["m", "m"] and list(targets["temperature_K"]) == [600.0, 800.0]
    expected = [1e-9 * math.exp(-0.3 / analysis.K_B_EV * (1 / t - 1 / 300)) for t in (600.0, 800.0)]
    assert targets["D_cm2_s"].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert set(targets["n_sites"]) == {100} and set(targets["n_mobile"]) == {20}


def test_estimate_costs_each_target():
    targets = pd.DataFrame({"material": ["m"], "formula": ["LiX"], "temperature_K": [800.0], "n_sites": [100],
                            "n_mobile": [20], "D_cm2_s": [1e-5]})  # fmt: skip
    plan = runlength.estimate_run_lengths(targets, target_rsd=0.3, site_distance=3.0, timestep_fs=2.0,
                                          equilibration_steps=1000, min_duration_ps=20.0, atom_steps_per_s=1000.0,
                                          n_cores=2)  # fmt: skip
    assert list(plan.columns) == list(runlength.COLUMNS) and len(plan) == 1
    row = plan.iloc[0]
    assert row["ps_per_replica"] == pytest.approx(runlength.duration_for_rsd(1e-5, 20, 0.3, 3.0))
    assert row["atom_steps"] == (row["steps_per_replica"] + 1000) * 100
    assert row["wall_h"] == pytest.approx(row["atom_steps"] / 1000.0 / 3600.0)
    assert row["core_h"] == pytest.approx(2 * row["wall_h"])
    assert "1 runs" in runlength.summary_line(plan, 0.3, 1000.0, 2)
    with pytest.raises(ValueError, match="D_cm2_s"):
        runlength.estimate_run_lengths(targets.drop(columns="D_cm2_s"), target_rsd=0.3, site_distance=3.0,
                                       timestep_fs=2.0, equilibration_steps=0, min_duration_ps=0.0,
                                       atom_steps_per_s=None, n_cores=1)  # fmt: skip


def test_ea_error_is_the_weighted_fits_own():
    """The closed form equals weighted_arrhenius's covariance (no inflation when chi^2 is small)."""
    temps, rsd = np.array([600.0, 700.0, 800.0]), np.array([0.3, 0.2, 0.25])
    d = np.exp(-0.25 / analysis.K_B_EV / temps)  # exactly Arrhenius: chi^2 = 0
    _, cov, _, _ = analysis.weighted_arrhenius(temps, d, rsd)
    assert runlength.ea_error(temps, rsd) == pytest.approx(math.sqrt(cov[1, 1]) * analysis.K_B_EV, rel=1e-10)
    assert runlength.ea_error(temps, rsd, inflation=4.0) == pytest.approx(2 * runlength.ea_error(temps, rsd))
    assert runlength.ea_error([800.0], [0.3]) == math.inf


def test_length_factor_reaches_the_target_and_no_less():
    fit = runlength.FitPoints((600.0, 700.0, 800.0), (0.3, 0.3, 0.3), 1.0, 0.03)
    factor = runlength.length_factor_for_ea([fit], target_half_width=0.1, z=1.96)
    assert 1.0 < factor < math.inf
    assert 1.96 * fit.difference_error(factor) <= 0.1 < 1.96 * fit.difference_error(factor / 1.01)
    # a longer run at the same D: N_eff grows with the length
    assert runlength.rsd_after_lengthening(0.3, 4.0) == pytest.approx(0.04 + 0.26 / 2)
    # pooling three such materials needs less; a met target needs nothing
    assert runlength.length_factor_for_ea([fit] * 3, target_half_width=0.1, z=1.96) < factor
    assert runlength.length_factor_for_ea([fit], target_half_width=1.0, z=1.96) == 1.0
    # the compared fit's own error alone exceeds the target: no length does it
    wide = runlength.FitPoints((600.0, 800.0), (0.3, 0.3), 1.0, 0.2)
    assert runlength.length_factor_for_ea([wide], target_half_width=0.1, z=1.96) == math.inf
    with pytest.raises(ValueError, match="at least one"):
        runlength.length_factor_for_ea([], target_half_width=0.1, z=1.96)


def test_length_factor_with_the_reference_runs_growing_too():
    reference = runlength.ArrheniusPoints((800.0, 1100.0, 1400.0), (0.4, 0.23, 0.14), 1.5)
    wide = runlength.FitPoints((600.0, 800.0), (0.3, 0.3), 1.0, 0.2)
    both = runlength.FitPoints(wide.temperatures, wide.rel_errors, wide.inflation, 0.2, reference)
    # the reported reference error is the anchor: unchanged at factor 1, shrinking as its runs grow
    assert both.difference_error(1.0) == pytest.approx(wide.difference_error(1.0))
    shrink = reference.ea_error(9.0) / reference.ea_error()
    assert both.difference_error(9.0) == pytest.approx(math.hypot(wide.ea_error(9.0), 0.2 * shrink))
    factor = runlength.length_factor_for_ea([both], target_half_width=0.1, z=1.96)
    assert runlength.length_factor_for_ea([wide], target_half_width=0.1, z=1.96) == math.inf
    assert 1.0 < factor < math.inf
    assert 1.96 * both.difference_error(factor) <= 0.1 < 1.96 * both.difference_error(factor / 1.01)


def test_validation_config_runs_at_the_protocol_temperatures():
    """md=validation: trustworthy AIMD materials at md.validation_temperatures, long enough for the analysis."""
    from superionic.config import compose

    md = compose(["md=validation"]).md
    aimd_fits = pd.read_csv(REPO_ROOT / "reports" / "md" / aimd.FITS_CSV)
    trusted = set(aimd_fits.loc[aimd_fits["status"] == "ok", "material"])
    configured = {(r.material, float(r.temperature)): int(r.steps) for r in md.mlip.runs}
    assert {m for m, _ in configured} <= trusted
    assert {t for _, t in configured} == {float(t) for t in md.validation_temperatures}
    for (material, _), steps in configured.items():
        # every material at every protocol temperature, each run at least the minimum length
        assert {t for m, t in configured if m == material} == {float(t) for t in md.validation_temperatures}
        assert steps * md.mlip.timestep_fs / 1000 >= md.mlip.min_duration_ps
        assert steps // md.mlip.sample_interval >= md.analysis.min_frames
    assert md.mlip.batch and not md.mlip.materials


def test_factor_for_rsd_inverts_the_lengthening():
    factor = runlength.factor_for_rsd(0.406, 0.3)
    assert runlength.rsd_after_lengthening(0.406, factor) == pytest.approx(0.3)
    assert runlength.factor_for_rsd(0.2, 0.3) == 1.0
    with pytest.raises(ValueError, match="floor"):
        runlength.factor_for_rsd(0.3, 0.04)
