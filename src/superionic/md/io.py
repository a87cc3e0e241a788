"""Readers for the reference AIMD trajectories and the MLIP run files.

AIMD files (Kang et al. 2023, ``aimd/<mp-id>/<T>K.json.gz``) are gzipped JSON
whose content is a JSON *string* holding a serialized pymatgen
``DiffusionAnalyzer`` dict. We read it directly (no dependency on
pymatgen-analysis-diffusion): ``structure`` (Structure dict), ``displacements``
(per site, per frame, Cartesian A, frames every ``step_skip`` MD steps),
``time_step`` (fs), ``temperature`` (K).

MLIP runs are saved three ways (:func:`save_run_files`):

- ``<T>K.npz``: displacements (float32) and the thermo log, what the stage
  analyses;
- ``<T>K.extxyz``: the standard trajectory, one frame per saved sample, with
  the cell, ``pbc`` and the *unwrapped* Cartesian positions (start + true
  displacement, so atoms may lie outside the cell). Unwrapped positions make
  displacements plain differences, with no minimum-image guess: ASE reads them
  as they are, OVITO's displacement modifier needs no unwrapping, and
  ``DiffusionAnalyzer.from_structures`` (which unwraps frame-to-frame by the
  minimum image) reproduces the same displacements. Each frame's comment line
  carries ``step``, ``time_fs``, ``temperature_K`` and the energies;
- ``<T>K_log.csv``: the MD log (:data:`MD_LOG_COLUMNS`) at the same samples.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

import pandas as pd

from superionic.io import atomic_write, write_csv, write_npz
from superionic.md.analysis import Trajectory

AIMD_FILE_RE = re.compile(r"^(\d+(?:\.\d+)?)K\.json\.gz$")
REQUIRED_KEYS = ("structure", "displacements", "temperature", "time_step", "step_skip")
# MD log: thermo key -> CSV column (with unit); ``step`` counts production MD steps
MD_LOG_COLUMNS = {
    "step": "step",
    "time_fs": "time_fs",
    "temperature": "temperature_K",
    "potential_energy": "potential_energy_eV",
    "kinetic_energy": "kinetic_energy_eV",
    "total_energy": "total_energy_eV",
}


def read_aimd_dict(path: Path) -> dict:
    """Decode one AIMD file (double-encoded JSON) into the analyzer dict."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            payload = json.load(fh)
        if isinstance(payload, str):
            payload = json.loads(payload)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        # gzip.BadGzipFile is an OSError; a truncated stream ends in EOFError
        raise ValueError(f"{path}: unreadable AIMD file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a DiffusionAnalyzer dict, got {type(payload).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    return payload


def trajectory_from_aimd_dict(d: dict, material: str, source: str = "") -> tuple[Trajectory, Structure]:
    structure = Structure.from_dict(d["structure"])
    disp = np.asarray(d["displacements"], dtype=np.float64)
    if disp.ndim != 3 or disp.shape[0] != len(structure) or disp.shape[2] != 3:
        raise ValueError(
            f"{source}: displacements shape {disp.shape} does not match {len(structure)} sites"
        )
    # the analyzer stores displacements from the first frame; make that exact
    disp = disp - disp[:, :1, :]
    traj = Trajectory(
        material=material,
        temperature=float(d["temperature"]),
        species=tuple(site.specie.symbol for site in structure),
        displacements=disp,
        frame_interval_fs=float(d["time_step"]) * int(d["step_skip"]),
        volume=float(structure.volume),
        formula=structure.composition.reduced_formula,
        source=source,
        origin=np.asarray(structure.cart_coords, dtype=np.float64),
        cell=np.asarray(structure.lattice.matrix, dtype=np.float64),
    )
    return traj, structure


def list_aimd_files(root: Path) -> list[tuple[str, float, Path]]:
    """(material, temperature, path) for every ``<mp-id>/<T>K.json.gz``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"AIMD folder {root} not found (md.aimd.data)")
    found = []
    for path in root.glob("*/*.json.gz"):
        m = AIMD_FILE_RE.match(path.name)
        if m is None:
            raise ValueError(f"{path}: file name is not <T>K.json.gz")
        found.append((path.parent.name, float(m.group(1)), path))
    if not found:
        raise FileNotFoundError(f"no <mp-id>/<T>K.json.gz files under {root} (md.aimd.data)")
    return sorted(found, key=lambda x: (x[0], x[1]))


def load_aimd(root: Path) -> list[tuple[Trajectory, Structure]]:
    out = []
    for material, _, path in list_aimd_files(root):
        d = read_aimd_dict(path)
        out.append(trajectory_from_aimd_dict(d, material, source=f"{material}/{path.name}"))
    return out


def starting_structures(root: Path, materials: list[str] | None = None) -> dict[str, Structure]:
    """Starting structure of each AIMD material: the cell most of its runs share.

    (One run, mp-19896/1700K, is on a different, 8-atom cell.)
    """
    files = list_aimd_files(root)
    known = sorted({m for m, _, _ in files})
    if materials:
        unknown = sorted(set(materials) - set(known))
        if unknown:
            raise ValueError(f"md.mlip.materials: {unknown} not under {root}; known: {known}")
    wanted = set(materials) if materials else set(known)
    by_material: dict[str, list[Structure]] = {}
    for material, _, path in files:
        if material in wanted:
            by_material.setdefault(material, []).append(
                Structure.from_dict(read_aimd_dict(path)["structure"])
            )
    out = {}
    for material, structures in sorted(by_material.items()):
        sizes = [len(s) for s in structures]
        majority = max(set(sizes), key=lambda n: (sizes.count(n), n))
        out[material] = next(s for s in structures if len(s) == majority)
    return out


def save_trajectory(path: Path, traj: Trajectory, thermo: dict[str, np.ndarray]) -> None:
    """MLIP run -> compressed npz (float32 displacements: 1e-6 A is far below any signal)."""
    # origin and cell in float64: the extxyz frames are rebuilt from them exactly
    extra = {k: np.asarray(v, dtype=np.float64) for k, v in (("origin", traj.origin), ("cell", traj.cell))
             if v is not None}  # fmt: skip
    write_npz(
        path,
        material=np.array(traj.material),
        temperature=np.array(traj.temperature),
        species=np.array(traj.species),
        displacements=traj.displacements.astype(np.float32),
        frame_interval_fs=np.array(traj.frame_interval_fs),
        volume=np.array(traj.volume),
        formula=np.array(traj.formula),
        source=np.array(traj.source),
        **extra,
        **{f"thermo_{k}": np.asarray(v) for k, v in thermo.items()},
    )


def load_trajectory(path: Path) -> tuple[Trajectory, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        traj = Trajectory(
            material=str(z["material"]),
            temperature=float(z["temperature"]),
            species=tuple(str(s) for s in z["species"]),
            displacements=z["displacements"].astype(np.float64),
            frame_interval_fs=float(z["frame_interval_fs"]),
            volume=float(z["volume"]),
            formula=str(z["formula"]),
            source=str(z["source"]),
            origin=z["origin"] if "origin" in z.files else None,
            cell=z["cell"] if "cell" in z.files else None,
        )
        thermo = {k[len("thermo_") :]: z[k] for k in z.files if k.startswith("thermo_")}
    return traj, thermo


def trajectory_frames(traj: Trajectory, thermo: dict[str, np.ndarray]) -> list:
    """ASE Atoms per frame: unwrapped positions (origin + displacement), cell, pbc, thermo in info."""
    from ase import Atoms

    if traj.origin is None or traj.cell is None:
        raise ValueError(f"{traj.source}: trajectory has no starting positions/cell; cannot write frames")
    n = traj.n_frames
    bad = sorted(k for k in MD_LOG_COLUMNS if k in thermo and len(thermo[k]) != n)
    if bad:
        raise ValueError(f"{traj.source}: thermo {bad} do not have one value per frame ({n})")
    frames = []
    for i in range(n):
        atoms = Atoms(symbols=list(traj.species), positions=traj.origin + traj.displacements[:, i, :],
                      cell=traj.cell, pbc=True)  # fmt: skip
        # step stays an integer in the comment line; the rest are floats
        atoms.info.update({MD_LOG_COLUMNS[k]: int(v[i]) if k == "step" else float(v[i])
                           for k, v in thermo.items() if k in MD_LOG_COLUMNS})  # fmt: skip
        atoms.info.setdefault("time_fs", i * traj.frame_interval_fs)
        frames.append(atoms)
    return frames


def write_extxyz(path: Path, traj: Trajectory, thermo: dict[str, np.ndarray]) -> Path:
    """The trajectory as extended XYZ (module docstring), written atomically."""
    from ase.io import write

    frames = trajectory_frames(traj, thermo)
    # the temporary name does not end in .extxyz: name the format
    return atomic_write(path, lambda tmp: write(tmp, frames, format="extxyz"))


def md_log_frame(thermo: dict[str, np.ndarray]) -> pd.DataFrame:
    """The MD log table: :data:`MD_LOG_COLUMNS` in order, the ones the run recorded."""
    missing = [k for k in ("step", "time_fs", "temperature", "potential_energy") if k not in thermo]
    if missing:
        raise ValueError(f"thermo log lacks {missing}; has {sorted(thermo)}")
    return pd.DataFrame({col: np.asarray(thermo[k]) for k, col in MD_LOG_COLUMNS.items() if k in thermo})


def run_file_paths(npz_path: Path) -> list[Path]:
    """npz, extxyz and MD log CSV of one MLIP run, side by side (``<T>K.npz`` -> ``<T>K.extxyz``, ``<T>K_log.csv``)."""
    return [npz_path, npz_path.with_suffix(".extxyz"), npz_path.with_name(f"{npz_path.stem}_log.csv")]


def save_run_files(npz_path: Path, traj: Trajectory, thermo: dict[str, np.ndarray]) -> list[Path]:
    """The files of :func:`run_file_paths` for one MLIP run."""
    npz, xyz, log_csv = run_file_paths(npz_path)
    save_trajectory(npz, traj, thermo)
    write_extxyz(xyz, traj, thermo)
    write_csv(md_log_frame(thermo), log_csv, float_format="%.8g")
    return [npz, xyz, log_csv]
