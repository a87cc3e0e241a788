"""The one writer per format: JSON, CSV, parquet, text and figures, all atomic.

Every writer writes a temporary file beside the target and renames it onto
the target (:func:`atomic_write`), so a failed or interrupted write (full
disk, file-size limit, killed process) never leaves a truncated file where a
good one was; the rename is the only step that touches the target, and it is
atomic on one file system. Writers create the parent folder and return the
path written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Six significant digits in tables and six decimals in metrics keep a repro's
# last-digit float noise out of git.
FLOAT_FORMAT = "%.6g"
TABLE_DECIMALS = 6
# Figures carry no matplotlib version stamp, so a library upgrade does not change the bytes.
PNG_METADATA = {"Software": None}


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _plain(value: Any, decimals: int | None) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v, decimals) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, decimals) for v in value]
    if isinstance(value, np.bool_ | np.integer):
        return value.item()
    if isinstance(value, float | np.floating) and not isinstance(value, bool):
        value = float(value)
        if not np.isfinite(value):
            return None
        return value if decimals is None else round(value, decimals)
    return value


def write_json(data: Any, path: str | Path, decimals: int | None = None) -> Path:
    """Sorted, indented JSON, non-finite floats as null; ``decimals`` rounds floats
    (None keeps them exact: hyper-parameters, small diffusivities)."""
    text = json.dumps(_plain(data, decimals), indent=2, sort_keys=True, default=str) + "\n"
    return write_text(text, path)


def write_text(text: str, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv(frame: pd.DataFrame, path: str | Path, float_format: str | None = FLOAT_FORMAT) -> Path:
    return atomic_write(
        path, lambda tmp: frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
    )


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: frame.reset_index(drop=True).to_parquet(tmp, index=False))


def write_npy(array: np.ndarray, path: str | Path) -> Path:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.save(handle, array)

    return atomic_write(path, write)


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Compressed npz (written through a handle: ``np.savez`` would add a suffix to the temporary name)."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez_compressed(handle, **arrays)

    return atomic_write(path, write)


def report_path(report_dir: str | Path, name: str) -> Path:
    return Path(report_dir) / name


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (stages draw files, never windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int, metadata: dict | None = None) -> Path:
    """Save a matplotlib figure atomically (the format comes from the target's suffix)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata))


# --- pickled models: written with a SHA-256 beside them, unpickled only when it matches ---
DIGEST_SUFFIX = ".sha256"


def digest_path(model_path: str | Path) -> Path:
    """Where a model file's SHA-256 is recorded (committed beside it)."""
    return Path(f"{model_path}{DIGEST_SUFFIX}")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_digest(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model digest recorded; rerun the stage that wrote the model")
    token = path.read_text(encoding="utf-8").split()[:1]
    if not token or len(token[0]) != 64:
        raise ValueError(f"{path}: not a SHA-256 digest file")
    return token[0]


def save_model(obj: Any, path: str | Path) -> Path:
    """A pickled model file and its SHA-256 digest beside it, each written atomically."""
    import joblib

    path = atomic_write(path, lambda tmp: joblib.dump(obj, tmp, compress=3))
    write_text(f"{file_sha256(path)}  {path.name}\n", digest_path(path))
    return path


def load_verified(path: str | Path, kind: type, key: str, stage: str,
                  expected_sha256: str | None = None, trust: bool = False) -> Any:
    """Unpickle a model file only after its SHA-256 matches the recorded digest.

    Unpickling runs code, so an unverified file is refused before it is
    opened by joblib. ``expected_sha256`` defaults to the digest recorded
    beside ``path``; ``trust=True`` skips the check (a file you made yourself).
    ``key`` and ``stage`` name the config key and the stage that writes it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{key}: {path} not found; run `dvc repro {stage}`")
    if not trust:
        expected = expected_sha256 or read_digest(digest_path(path))
        actual = file_sha256(path)
        if actual != expected:
            raise ValueError(
                f"{path}: SHA-256 {actual[:12]}… does not match the recorded digest {expected[:12]}…; "
                "refusing to unpickle it (--trust-model for a model file you made yourself)"
            )
    import joblib

    obj = joblib.load(path)
    if not isinstance(obj, kind):
        raise TypeError(f"{path} holds a {type(obj).__name__}, not a {kind.__name__}")
    return obj
