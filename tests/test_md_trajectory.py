"""MLIP trajectory files on a synthetic run: extxyz round-trips through ASE and DiffusionAnalyzer,
the MD log has its columns, the npz keeps the starting positions and cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from superionic.md import analysis as A
from superionic.md import io as mdio

CELL = np.array([[6.0, 0.0, 0.0], [0.5, 6.5, 0.0], [0.0, 0.3, 7.0]])  # triclinic on purpose
N_FRAMES = 12
FRAME_FS = 10.0


def synthetic_run(seed: int = 0) -> tuple[A.Trajectory, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    species = ("Li",) * 6 + ("P",) * 2 + ("S",) * 8
    origin = rng.uniform(0.0, 1.0, size=(len(species), 3)) @ CELL
    # Li walk far enough to leave the cell (unwrapped positions must survive the file)
    steps = rng.normal(0.0, 0.8, size=(len(species), N_FRAMES - 1, 3))
    steps[6:] *= 0.05
    disp = np.concatenate([np.zeros((len(species), 1, 3)), np.cumsum(steps, axis=1)], axis=1)
    disp[0, :, 0] += np.linspace(0.0, 8.0, N_FRAMES)  # one ion crosses a whole cell length
    traj = A.Trajectory("mp-x", 900.0, species, disp, FRAME_FS, float(np.linalg.det(CELL)), "Li3PS4", "mp-x/900K",
                        origin=origin, cell=CELL)  # fmt: skip
    step = np.arange(N_FRAMES) * 5
    epot, ekin = rng.normal(-80.0, 0.1, N_FRAMES), rng.uniform(1.0, 2.0, N_FRAMES)
    thermo = {"step": step, "time_fs": step * 2.0, "temperature": rng.uniform(800, 1000, N_FRAMES),
              "potential_energy": epot, "kinetic_energy": ekin, "total_energy": epot + ekin}  # fmt: skip
    return traj, thermo


def test_extxyz_round_trips_through_ase(tmp_path):
    from ase.io import read

    traj, thermo = synthetic_run()
    paths = mdio.save_run_files(tmp_path / "mp-x" / "900K.npz", traj, thermo)
    assert [p.name for p in paths] == ["900K.npz", "900K.extxyz", "900K_log.csv"]
    assert sorted(p.name for p in (tmp_path / "mp-x").iterdir()) == ["900K.extxyz", "900K.npz", "900K_log.csv"]
    frames = read(paths[1], index=":")
    assert len(frames) == N_FRAMES
    positions = np.stack([f.get_positions() for f in frames], axis=1)
    np.testing.assert_allclose(positions, traj.origin[:, None, :] + traj.displacements, atol=1e-7)
    assert positions[0, -1, 0] > CELL[0, 0]  # unwrapped: outside the cell, not folded back
    for f in frames:
        np.testing.assert_allclose(f.cell.array, CELL, atol=1e-7)
        assert f.pbc.all() and f.get_chemical_symbols() == list(traj.species)
    assert [f.info["step"] for f in frames] == thermo["step"].tolist()
    np.testing.assert_allclose([f.info["temperature_K"] for f in frames], thermo["temperature"], rtol=1e-7)
    np.testing.assert_allclose([f.info["time_fs"] for f in frames], thermo["time_fs"])


def test_md_log_columns_and_steps(tmp_path):
    traj, thermo = synthetic_run()
    mdio.save_run_files(tmp_path / "900K.npz", traj, thermo)
    table = pd.read_csv(tmp_path / "900K_log.csv")
    assert list(table.columns) == list(mdio.MD_LOG_COLUMNS.values())
    assert (np.diff(table["step"]) > 0).all()
    np.testing.assert_allclose(table["total_energy_eV"], thermo["total_energy"], rtol=1e-8)
    with pytest.raises(ValueError, match="thermo log lacks"):
        mdio.md_log_frame({"temperature": thermo["temperature"]})


def test_npz_keeps_origin_and_cell(tmp_path):
    traj, thermo = synthetic_run()
    mdio.save_trajectory(tmp_path / "a.npz", traj, thermo)
    back, back_thermo = mdio.load_trajectory(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.origin, traj.origin)
    np.testing.assert_array_equal(back.cell, traj.cell)
    np.testing.assert_allclose(back.displacements, traj.displacements, atol=1e-5)  # stored as float32
    assert sorted(back_thermo) == sorted(thermo)


def test_frames_need_origin_and_cell():
    traj, thermo = synthetic_run()
    bare = A.Trajectory(traj.material, traj.temperature, traj.species, traj.displacements, FRAME_FS, 1.0,
                        source="mp-x/900K")  # fmt: skip
    with pytest.raises(ValueError, match="mp-x/900K: trajectory has no starting positions"):
        mdio.trajectory_frames(bare, thermo)
    with pytest.raises(ValueError, match="one value per frame"):
        mdio.trajectory_frames(traj, {**thermo, "temperature": thermo["temperature"][:3]})


def test_diffusion_analyzer_reads_the_extxyz(tmp_path):
    """DiffusionAnalyzer.from_structures on the extxyz frames recovers our displacements and MSD."""
    analyzer = pytest.importorskip(
        "pymatgen.analysis.diffusion.analyzer", reason="pymatgen-analysis-diffusion not installed (dev extra)"
    )
    from ase.io import read
    from pymatgen.io.ase import AseAtomsAdaptor

    traj, thermo = synthetic_run()
    path = mdio.write_extxyz(tmp_path / "900K.extxyz", traj, thermo)
    structures = [AseAtomsAdaptor.get_structure(a) for a in read(path, index=":")]
    da = analyzer.DiffusionAnalyzer.from_structures(structures, "Li", traj.temperature, time_step=2,
                                                    step_skip=5, smoothed=False)  # fmt: skip
    np.testing.assert_allclose(da.disp, traj.displacements, atol=1e-6)
    # their (single-origin, drift-corrected) MSD vs ours on the same drift-corrected displacements
    corrected = A.remove_framework_drift(traj, "Li")
    li = np.array(traj.species) == "Li"
    np.testing.assert_allclose(da.msd, (corrected.displacements[li] ** 2).sum(axis=2).mean(axis=0), atol=1e-6)
