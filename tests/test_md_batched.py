"""Batched MLIP MD: same trajectories as the standard ASE loop, mixed sizes, stage wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf
from pymatgen.core import Lattice, Structure

from superionic.md import batched, mlip


@pytest.fixture(scope="module")
def model():
    import torch

    torch.set_num_threads(1)
    return mlip.load_model("0.3.0", "cpu")


def licl() -> Structure:
    # rock-salt LiCl conventional cell, 8 atoms
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.13), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def mlip_config(**overrides) -> dict:
    """md.mlip for simulate_all at test size: the fast engine, 2-step samples, no runs yet."""
    return {"model": "0.3.0", "device": "cpu", "threads": 1, "n_jobs": 1, "timestep_fs": 2.0, "batch": True,
            "equilibration_steps": 2, "sample_interval": 2, "progress_interval": 4, "thermostat": "bussi",
            "thermostat_time_fs": 50.0, "supercell_min_length": 0.0, "checkpoint_interval": 0, "materials": [],
            "temperatures": [], "steps": 0, "runs_only": [], "runs": [], **overrides}  # fmt: skip


def jobs(thermostat: str) -> list[dict]:
    """Three runs of two sizes (8 and 16 atoms), two temperatures, two lengths."""
    specs = [("LiCl", licl(), 600.0, 8), ("LiCl-2x", licl() * (2, 1, 1), 900.0, 12), ("LiCl", licl(), 1200.0, 12)]
    return [dict(structure=s, material=m, temperature=t, timestep_fs=2.0, equilibration_steps=3, steps=n,
                 sample_interval=2, thermostat=thermostat, thermostat_time_fs=50.0, rng=mlip.run_seed(0, m, t),
                 progress_interval=4) for m, s, t, n in specs]  # fmt: skip


@pytest.mark.parametrize("thermostat", ["bussi", "langevin"])
def test_batched_matches_standard_ase_loop(model, thermostat):
    calc = mlip.make_calculator(model, "cpu")
    standard = [mlip.run_nvt(job.pop("structure"), calc, **job) for job in jobs(thermostat)]
    fast = batched.run_nvt_batched(jobs(thermostat), batched.BatchedPotential(model, "cpu"),
                                   equilibration_tau_fs=mlip.EQUILIBRATION_TAU_FS)  # fmt: skip
    assert len(fast) == 3
    for (a, ha, ta), (b, hb, tb) in zip(standard, fast, strict=True):
        assert (a.material, a.temperature, a.species) == (b.material, b.temperature, b.species)
        assert a.displacements.shape == b.displacements.shape
        assert a.frame_interval_fs == b.frame_interval_fs and a.volume == pytest.approx(b.volume)
        # same random stream and integrator: only float32 rounding of the batched forward differs
        np.testing.assert_allclose(b.origin, a.origin, atol=1e-6)
        np.testing.assert_allclose(b.displacements, a.displacements, atol=1e-4)
        np.testing.assert_allclose(b.cell, a.cell)
        assert list(ha) == list(hb)
        np.testing.assert_array_equal(ha["step"], hb["step"])
        np.testing.assert_allclose(hb["potential_energy"], ha["potential_energy"], atol=1e-3)
        np.testing.assert_allclose(hb["temperature"], ha["temperature"], rtol=1e-4)
        assert (ta.steps, ta.n_atoms) == (tb.steps, tb.n_atoms) and tb.wall_s > 0


@pytest.mark.parametrize("per_cell", [True, False])
def test_batched_forces_match_chgnet_on_mixed_sizes(model, per_cell):
    """An 8- and a 16-atom cell, one forward each (the CPU path) or one forward for both (the GPU
    path, run here on the CPU): CHGNet's own energies and forces of each."""
    potential = batched.BatchedPotential(model, "cpu")
    potential.per_cell = per_cell
    small, big = licl(), licl() * (2, 1, 1)
    small.perturb(0.1, min_distance=0.05)
    big.perturb(0.1, min_distance=0.05)
    graphs = [model.graph_converter(s) for s in (small, big)]
    energies, forces = potential(graphs)
    assert [f.shape for f in forces] == [(8, 3), (16, 3)]
    for s, e, f in zip((small, big), energies, forces, strict=True):
        ref = model.predict_structure(s, task="ef")
        np.testing.assert_allclose(f, ref["f"], atol=1e-4)
        assert e == pytest.approx(float(ref["e"]) * len(s), abs=1e-3)


