"""AIMD reader on files in the published (double-encoded JSON) format, the
AIMD stage end to end, and the comparison report."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
from omegaconf import OmegaConf
from pymatgen.core import Lattice, Structure

from superionic.config import compose
from superionic.io import write_csv, write_json
from superionic.md import aimd, mlip, report, runlength
from superionic.md import tables as T
from superionic.md.analysis import K_B_EV, REASON_CELL_MISMATCH
from superionic.md.io import load_aimd, starting_structures

EA = 0.30


def write_aimd_file(path, rng, temperature, n_li=16, n_s=16, n_frames=300):
    """A DiffusionAnalyzer-like dict, JSON-encoded twice and gzipped, as published."""
    n = n_li + n_s
    structure = Structure(Lattice.cubic(10.0), ["Li"] * n_li + ["S"] * n_s, rng.random((n, 3)))
    d_a2_fs = 1e-2 * math.exp(-EA / (K_B_EV * temperature))
    frame_fs = 2.0 * 100
    li = np.cumsum(rng.normal(0, math.sqrt(2 * d_a2_fs * frame_fs), size=(n_li, n_frames, 3)), axis=1)
    s = rng.normal(0, 0.1, size=(n_s, n_frames, 3))
    disp = np.concatenate([li, s])
    disp -= disp[:, :1]
    payload = {
        "@module": "pymatgen.analysis.diffusion.analyzer",
        "@class": "DiffusionAnalyzer",
        "structure": structure.as_dict(),
        "displacements": disp.tolist(),
        "specie": "Li",
        "temperature": temperature,
        "time_step": 2.0,
        "step_skip": 100,
        "min_obs": 30,
        "smoothed": "constant",
        "avg_nsteps": 1000,
        "lattices": [structure.lattice.matrix.tolist()],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(json.dumps(payload), fh)


@pytest.fixture(scope="module")
def aimd_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("aimd")
    rng = np.random.default_rng(0)
    for t in (800, 1100, 1400):
        write_aimd_file(root / "mp-1" / f"{t}K.json.gz", rng, float(t))
    # a truncated run on a smaller cell, as mp-19896/1700K
    write_aimd_file(root / "mp-1" / "1700K.json.gz", rng, 1700.0, n_li=2, n_s=2)
    return root


def small_cfg(tmp_path, aimd_dir):
    cfg = compose()
    OmegaConf.update(cfg, "md.aimd.data", str(aimd_dir))
    OmegaConf.update(cfg, "md.report_dir", str(tmp_path / "reports" / "md"))
    OmegaConf.update(cfg, "md.report", str(tmp_path / "reports" / "md.md"))
    OmegaConf.update(cfg, "md.out_dir", str(tmp_path / "data"))
    OmegaConf.update(cfg, "md.validation_dir", str(tmp_path / "reports" / "md-validation"))
    OmegaConf.update(cfg, "tracking.tracking_uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    OmegaConf.update(cfg, "tracking.artifact_dir", str(tmp_path / "mlartifacts"))
    return cfg


def test_reader_and_analysis_recover_ea(aimd_dir):
    loaded = load_aimd(aimd_dir)
    assert [round(t.temperature) for t, _ in loaded] == [800, 1100, 1400, 1700]
    traj = loaded[0][0]
    assert traj.frame_interval_fs == 200.0 and traj.displacements.shape == (32, 300, 3)
    cfg = compose()
    results, fits = T.analyze_trajectories([t for t, _ in loaded], cfg.md.analysis, 20.0)
    assert REASON_CELL_MISMATCH in results[-1].reasons
    assert [r.usable for r in results] == [True, True, True, False]
    (fit,) = fits
    assert fit.status == "ok" and fit.n_points == 3
    assert fit.ea_ci[0] < EA < fit.ea_ci[1]
    assert len(starting_structures(aimd_dir)["mp-1"]) == 32  # the majority cell, not the truncated one


@pytest.mark.slow
def test_aimd_stage_and_report(tmp_path, aimd_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small_cfg(tmp_path, aimd_dir)
    aimd.run_stage(cfg)
    out = tmp_path / "reports" / "md"
    runs, fits = T.read_csv(out / aimd.RUNS_CSV), T.read_csv(out / aimd.FITS_CSV)
    assert len(runs) == 4 and runs[T.COL_USED].sum() == 3
    metrics = json.loads((out / aimd.METRICS_JSON).read_text())
    assert metrics["n_runs_excluded"] == 1 and metrics["n_materials_fitted"] == 1
    assert (out / aimd.FIGURE).stat().st_size > 0
    # stand-in MLIP outputs (a "softer" potential: higher D at every T, lower Ea)
    mruns = runs[runs[T.COL_USED]].copy()
    mruns[T.COL_LOG10_D] += 0.3
    write_csv(mruns, out / mlip.RUNS_CSV)
    mfits = fits.copy()
    mfits[T.COL_EA] -= 0.1
    write_csv(mfits, out / mlip.FITS_CSV)
    write_json({"label": "test runs", "notes": ["MP_API_KEY not set: 3 candidate structures NOT fetched"]},
                 out / mlip.METRICS_JSON)  # fmt: skip
    write_json({"device": "cpu", "threads": 1, "ms_per_step": 1.0, "us_per_atom_step": 1.0,
                  "total_wall_s": 1.0}, out / mlip.TIMING_JSON)  # fmt: skip
    report.run_stage(cfg)
    text = (tmp_path / "reports" / "md.md").read_text()
    assert "mp-1" in text and "MP_API_KEY not set" in text and "test runs" in text
    assert f"(md/{aimd.FIGURE})" in text
    cmp = json.loads((out / report.METRICS_JSON).read_text())
    assert cmp["dEa_weighted_mean_eV"] == pytest.approx(-0.1, abs=1e-6)
    assert cmp["dlog10_D_same_T_weighted_mean"] == pytest.approx(0.3, abs=1e-6)
    assert "underestimate is resolved" in text or "not resolved" in text
    assert "### The validation protocol" not in text  # no validation outputs yet

    # the same outputs standing in for a `make md-validation` run of one material
    import shutil

    vdir = tmp_path / "reports" / "md-validation"
    shutil.copytree(out, vdir)
    vcfg = compose(["md=validation", "md.mlip.runs_only=[mp-1]"])
    OmegaConf.save(vcfg, vdir / report.VALIDATION_PARAMS)
    write_json({"device": "cpu", "threads": 1, "n_jobs": 2, "total_wall_s": 7200.0, "extended_runs": 2,
                "redrawn_runs": 1, "runs": [{"steps": 1000, "n_atoms": 100}]}, vdir / mlip.TIMING_JSON)  # fmt: skip
    # the protocol's temperatures are those the stand-in MLIP runs used: mp-1 is complete
    OmegaConf.update(cfg, "md.validation_temperatures", sorted(mruns[T.COL_T].astype(float).tolist()))
    plan = report.validation_plan(cfg, runs, fits, with_run_settings=True)
    extra = plan.iloc[[0]].assign(**{T.COL_MATERIAL: "mp-2", T.COL_FORMULA: "Li2S", "atom_steps": 3.6e5})
    import pandas as pd

    v = report.validation_context(cfg.md, pd.concat([plan, extra], ignore_index=True))
    assert v["runs_only"] == ["mp-1"] and [r["material"] for r in v["rows"]] == ["mp-1"]
    assert v["pooled"]["value"] == pytest.approx(-0.1, abs=1e-6)
    err = cmp["dEa_weighted_mean_err_eV"]
    assert v["pooled"]["low"] == pytest.approx(-0.1 - 1.959964 * err, abs=1e-6)
    assert v["rate"] == pytest.approx(1e5 / 7200) and [x["material"] for x in v["left"]] == ["mp-2"]
    assert v["left_hours"] == pytest.approx(3.6e5 / (1e5 / 7200) / 3600)
    # what run length would resolve ±0.1 eV: from the MLIP fit's own points and the AIMD fit's error
    row = v["rows"][0]
    assert row["t_aimd"] == row["t_mlip"] != ""
    points = report.fit_points(T.read_csv(vdir / mlip.RUNS_CSV), T.read_csv(vdir / mlip.FITS_CSV),
                               T.read_csv(vdir / report.COMPARISON_CSV))  # fmt: skip
    assert points["mp-1"].temperatures == tuple(mruns[T.COL_T].astype(float))
    assert row["length_factor"] == runlength.length_factor_for_ea([points["mp-1"]], target_half_width=0.1,
                                                                  z=report.Z95)  # fmt: skip
    assert (v["pooled_factor"] > 1) == (v["pooled"]["half_width"] > 0.1)
    # every fitted run above the protocol's RSD target is named, with the length that reaches it
    vruns = T.read_csv(vdir / mlip.RUNS_CSV)
    short = vruns[vruns[T.COL_USED].astype(bool) & (vruns[T.COL_RSD] > cfg.md.validation_rsd)]
    assert [(x["temperature"], x["rsd"]) for x in v["above_rsd"]] == list(zip(short[T.COL_T], short[T.COL_RSD]))
    assert all(x["factor"] > 1 for x in v["above_rsd"])
    # the factor with the AIMD runs growing too is given only where MLIP runs alone never do it
    assert (row["length_factor_with_aimd"] is None) == math.isfinite(row["length_factor"])
    assert (v["pooled_factor_with_aimd"] is None) == math.isfinite(v["pooled_factor"])
    assert (v["more_atom_steps"] > 0) == (v["pooled_factor"] > 1)
    # the plan with a material the validation run left out
    real_plan = report.validation_plan
    monkeypatch.setattr(report, "validation_plan", lambda *a, **k: pd.concat([real_plan(*a, **k), extra], ignore_index=True))
    report.run_stage(cfg)
    text = (tmp_path / "reports" / "md.md").read_text()
    assert "### The validation protocol, run in part" in text and "md.mlip.runs_only=mp-1" in text
    assert "(md-validation)" in text and "Not yet run: mp-2 (Li2S) at " in text
    assert "| MLIP runs × longer to resolve it |" in text
    assert "The numbers to act on come from the validation protocol below" in text
    # how the lengthened runs were continued, and what the continuation without an end state cannot claim
    assert "2 lengthened by continuing the finished shorter run" in text
    assert "1 of them saved before end states were kept and so continued with momenta drawn afresh" in text
    # a validation run's own report does not summarise itself
    assert report.validation_context(OmegaConf.merge(cfg.md, {"report_dir": str(vdir)}), plan) is None


def test_barrier_statement_directions():
    low = {"n_materials_both_fits": 3, "dEa_weighted_mean_eV": -0.1, "dEa_weighted_mean_err_eV": 0.02,
           "n_materials_mlip_lower_Ea": 3, "Ea_ratio_mlip_over_aimd_median": 0.7}  # fmt: skip
    assert "resolved at 2σ" in report.barrier_statement(low, "x")
    high = dict(low, dEa_weighted_mean_eV=0.1)
    assert "HIGHER" in report.barrier_statement(high, "x")
    assert "not measured" in report.barrier_statement({}, "x")


def test_pooled_mean_widens_by_the_birge_ratio_only_when_values_scatter():
    errors = np.array([0.05, 0.05, 0.05])
    mean, err, n, birge = report.weighted_mean(np.array([-0.10, -0.11, -0.09]), errors)
    assert (mean, n) == (pytest.approx(-0.10), 3) and birge < 1
    assert err == pytest.approx(0.05 / math.sqrt(3))
    mean, err, n, birge = report.weighted_mean(np.array([0.0, -0.3, -0.6]), errors)
    assert mean == pytest.approx(-0.3) and birge == pytest.approx(math.sqrt((0.3**2 * 2 / 0.05**2) / 2))
    assert err == pytest.approx(birge * 0.05 / math.sqrt(3))
    assert report.weighted_mean(np.array([0.2]), np.array([0.1]))[1:] == (pytest.approx(0.1), 1, 1.0)
    assert math.isnan(report.weighted_mean(np.array([np.nan]), np.array([0.1]))[0])


def test_validation_pooled_figure_leave_one_out_and_zero_barrier_flag(tmp_path):
    import pandas as pd

    vdir = tmp_path / "v"
    vdir.mkdir()
    mats = ["mp-1", "mp-2", "mp-3"]
    ea_aimd, ea_mlip = np.array([0.3, 0.25, 0.4]), np.array([0.2, 0.01, 0.3])
    comp = pd.DataFrame({
        T.COL_MATERIAL: mats, T.COL_FORMULA: ["A", "B", "C"], report.C_EA_AIMD: ea_aimd,
        report.C_EA_AIMD_ERR: 0.03, report.C_EA_MLIP: ea_mlip, report.C_EA_MLIP_ERR: [0.04, 0.05, 0.04],
        report.C_DEA: ea_mlip - ea_aimd, report.C_DEA_ERR: [0.05, 0.058, 0.05], "mlip_status": "ok",
    })  # fmt: skip
    pairs = pd.DataFrame(columns=[T.COL_MATERIAL, T.COL_T, "dlog10_D_mlip_minus_aimd", report.C_LD_AIMD_ERR,
                                  report.C_LD_MLIP_ERR])  # fmt: skip
    write_csv(comp, vdir / report.COMPARISON_CSV)
    write_csv(pairs, vdir / report.PAIRS_CSV)
    write_json(report.comparison_metrics(comp, pairs), vdir / report.METRICS_JSON)
    runs = pd.DataFrame({T.COL_MATERIAL: [], T.COL_T: [], T.COL_USED: [], T.COL_DURATION: [], T.COL_N_SITES: [],
                         T.COL_RSD: [], T.COL_FORMULA: [], "excluded_because": []})  # fmt: skip
    write_csv(runs, vdir / mlip.RUNS_CSV)
    write_csv(pd.DataFrame({T.COL_MATERIAL: mats, T.COL_CHI2_RED: 1.0}), vdir / mlip.FITS_CSV)
    OmegaConf.save(compose(["md=validation"]), vdir / report.VALIDATION_PARAMS)
    md = OmegaConf.merge(compose([]).md, {"validation_dir": str(vdir), "report_dir": str(tmp_path / "r")})
    v = report.validation_context(md, pd.DataFrame())
    # B's CHGNet barrier (0.01 ± 0.098 at 95 %) is not resolved from zero
    assert v["zero_barrier"] == ["B"]
    dea, err = comp[report.C_DEA].to_numpy(), comp[report.C_DEA_ERR].to_numpy()
    assert [w["formula"] for w in v["without"]] == ["A", "B", "C"]
    for k, w in enumerate(v["without"]):
        keep = np.arange(3) != k
        assert w["value"] == pytest.approx(report.weighted_mean(dea[keep], err[keep])[0])
    # B's ΔEa (-0.24) against A's and C's (-0.1): a scatter beyond the errors widens the pooled interval
    assert v["birge"] > 1 and 0 < v["birge_p"] < 1
    assert v["pooled"]["half_width"] == pytest.approx(report.Z95 * report.weighted_mean(dea, err)[1], abs=1e-5)
