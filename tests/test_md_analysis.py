"""MSD -> diffusivity -> Arrhenius analysis on synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from superionic.md import analysis as A

D_A2_PER_FS = 2.0e-3  # A^2/fs -> 2e-4 cm^2/s
FRAME_FS = 100.0

RUN_KW = dict(
    mobile_specie="Li",
    fit_start_fraction=0.1,
    fit_end_fraction=0.5,
    site_distance=3.0,
    max_relative_error=1.0,
    min_mobile_ions=8,
    min_frames=50,
    min_duration_ps=20.0,
    framework_msd_floor=1.0,
    framework_ratio_max=0.05,
    drift_correction=True,
)


def random_walk(rng, n_sites, n_frames, d_a2_fs=D_A2_PER_FS, frame_fs=FRAME_FS):
    steps = rng.normal(0.0, math.sqrt(2.0 * d_a2_fs * frame_fs), size=(n_sites, n_frames - 1, 3))
    return np.concatenate([np.zeros((n_sites, 1, 3)), np.cumsum(steps, axis=1)], axis=1)


def make_traj(rng, n_li=32, n_fw=32, n_frames=400, temperature=1000.0, fw_d=0.0, material="mp-x"):
    li = random_walk(rng, n_li, n_frames)
    if fw_d > 0:
        fw = random_walk(rng, n_fw, n_frames, d_a2_fs=fw_d)
    else:
        fw = rng.normal(0.0, 0.1, size=(n_fw, n_frames, 3))  # vibration only
        fw[:, 0] = 0.0
    return A.Trajectory(
        material=material,
        temperature=temperature,
        species=("Li",) * n_li + ("S",) * n_fw,
        displacements=np.concatenate([li, fw]),
        frame_interval_fs=FRAME_FS,
        volume=2000.0,
        formula="LiS",
        source=f"{material}/{temperature:g}K",
    )


def test_fft_msd_equals_brute_force():
    rng = np.random.default_rng(0)
    x = random_walk(rng, 5, 37)
    np.testing.assert_allclose(A.msd_multi_origin(x), A.msd_brute_force(x), rtol=1e-10, atol=1e-10)


def test_random_walk_diffusivity_recovered():
    rng = np.random.default_rng(1)
    x = random_walk(rng, 200, 500)
    msd = A.msd_multi_origin(x)
    fit = A.fit_diffusivity(msd, FRAME_FS, 0.1, 0.5)
    expected = D_A2_PER_FS * A.A2_PER_FS_TO_CM2_PER_S
    assert fit.diffusivity == pytest.approx(expected, rel=0.08)
    # and the He et al. error of such a run is small and positive
    n_eff = A.effective_hops(fit.diffusivity, 200, 499 * FRAME_FS, 3.0)
    assert 0.04 < A.he_relative_error(n_eff) < 0.1


def test_he_error_formula():
    assert A.he_relative_error(100.0) == pytest.approx(3.43 / 10 + 0.04)
    assert A.he_relative_error(0.0) == math.inf
    assert A.effective_hops(-1e-6, 10, 1000.0, 3.0) == 0.0


def test_nernst_einstein_units():
    # 1e-5 cm^2/s, 1 Li per 100 A^3 (1e22 /cm^3), 300 K -> n e^2 D / kT
    sigma = A.nernst_einstein_conductivity(1e-5, 1, 100.0, 300.0)
    expected = 1e22 * (1.602176634e-19) ** 2 * 1e-5 / (1.380649e-23 * 300.0)
    assert sigma == pytest.approx(expected)
    assert 0.61 < sigma < 0.63  # ~0.62 S/cm


def test_good_run_is_used():
    r = A.analyze_run(make_traj(np.random.default_rng(2)), **RUN_KW)
    assert r.usable, r.reasons
    assert r.diffusivity == pytest.approx(D_A2_PER_FS * 0.1, rel=0.2)


def test_truncated_trajectory_rejected():
    r = A.analyze_run(make_traj(np.random.default_rng(3), n_frames=20), **RUN_KW)
    assert not r.usable
    assert A.REASON_FEW_FRAMES in r.reasons and A.REASON_SHORT in r.reasons


def test_truncated_cell_rejected():
    rng = np.random.default_rng(4)
    runs = [A.analyze_run(make_traj(rng, temperature=t), **RUN_KW) for t in (800.0, 1100.0, 1400.0)]
    small = A.analyze_run(make_traj(rng, n_li=2, n_fw=6, temperature=1700.0), **RUN_KW)
    flagged = A.flag_cell_mismatch([*runs, small])
    assert all(r.usable for r in flagged[:3])
    assert A.REASON_FEW_IONS in flagged[3].reasons
    assert A.REASON_CELL_MISMATCH in flagged[3].reasons


def test_melting_framework_rejected():
    r = A.analyze_run(make_traj(np.random.default_rng(5), fw_d=0.5 * D_A2_PER_FS), **RUN_KW)
    assert A.REASON_FRAMEWORK in r.reasons


def test_non_diffusive_run_rejected():
    rng = np.random.default_rng(6)
    t = make_traj(rng)
    still = np.concatenate([rng.normal(0, 0.1, size=(32, 400, 3)), t.displacements[32:]])
    still[:, 0] = 0.0
    r = A.analyze_run(
        A.Trajectory("m", 800.0, t.species, still, FRAME_FS, 2000.0, "LiS", "m/800K"), **RUN_KW
    )
    assert A.REASON_NON_DIFFUSIVE in r.reasons


def _synthetic_runs(ea, temps, rsd, rng, material="mp-syn", outlier=None):
    d0 = 1e-2
    runs = []
    for t in temps:
        d = d0 * math.exp(-ea / (A.K_B_EV * t)) * math.exp(rng.normal(0, rsd))
        if outlier is not None and t == max(temps):
            d *= outlier
        runs.append(
            A.RunResult(material, "LiS", t, f"{material}/{t:g}K", 64, 32, 300, 60.0, d, 100.0, rsd,
                        math.log10(d), rsd / math.log(10), 0.0, 10.0, 0.1, "S", 0.0, ())  # fmt: skip
        )
    return runs


def test_arrhenius_recovers_known_ea_exactly_without_noise():
    runs = _synthetic_runs(0.30, [800.0, 1100.0, 1400.0, 1700.0], 0.2, np.random.default_rng(0))
    exact = [
        A.RunResult(r.material, r.formula, r.temperature, r.source, 64, 32, 300, 60.0,
                    1e-2 * math.exp(-0.30 / (A.K_B_EV * r.temperature)), 100.0, 0.2, 0, 0, 0, 0, 0,
                    "S", 0, ())  # fmt: skip
        for r in runs
    ]
    fit, _ = A.fit_material(exact, min_points=2, p_min=0.01, target_temperature=300.0,
                            confidence=0.95, n_mobile=32, volume_a3=2000.0)  # fmt: skip
    assert fit.ea == pytest.approx(0.30, abs=1e-9)
    d300 = 1e-2 * math.exp(-0.30 / (A.K_B_EV * 300.0))
    assert fit.log10_d_target == pytest.approx(math.log10(d300), abs=1e-9)
    expected_sigma = A.nernst_einstein_conductivity(d300, 32, 2000.0, 300.0)
    assert fit.log10_sigma_target == pytest.approx(math.log10(expected_sigma), abs=1e-9)


def test_arrhenius_ci_covers_true_ea_on_noisy_data():
    covered = 0
    for seed in range(40):
        runs = _synthetic_runs(0.25, [700.0, 900.0, 1100.0, 1300.0, 1500.0], 0.15,
                               np.random.default_rng(seed))  # fmt: skip
        fit, _ = A.fit_material(runs, min_points=2, p_min=0.0, target_temperature=300.0,
                                confidence=0.95, n_mobile=32, volume_a3=2000.0)  # fmt: skip
        covered += fit.ea_ci[0] <= 0.25 <= fit.ea_ci[1]
    assert covered >= 34  # nominal 95% of 40 = 38; inflation only widens


def test_non_arrhenius_high_temperature_point_dropped():
    runs = _synthetic_runs(0.30, [800.0, 1100.0, 1400.0, 1700.0], 0.05, np.random.default_rng(1),
                           outlier=20.0)  # fmt: skip
    fit, flagged = A.fit_material(runs, min_points=2, p_min=0.01, target_temperature=300.0,
                                  confidence=0.95, n_mobile=32, volume_a3=2000.0)  # fmt: skip
    assert fit.dropped_temperatures == (1700.0,)
    assert fit.ea == pytest.approx(0.30, abs=0.05)
    assert A.REASON_NON_ARRHENIUS in flagged[-1].reasons


def test_too_few_points_gives_no_fit():
    runs = _synthetic_runs(0.30, [800.0], 0.1, np.random.default_rng(2))
    fit, _ = A.fit_material(runs, min_points=2, p_min=0.01, target_temperature=300.0,
                            confidence=0.95, n_mobile=32, volume_a3=2000.0)  # fmt: skip
    assert fit.status == "insufficient_points" and math.isnan(fit.ea)


def test_truncated_aimd_file_is_named(tmp_path):
    import gzip

    import pytest

    from superionic.md.io import read_aimd_dict

    path = tmp_path / "800K.json.gz"
    path.write_bytes(gzip.compress(b'"{\\"structure\\": 1, ' * 50)[:60])
    with pytest.raises(ValueError, match="800K.json.gz"):
        read_aimd_dict(path)