def test_batch_groups_balance_cost_and_cover_every_job():
    # the costliest job alone against the rest, as even as whole jobs allow
    assert mlip.batch_groups([7.0, 2.5, 2.2, 2.0, 1.5, 1.5], 2) == [[0, 5], [1, 2, 3, 4]]
    assert mlip.batch_groups([1.0, 1.0, 1.0, 1.0, 1.0], 2) == [[0, 2, 4], [1, 3]]
    assert mlip.batch_groups([1.0, 2.0], 8) == [[1], [0]]
    assert mlip.batch_groups([3.0, 1.0, 2.0], 1) == [[0, 1, 2]]


def test_simulate_all_batched_writes_the_standard_run_files(model, tmp_path):
    """The stage path with md.mlip.batch and md.mlip.runs: same files and formats as the ASE loop."""
    from ase.io import read

    base = mlip_config(runs=[{"material": "LiCl", "temperature": 600.0, "steps": 6},
                             {"material": "LiCl", "temperature": 900.0, "steps": 4}])  # fmt: skip
    out = {}
    for batch in (False, True):
        cfg = OmegaConf.create({**base, "batch": batch})
        out[batch], unstable, timings = mlip.simulate_all({"LiCl": licl()}, cfg, 0, tmp_path / str(batch))
        assert [t["steps"] for t in timings] == [6, 4]
    for a, b in zip(out[False], out[True], strict=True):
        assert a.source == b.source
        np.testing.assert_allclose(a.displacements, b.displacements, atol=1e-4)
    files = sorted(p.name for p in (tmp_path / "True" / "LiCl").iterdir())
    # the fast engine also keeps each run's end state, from which a longer run continues
    assert files == sorted([p.name for p in (tmp_path / "False" / "LiCl").iterdir()] + ["600K_end.npz", "900K_end.npz"])
    assert files == ["600K.extxyz", "600K.npz", "600K_end.npz", "600K_log.csv", "600K_run.json",
                     "900K.extxyz", "900K.npz", "900K_end.npz", "900K_log.csv", "900K_run.json"]  # fmt: skip
    frames = read(tmp_path / "True" / "LiCl" / "600K.extxyz", index=":")
    assert len(frames) == 4 and frames[-1].info["step"] == 6


def test_resume_reuses_matching_runs_only(model, tmp_path):
    """md.mlip.resume: a finished run with the same record is reused, a changed one re-run, a stale one removed."""
    base = mlip_config(runs=[{"material": "LiCl", "temperature": 600.0, "steps": 6},
                             {"material": "LiCl", "temperature": 900.0, "steps": 4}])  # fmt: skip
    first, _, _ = mlip.simulate_all({"LiCl": licl()}, OmegaConf.create(base), 0, tmp_path, resume=True)
    stale = tmp_path / "LiCl" / "1200K.npz"
    stale.write_bytes(b"from another configuration")
    changed = dict(base, runs=[{"material": "LiCl", "temperature": 600.0, "steps": 6},
                               {"material": "LiCl", "temperature": 900.0, "steps": 8}])  # fmt: skip
    again, _, timings = mlip.simulate_all({"LiCl": licl()}, OmegaConf.create(changed), 0, tmp_path, resume=True,
                                          previous_wall_s={"LiCl/600K": 12.5})  # fmt: skip
    assert [t["reused"] for t in timings] == [True, False]
    assert timings[0]["wall_s"] == 12.5 and [t["steps"] for t in timings] == [6, 8]
    np.testing.assert_allclose(again[0].displacements, first[0].displacements, atol=1e-6)
    assert again[1].n_frames == 5 and not stale.exists()
    # runs_only leaves a protocol run out: its files stay for a later piece
    two = dict(changed, runs=[*changed["runs"], {"material": "LiBr", "temperature": 600.0, "steps": 2}])
    both = {"LiCl": licl(), "LiBr": licl()}
    mlip.simulate_all(both, OmegaConf.create(two), 0, tmp_path, resume=True)
    _, _, timings = mlip.simulate_all(both, OmegaConf.create(dict(two, runs_only=["LiCl"])), 0, tmp_path,
                                      resume=True)  # fmt: skip
    assert [t["reused"] for t in timings] == [True, True] and (tmp_path / "LiBr" / "600K_run.json").exists()
    # a different seed is a different run
    _, _, timings = mlip.simulate_all({"LiCl": licl()}, OmegaConf.create(changed), 1, tmp_path, resume=True)
    assert [t["reused"] for t in timings] == [False, False]


