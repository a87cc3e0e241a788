"""Run-length estimate (He et al. RSD of D) and the md=validation runs it sets."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from superionic.md import aimd, analysis, runlength

from conftest import REPO_ROOT

VALIDATION_MATERIALS = ["mp-532413", "mp-1222492", "mp-676361", "mp-29410", "mp-1106183"]


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


def test_estimate_plans_only_used_runs_and_costs_them():
    runs = pd.DataFrame({
        "material": ["m", "m", "x"], "formula": ["LiX"] * 3, "temperature_K": [800.0, 1100.0, 800.0],
        "n_sites": [100, 100, 50], "n_mobile": [20, 20, 10], "D_cm2_s": [1e-5, 4e-5, 1e-5],
        "used_in_fit": [True, False, True],
    })  # fmt: skip
    plan = runlength.estimate_run_lengths(runs, ["m"], target_rsd=0.3, site_distance=3.0, timestep_fs=2.0,
                                          equilibration_steps=1000, min_duration_ps=20.0, atom_steps_per_s=1000.0,
                                          n_cores=2)  # fmt: skip
    assert list(plan.columns) == list(runlength.COLUMNS) and len(plan) == 1
    row = plan.iloc[0]
    assert row["ps_per_replica"] == pytest.approx(runlength.duration_for_rsd(1e-5, 20, 0.3, 3.0))
    assert row["atom_steps"] == (row["steps_per_replica"] + 1000) * 100
    assert row["wall_h"] == pytest.approx(row["atom_steps"] / 1000.0 / 3600.0)
    assert row["core_h"] == pytest.approx(2 * row["wall_h"])
    assert "1 runs" in runlength.summary_line(plan, 0.3, 1000.0, 2)


def test_validation_config_runs_are_long_enough():
    """md=validation: every AIMD run used in a fit of the 5 materials, each at least as long as the estimate."""
    from superionic.config import compose

    md = compose(["md=validation"]).md
    aimd_runs = pd.read_csv(REPO_ROOT / "reports" / "md" / aimd.RUNS_CSV)
    plan = runlength.estimate_run_lengths(
        aimd_runs, VALIDATION_MATERIALS, target_rsd=0.3, site_distance=md.analysis.site_distance,
        timestep_fs=md.mlip.timestep_fs, equilibration_steps=md.mlip.equilibration_steps,
        min_duration_ps=md.mlip.min_duration_ps, atom_steps_per_s=1.0, n_cores=1,
    )  # fmt: skip
    configured = {(r.material, float(r.temperature)): int(r.steps) for r in md.mlip.runs}
    assert set(configured) == set(zip(plan["material"], plan["temperature_K"], strict=True))
    for r in plan.itertuples(index=False):
        assert configured[(r.material, r.temperature_K)] >= r.steps_per_replica
    assert md.mlip.batch and not md.mlip.materials
    assert all(steps // md.mlip.sample_interval >= md.analysis.min_frames for steps in configured.values())
