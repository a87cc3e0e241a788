"""Li-sublattice structure features on hand-built structures with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from superionic.features.li_sublattice import (
    ANION_RADII,
    LI_SUBLATTICE_FEATURES,
    featurize_cif_dir,
    li_sublattice_features,
)

A = 5.14  # rock-salt LiCl lattice constant, Å
OBELIX_CIFS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "conductivity" / "obelix2025_cifs"


def rock_salt(cation: str | dict[str, float] = "Li", anion: str = "Cl", a: float = A) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_labels_are_prefixed_and_returned_in_order():
    assert all(label.startswith("struct ") for label in LI_SUBLATTICE_FEATURES)
    assert list(li_sublattice_features(rock_salt())) == list(LI_SUBLATTICE_FEATURES)


def test_rock_salt_licl_exact_values():
    f = li_sublattice_features(rock_salt())
    assert f["struct li-li nearest mean"] == pytest.approx(A / math.sqrt(2))
    assert f["struct li-li nearest min"] == pytest.approx(A / math.sqrt(2))
    assert f["struct li neighbours within 3.5"] == 0.0  # a/sqrt(2) = 3.63 Å > 3.5 Å
    assert f["struct li density"] == pytest.approx(4 / A**3)
    assert f["struct li partial fraction"] == 0.0
    assert f["struct volume per anion"] == pytest.approx(A**3 / 4)
    assert f["struct anion packing fraction"] == pytest.approx(4 * 4 / 3 * math.pi * ANION_RADII["Cl"] ** 3 / A**3)
    assert f["struct li-anion nearest mean"] == pytest.approx(A / 2)
    assert f["struct li-anion coordination 3.0"] == pytest.approx(6.0)


def test_li_shell_counts_twelve_fcc_neighbours_when_close_enough():
    a = 4.0  # a/sqrt(2) = 2.83 Å < 3.5 Å: all 12 fcc Li neighbours count
    f = li_sublattice_features(rock_salt(a=a))
    assert f["struct li neighbours within 3.5"] == pytest.approx(12.0)
    assert f["struct li-anion nearest mean"] == pytest.approx(a / 2)


def test_half_occupied_li_halves_density_and_is_partial():
    ordered = li_sublattice_features(rock_salt())
    f = li_sublattice_features(rock_salt({"Li": 0.5, "Na": 0.5}))
    assert f["struct li density"] == pytest.approx(ordered["struct li density"] / 2)
    assert f["struct li partial fraction"] == 1.0
    # Geometry is that of the average structure: distances unchanged.
    assert f["struct li-li nearest mean"] == pytest.approx(A / math.sqrt(2))
    assert f["struct li-anion coordination 3.0"] == pytest.approx(6.0)


def test_li_neighbour_count_is_occupancy_weighted():
    a = 4.0
    f = li_sublattice_features(rock_salt({"Li": 0.5}, a=a))
    assert f["struct li neighbours within 3.5"] == pytest.approx(6.0)  # 12 neighbours x 0.5 Li


def test_structure_without_li_gives_nan_li_features():
    f = li_sublattice_features(rock_salt("Na", "Cl", a=5.64))
    anion_only = {"struct volume per anion", "struct anion packing fraction"}
    for label in LI_SUBLATTICE_FEATURES:
        assert math.isnan(f[label]) is (label not in anion_only), label


def test_structure_without_anions_gives_nan_anion_features():
    f = li_sublattice_features(Structure(Lattice.cubic(3.0), ["Li"], [[0, 0, 0]]))
    assert f["struct li-li nearest mean"] == pytest.approx(3.0)  # its own periodic image
    assert f["struct li neighbours within 3.5"] == pytest.approx(6.0)
    for label in ("struct volume per anion", "struct li-anion nearest mean", "struct li-anion coordination 3.0"):
        assert math.isnan(f[label])


def test_nearest_distances_beyond_first_search_radius():
    f = li_sublattice_features(Structure(Lattice.cubic(20.0), ["Li", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    assert f["struct li-li nearest min"] == pytest.approx(20.0)
    assert f["struct li-anion nearest mean"] == pytest.approx(10 * math.sqrt(3))
    assert f["struct li-anion coordination 3.0"] == 0.0


def test_featurize_cif_dir_reasons(tmp_path):
    cif_dir = tmp_path / "cifs"
    cif_dir.mkdir()
    rock_salt().to(filename=str(cif_dir / "good.cif"))
    (cif_dir / "garbage.cif").write_text("this is not a CIF\n")
    (tmp_path / "escape.cif").write_text((cif_dir / "good.cif").read_text())  # exists, but outside

    ids = ["good", "garbage", "absent", "../escape"]
    frame, failed = featurize_cif_dir(cif_dir, ids)

    assert list(frame.index) == ids
    assert list(frame.columns) == list(LI_SUBLATTICE_FEATURES)
    assert frame.loc["good", "struct li-anion nearest mean"] == pytest.approx(A / 2)
    assert set(failed) == {"garbage", "absent", "../escape"}
    assert failed["absent"] == "missing"
    assert failed["../escape"] == "outside cif dir"
    assert failed["garbage"].startswith("unreadable")
    assert frame.loc[["garbage", "absent", "../escape"]].isna().all().all()


def test_featurize_cif_dir_keeps_partial_occupancy(tmp_path):
    rock_salt({"Li": 0.5, "Na": 0.5}).to(filename=str(tmp_path / "mixed.cif"))
    frame, failed = featurize_cif_dir(tmp_path, ["mixed"])
    assert failed == {}
    assert frame.loc["mixed", "struct li partial fraction"] == 1.0
    assert frame.loc["mixed", "struct li density"] == pytest.approx(2 / A**3)


@pytest.mark.skipif(not OBELIX_CIFS.is_dir(), reason="OBELiX CIFs not available")
def test_real_obelix_cifs_give_finite_values():
    ids = sorted(p.stem for p in OBELIX_CIFS.glob("*.cif"))[:2]
    frame, failed = featurize_cif_dir(OBELIX_CIFS, ids)
    assert failed == {}
    li_rows = frame[frame["struct li density"].notna()]
    assert len(li_rows) >= 1
    assert np.isfinite(li_rows.to_numpy()).all()