def test_runs_list_and_materials_are_exclusive():
    cfg = OmegaConf.create({"runs": [{"material": "a", "temperature": 800.0, "steps": 10}], "materials": ["a"],
                            "temperatures": [], "steps": 0, "runs_only": []})  # fmt: skip
    with pytest.raises(ValueError, match="md.mlip.runs"):
        mlip.run_list(cfg)
    product = OmegaConf.create({"runs": [], "materials": [], "temperatures": [1400.0, 800.0], "steps": 7,
                                "runs_only": []})  # fmt: skip
    assert mlip.run_list(product) == [(None, 800.0, 7), (None, 1400.0, 7)]
    with pytest.raises(ValueError, match="runs_only selects among md.mlip.runs"):
        mlip.run_list(OmegaConf.merge(product, {"runs_only": ["a"]}))
    runs = [{"material": m, "temperature": t, "steps": 10} for m in ("a", "b") for t in (800.0, 1100.0)]
    part = OmegaConf.create({"runs": runs, "materials": [], "temperatures": [], "steps": 0, "runs_only": ["b"]})
    assert mlip.run_list(part) == [("b", 800.0, 10), ("b", 1100.0, 10)]
    with pytest.raises(ValueError, match=r"\['c'\] not among"):
        mlip.run_list(OmegaConf.merge(part, {"runs_only": ["c"]}))
    # one run by its name, beside a whole material
    assert mlip.run_list(OmegaConf.merge(part, {"runs_only": ["a/1100K", "b"]})) == [
        ("a", 1100.0, 10), ("b", 800.0, 10), ("b", 1100.0, 10)]
    with pytest.raises(ValueError, match=r"\['a/900K'\] not among"):
        mlip.run_list(OmegaConf.merge(part, {"runs_only": ["a/900K"]}))


@pytest.mark.parametrize("thermostat", ["bussi", "langevin"])
def test_a_run_restarted_from_its_checkpoint_follows_the_same_trajectory(model, thermostat):
    potential = batched.BatchedPotential(model, "cpu")
    saved: dict[int, list[dict]] = {}
    with_checkpoints = [dict(job, checkpoint_interval=4) for job in jobs(thermostat)]
    whole = batched.run_nvt_batched(with_checkpoints, potential, equilibration_tau_fs=mlip.EQUILIBRATION_TAU_FS,
                                    on_checkpoint=lambda i, state: saved.setdefault(i, []).append(state))  # fmt: skip
    # every 4 production steps, never at the end: 8 steps -> 1, 12 steps -> 2 checkpoints
    assert {i: [int(s["step"]) - 3 for s in states] for i, states in saved.items()} == {0: [4], 1: [4, 8], 2: [4, 8]}
    restarted = [dict(job, restart=saved[i][0]) for i, job in enumerate(jobs(thermostat))]
    resumed = batched.run_nvt_batched(restarted, potential, equilibration_tau_fs=mlip.EQUILIBRATION_TAU_FS)
    for (a, ha, _), (b, hb, _) in zip(whole, resumed, strict=True):
        np.testing.assert_array_equal(b.displacements, a.displacements)
        np.testing.assert_array_equal(b.origin, a.origin)
        for key in ha:
            np.testing.assert_array_equal(hb[key], ha[key])
    with pytest.raises(ValueError, match="multiple of md.mlip.sample_interval"):
        batched.run_nvt_batched([dict(jobs(thermostat)[0], checkpoint_interval=3)], potential,
                                equilibration_tau_fs=mlip.EQUILIBRATION_TAU_FS)  # fmt: skip
    with pytest.raises(ValueError, match="not a sample step"):
        late = dict(saved[1][1], step=np.array(3 + 12))  # the run's last step: nothing left to continue
        batched.run_nvt_batched([dict(jobs(thermostat)[1], restart=late)], potential,
                                equilibration_tau_fs=mlip.EQUILIBRATION_TAU_FS)  # fmt: skip


