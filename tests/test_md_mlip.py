"""MLIP molecular dynamics: a 20-step CHGNet smoke test on a tiny cell, and config guards."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from superionic.md import mlip


@pytest.fixture(scope="module")
def model():
    import torch

    torch.set_num_threads(1)
    return mlip.load_model("0.3.0", "cpu")


def tiny_cell() -> Structure:
    # rock-salt LiCl conventional cell, 8 atoms
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.13), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _run(model, seed=0):
    calc = mlip.make_calculator(model, "cpu")
    return mlip.run_nvt(
        tiny_cell(),
        calc,
        material="LiCl",
        temperature=600.0,
        timestep_fs=2.0,
        equilibration_steps=4,
        steps=20,
        sample_interval=2,
        thermostat="bussi",
        thermostat_time_fs=50.0,
        rng=mlip.run_seed(seed, "LiCl", 600.0),
        progress_interval=8,
    )


def test_md_smoke_20_steps_deterministic(model, caplog):
    with caplog.at_level(logging.INFO, logger=mlip.__name__):
        traj, thermo, timing = _run(model)
    # progress every 8 steps, rounded up to the 2-step samples, and at the end
    progress = [r.getMessage() for r in caplog.records if "ETA" in r.getMessage()]
    assert [m.split(": step ")[1].split(" ")[0] for m in progress] == ["8/20", "16/20", "20/20"]
    assert progress[-1].startswith("LiCl 600 K: step 20/20 (100%)") and "ETA 0:00:00" in progress[-1]
    assert traj.displacements.shape == (8, 11, 3)
    assert np.all(traj.displacements[:, 0] == 0.0)
    assert np.all(np.isfinite(traj.displacements)) and np.abs(traj.displacements).max() > 0
    assert traj.frame_interval_fs == 4.0 and traj.species.count("Li") == 4
    assert np.all(np.isfinite(thermo["potential_energy"]))
    assert 50.0 < thermo["temperature"][1:].mean() < 2000.0
    assert timing.steps == 20 and timing.ms_per_step > 0
    again, _, _ = _run(model)
    np.testing.assert_array_equal(traj.displacements, again.displacements)


def test_md_run_files_round_trip_through_ase(model, tmp_path):
    """A real 20-step run saved as the stage saves it: extxyz frames and MD log read back."""
    from ase.io import read

    traj, thermo, _ = _run(model)
    npz, xyz, csv = mlip.save_run_files(mlip.trajectory_path(tmp_path, "cif:LiCl", 600.0), traj, thermo)
    assert npz.name == "600K.npz" and xyz.name == "600K.extxyz" and csv.name == "600K_log.csv"
    frames = read(xyz, index=":")
    assert len(frames) == traj.n_frames == 11
    for i, atoms in enumerate(frames):
        np.testing.assert_allclose(atoms.get_positions(), traj.origin + traj.displacements[:, i], atol=1e-7)
        np.testing.assert_allclose(atoms.cell.array, traj.cell, atol=1e-7)
        assert atoms.pbc.all() and atoms.get_chemical_symbols() == list(traj.species)
        assert atoms.info["step"] == 2 * i and atoms.info["time_fs"] == pytest.approx(4.0 * i)
    table = pd.read_csv(csv)
    assert list(table.columns) == ["step", "time_fs", "temperature_K", "potential_energy_eV",
                                   "kinetic_energy_eV", "total_energy_eV"]
    assert (np.diff(table["step"]) > 0).all() and table["step"].iloc[-1] == 20
    np.testing.assert_allclose(table["total_energy_eV"], table["potential_energy_eV"] + table["kinetic_energy_eV"],
                               rtol=1e-6)
    np.testing.assert_allclose(table["temperature_K"], thermo["temperature"], rtol=1e-7)


def test_progress_line_and_eta():
    assert mlip.progress_line("m 900 K", 250, 1000, 30.0) == "m 900 K: step 250/1000 (25%), elapsed 0:00:30, ETA 0:01:30"
    assert mlip.format_duration(3725.4) == "1:02:05"
    assert mlip.progress_line("m", 0, 10, 0.0).endswith("ETA ?")


def test_calculator_forces_match_full_chgnet_prediction(model):
    from pymatgen.io.ase import AseAtomsAdaptor

    s = tiny_cell()
    s.perturb(0.1, min_distance=0.05)  # deterministic enough: checked against the same structure
    atoms = AseAtomsAdaptor.get_atoms(s)
    atoms.calc = mlip.make_calculator(model, "cpu")
    full = model.predict_structure(s, task="efs")
    np.testing.assert_allclose(atoms.get_forces(), full["f"], atol=1e-5)
    assert atoms.get_potential_energy() == pytest.approx(float(full["e"]) * len(s), abs=1e-4)


def test_cuda_request_fails_clearly_without_gpu():
    import torch

    if torch.cuda.is_available():
        assert mlip.resolve_device("cuda") == "cuda"
    else:
        with pytest.raises(RuntimeError, match="md.mlip.device"):
            mlip.resolve_device("cuda")
    assert mlip.resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="md.mlip.device"):
        mlip.resolve_device("gpu")


def test_supercell_reaches_min_length():
    s = tiny_cell()
    assert len(mlip.supercell_for(s, 0.0)) == 8
    big = mlip.supercell_for(s, 10.0)
    assert len(big) == 64 and min(big.lattice.abc) >= 10.0


def test_unstable_run_detected():
    ok = {"temperature": np.array([500.0, 990.0, 1010.0]), "potential_energy": np.zeros(3)}
    assert mlip.stability_problem(ok, 1000.0) is None
    hot = {"temperature": np.array([500.0, 3000.0, 3100.0]), "potential_energy": np.zeros(3)}
    assert "mean temperature" in mlip.stability_problem(hot, 1000.0)
    nan = {"temperature": np.array([500.0, np.nan]), "potential_energy": np.zeros(2)}
    assert "non-finite" in mlip.stability_problem(nan, 1000.0)


def test_candidates_without_key_are_reported(tmp_path, monkeypatch):
    csv = tmp_path / "candidates.csv"
    csv.write_text("task_id\nmp-1\nmp-2\n", encoding="utf-8")
    monkeypatch.delenv("MP_API_KEY", raising=False)
    structures, notes = mlip.candidate_structures(str(csv), "task_id")
    assert structures == {}
    assert any("MP_API_KEY not set" in n and "2 candidate" in n for n in notes)
    with pytest.raises(ValueError, match="candidates_id_column"):
        mlip.candidate_structures(str(csv), "material_id")
    assert mlip.candidate_structures(None, "task_id") == ({}, [])


def test_configs_compose():
    from superionic.config import compose

    default = compose()
    assert default.md.mlip.device == "cpu" and 0 < len(default.md.mlip.materials) < 9
    assert default.md.mlip.min_duration_ps < default.md.aimd.min_duration_ps  # short runs, labelled
    prod = compose(["md=production"])
    assert prod.md.mlip.device == "cuda" and list(prod.md.mlip.materials) == []
    assert len(prod.md.mlip.temperatures) == 4
    assert prod.md.mlip.steps * prod.md.mlip.timestep_fs / 1000 >= prod.md.aimd.min_duration_ps


@pytest.mark.slow
def test_runs_on_a_two_worker_dask_cluster_match_in_process(tmp_path):
    """The scheduler path (cluster.kind=address) against a real two-worker cluster started here."""
    import dask
    from distributed import LocalCluster
    from omegaconf import OmegaConf

    from superionic.cluster import WORKER_SETTINGS

    base = {"model": "0.3.0", "device": "cpu", "threads": 1, "temperatures": [600.0, 900.0], "timestep_fs": 2.0,
            "equilibration_steps": 2, "steps": 8, "sample_interval": 2, "progress_interval": 4, "thermostat": "bussi",
            "thermostat_time_fs": 50.0, "supercell_min_length": 0.0, "checkpoint_interval": 0, "batch": False, "runs": [], "runs_only": [], "materials": []}
    structures = {"LiCl": tiny_cell()}
    serial, _, _ = mlip.simulate_all(structures, OmegaConf.create({**base, "n_jobs": 1}), 0, tmp_path / "a")
    with dask.config.set(WORKER_SETTINGS), LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                          dashboard_address=None) as running:
        cluster = OmegaConf.create({"kind": "address", "n_workers": 2, "address": running.scheduler_address,
                                    "connect_timeout_s": 30})
        spread, _, _ = mlip.simulate_all(structures, OmegaConf.create({**base, "n_jobs": 2}), 0, tmp_path / "b",
                                         cluster)
    # the default: local Dask worker processes (no cluster config given)
    local, _, _ = mlip.simulate_all(structures, OmegaConf.create({**base, "n_jobs": 2}), 0, tmp_path / "c")
    for other in (spread, local):
        assert [t.source for t in serial] == [t.source for t in other]
        for a, b in zip(serial, other, strict=True):
            np.testing.assert_allclose(a.displacements, b.displacements, atol=1e-6)


def test_local_workers_keep_the_default_heap_trimming(monkeypatch):
    """Dask's nanny would start workers with MALLOC_TRIM_THRESHOLD_=65536, which made torch MD
    2.6x slower per step; the project's clusters unset it."""
    import os

    from omegaconf import OmegaConf

    from superionic.cluster import open_client

    # a nanny started elsewhere in this process (another test's raw LocalCluster) leaves it set here
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)

    with open_client(OmegaConf.create({"kind": "local", "n_workers": 2})) as client:
        seen = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert len(seen) == 2 and set(seen.values()) == {None}
