"""The one writer per format: atomic, deterministic, no stray temporary files."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from superionic import io  # noqa: E402


class Exploding:
    """A frame-like object whose writer dies half-way, like a full disk."""

    def to_csv(self, path, **_):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("partial,")
        raise OSError("No space left on device")


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    io.write_csv(pd.DataFrame({"a": [1.0, 2.0]}), target)
    before = target.read_bytes()
    with pytest.raises(OSError, match="No space"):
        io.write_csv(Exploding(), target)  # type: ignore[arg-type]
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_json_rounding_is_opt_in_and_non_finite_becomes_null(tmp_path):
    data = {"b": np.float64(0.123456789), "a": [np.int64(3), float("nan"), np.bool_(True)], "tiny": 6.6e-8}
    exact = json.loads(io.write_json(data, tmp_path / "exact.json").read_text())
    rounded = json.loads(io.write_json(data, tmp_path / "rounded.json", decimals=6).read_text())
    assert exact == {"a": [3, None, True], "b": 0.123456789, "tiny": 6.6e-8}
    assert rounded["b"] == 0.123457 and rounded["tiny"] == 0.0
    assert (tmp_path / "exact.json").read_text().startswith('{\n  "a"')  # sorted keys


def test_binary_writers_keep_the_target_name(tmp_path):
    # np.save / np.savez add a suffix to a bare file name; the writers must not
    arr = np.arange(6.0).reshape(2, 3)
    npy = io.write_npy(arr, tmp_path / "m.npy")
    npz = io.write_npz(tmp_path / "t.npz", x=arr)
    assert np.array_equal(np.load(npy), arr)
    with np.load(npz) as z:
        assert np.array_equal(z["x"], arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "t.npz"]


def test_figures_are_written_in_the_target_format_and_byte_stable(tmp_path):
    def draw():
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        return fig

    first = io.save_figure(draw(), tmp_path / "a.png", dpi=50, metadata=io.PNG_METADATA).read_bytes()
    second = io.save_figure(draw(), tmp_path / "b.png", dpi=50, metadata=io.PNG_METADATA).read_bytes()
    plt.close("all")
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and first == second


def test_parent_folders_are_created(tmp_path):
    path = io.write_text("x\n", tmp_path / "deep" / "er" / "f.txt")
    assert path.read_text() == "x\n"