def test_a_stopped_stage_continues_its_runs_from_their_checkpoints(model, tmp_path, monkeypatch):
    """md.mlip.resume with checkpoint_interval: the stage stopped mid-run continues where it stopped."""
    base = mlip_config(checkpoint_interval=4, runs=[{"material": "LiCl", "temperature": 600.0, "steps": 12}])
    cfg = OmegaConf.create(base)
    uninterrupted, _, timings = mlip.simulate_all({"LiCl": licl()}, cfg, 0, tmp_path / "whole", resume=True)
    assert timings[0]["resumed_after_s"] == 0.0

    real_save = mlip._save_checkpoint

    def save_then_stop(target, state):
        real_save(target, state)
        raise KeyboardInterrupt  # the session ends right after the first checkpoint

    monkeypatch.setattr(mlip, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        mlip.simulate_all({"LiCl": licl()}, cfg, 0, tmp_path / "pieces", resume=True)
    run = tmp_path / "pieces" / "LiCl" / "600K.npz"
    assert mlip.checkpoint_path(run).exists() and not run.exists()
    monkeypatch.setattr(mlip, "_save_checkpoint", real_save)
    # another configuration's checkpoint is not continued
    other = mlip.run_identity({**base, "material": "LiCl", "temperature": 600.0, "steps": 14, "structure": licl()},
                              OmegaConf.create(base), 0)  # fmt: skip
    assert mlip.load_checkpoint(run, other) is None
    with np.load(mlip.checkpoint_path(run)) as saved:
        carried_s = float(saved["elapsed_s"])
    continued, _, timings = mlip.simulate_all({"LiCl": licl()}, cfg, 0, tmp_path / "pieces", resume=True)
    np.testing.assert_array_equal(continued[0].displacements, uninterrupted[0].displacements)
    # the interrupted invocation's time, which no timing file recorded, travels with the checkpoint
    assert carried_s > 0 and timings[0]["resumed_after_s"] == pytest.approx(carried_s, abs=1e-3)
    assert run.exists() and not mlip.checkpoint_path(run).exists()
    with pytest.raises(ValueError, match="needs md.mlip.batch=true"):
        mlip.simulate_all({"LiCl": licl()}, OmegaConf.create(dict(base, batch=False)), 0, tmp_path / "ase")


def test_wall_clock_adds_earlier_and_interrupted_invocations_once():
    previous = {"cumulative_wall_s": 1000.0}
    fresh = {"reused": False, "resumed_after_s": 0.0}
    # nothing reused: the earlier timing file is another protocol's, not added
    assert mlip.wall_clock(50.0, previous, [fresh])["cumulative_wall_s"] == 50.0
    reused = {"reused": True, "resumed_after_s": 0.0}
    # two runs continued from one interrupted invocation's side-by-side batches: its time counts once
    resumed = [{"reused": False, "resumed_after_s": 300.0}, {"reused": False, "resumed_after_s": 280.0}]
    w = mlip.wall_clock(50.0, previous, [reused, *resumed])
    assert w == {"total_wall_s": 50.0, "cumulative_wall_s": 1350.0, "interrupted_wall_s": 300.0,
                 "reused_runs": 1, "extended_runs": 0, "redrawn_runs": 0, "resumed_runs": 2}  # fmt: skip
    # a run extending a finished shorter run brings the earlier invocation's time, as a reused one does
    extended = {"reused": False, "resumed_after_s": 0.0, "extended_from_steps": 6, "momenta_redrawn": True}
    w = mlip.wall_clock(50.0, previous, [extended])
    assert (w["cumulative_wall_s"], w["extended_runs"], w["redrawn_runs"]) == (1050.0, 1, 1)
    # timing files written before checkpoints carried their time read as nothing interrupted
    assert mlip.wall_clock(50.0, {"total_wall_s": 70.0}, [{"reused": True}])["cumulative_wall_s"] == 120.0


def test_a_finished_run_extended_from_its_end_state_is_the_longer_run(model, tmp_path):
    """md.mlip.resume with more steps: a finished run continues from its end state instead of starting afresh."""
    def runs(steps: int):
        return OmegaConf.create(mlip_config(runs=[{"material": "LiCl", "temperature": 600.0, "steps": steps}]))

    whole, _, _ = mlip.simulate_all({"LiCl": licl()}, runs(10), 0, tmp_path / "whole", resume=True)
    mlip.simulate_all({"LiCl": licl()}, runs(6), 0, tmp_path / "pieces", resume=True)
    run = tmp_path / "pieces" / "LiCl" / "600K.npz"
    with np.load(mlip.end_state_path(run)) as end:
        earlier_s = float(end["elapsed_s"])
    longer, _, timings = mlip.simulate_all({"LiCl": licl()}, runs(10), 0, tmp_path / "pieces", resume=True)
    assert (timings[0]["reused"], timings[0]["extended_from_steps"], timings[0]["momenta_redrawn"]) == (False, 6, False)
    # the earlier part's wall time is carried, and not counted again as an interrupted invocation
    assert timings[0]["wall_s"] > earlier_s > 0 and timings[0]["resumed_after_s"] == pytest.approx(0.0, abs=1e-6)
    # the first part comes back from its stored (float32) samples; the rest is the same trajectory exactly
    np.testing.assert_array_equal(longer[0].displacements.astype(np.float32), whole[0].displacements.astype(np.float32))
    np.testing.assert_array_equal(longer[0].displacements[:, 4:], whole[0].displacements[:, 4:])
    saved, _ = mlip.load_trajectory(run)
    np.testing.assert_array_equal(saved.displacements, whole[0].displacements.astype(np.float32))
    record = json.loads(mlip.run_record_path(run).read_text(encoding="utf-8"))
    assert record[mlip.CONTINUED_FROM] == {"steps": 6, "exact": True} and record["steps"] == 10
    # the extended run is now the finished 10-step run: reused as it is, its record still saying how it was made
    _, _, timings = mlip.simulate_all({"LiCl": licl()}, runs(10), 0, tmp_path / "pieces", resume=True)
    assert timings[0]["reused"] and (timings[0]["extended_from_steps"], timings[0]["momenta_redrawn"]) == (6, False)
    # not the same run cut shorter (another seed, or shorter than saved): not extended
    identity = json.loads(mlip.run_record_path(run).read_text(encoding="utf-8"))
    identity.pop(mlip.CONTINUED_FROM)
    assert mlip.extension_state(run, dict(identity, seed=1, steps=14), None) is None
    assert mlip.extension_state(run, dict(identity, steps=8), None) is None


def test_a_finished_run_without_an_end_state_continues_with_fresh_momenta(model, tmp_path):
    """A run saved before end states were kept: its samples stay, the rest is a statistically valid continuation."""
    def runs(steps: int):
        return OmegaConf.create(mlip_config(checkpoint_interval=4,
                                            runs=[{"material": "LiCl", "temperature": 900.0, "steps": steps}]))

    short, _, _ = mlip.simulate_all({"LiCl": licl()}, runs(6), 0, tmp_path, resume=True)
    run = tmp_path / "LiCl" / "900K.npz"
    mlip.end_state_path(run).unlink()
    longer, thermo, timings = mlip.simulate_all({"LiCl": licl()}, runs(12), 0, tmp_path, resume=True)
    assert (timings[0]["extended_from_steps"], timings[0]["momenta_redrawn"]) == (6, True)
    assert longer[0].n_frames == 7
    stored = short[0].displacements.astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(longer[0].displacements[:, :4], stored)
    # continuous where it was continued: the first new sample is one sample interval on, not a jump
    step = np.linalg.norm(longer[0].displacements[:, 4] - longer[0].displacements[:, 3], axis=1)
    assert np.all(np.isfinite(step)) and step.max() < 0.5
    record = json.loads(mlip.run_record_path(run).read_text(encoding="utf-8"))
    assert record[mlip.CONTINUED_FROM] == {"steps": 6, "exact": False}
    # deterministic: the same continuation again gives the same trajectory
    again_dir = tmp_path / "again"
    mlip.simulate_all({"LiCl": licl()}, runs(6), 0, again_dir, resume=True)
    mlip.end_state_path(again_dir / "LiCl" / "900K.npz").unlink()
    again, _, _ = mlip.simulate_all({"LiCl": licl()}, runs(12), 0, again_dir, resume=True)
    np.testing.assert_array_equal(again[0].displacements, longer[0].displacements)
