"""What the classifier track reads from the dataset table, and a synthetic stand-in.

The dataset stage (``superionic.data.dataset``) writes one row per material with
``label``, ``chemsys``, ``family`` and numeric feature columns; this module names
those columns once and builds a synthetic frame of the same shape for tests and
benchmarks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "label"
FORMULA = "formula"
REDUCED_FORMULA = "reduced_formula"
LOG10_SIGMA = "log10_sigma"
CHEMSYS = "chemsys"
FAMILY = "family"


@dataclass
class ClassifierData:
    frame: pd.DataFrame
    feature_columns: list[str]

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.feature_columns]

    @property
    def y(self) -> np.ndarray:
        return self.frame[LABEL].to_numpy(dtype=int)


def prepare(frame: pd.DataFrame, feature_columns: list[str]) -> ClassifierData:
    """Check the table and sort rows so every downstream result is order-independent."""
    missing = [c for c in [LABEL, *feature_columns] if c not in frame.columns]
    if missing:
        raise ValueError(f"dataset lacks columns {missing[:5]} (of {len(missing)})")
    if not feature_columns:
        raise ValueError("dataset has no feature columns")
    labels = set(pd.unique(frame[LABEL].dropna()))
    if frame[LABEL].isna().any() or not labels <= {0, 1, True, False}:
        raise ValueError(f"column {LABEL!r} must be 0/1 without gaps, found {sorted(map(str, labels))}")
    if len(labels) < 2:
        raise ValueError("dataset has a single class: nothing to classify")
    key = REDUCED_FORMULA if REDUCED_FORMULA in frame.columns else None
    frame = frame.sort_values(key).reset_index(drop=True) if key else frame.reset_index(drop=True)
    frame = frame.copy()
    frame[LABEL] = frame[LABEL].astype(int)
    frame[feature_columns] = frame[feature_columns].astype(float)
    return ClassifierData(frame=frame, feature_columns=list(feature_columns))


def load(path: str | Path) -> ClassifierData:
    from superionic.data.dataset import load_dataset

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"paths.dataset: {path} does not exist; run `dvc repro dataset`")
    frame, features = load_dataset(path)
    return prepare(frame, features)


def fingerprint(data: ClassifierData) -> str:
    """Short content hash: an Optuna study is resumed only on identical data."""
    hashed = pd.util.hash_pandas_object(data.frame[[LABEL, *data.feature_columns]], index=False)
    digest = hashlib.sha256(hashed.to_numpy().tobytes())
    digest.update("\x1f".join(data.feature_columns).encode())
    return digest.hexdigest()[:12]


def synthetic_frame(
    n_rows: int = 300, n_features: int = 150, positive_rate: float = 0.35, seed: int = 0,
    nan_rate: float = 0.05,
) -> tuple[pd.DataFrame, list[str]]:
    """A dataset-shaped frame with learnable signal, groups and missing values."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    weights = np.zeros(n_features)
    n_signal = min(10, n_features)
    weights[:n_signal] = rng.normal(scale=1.5, size=n_signal)
    logits = X @ weights
    threshold = np.quantile(logits, 1.0 - positive_rate)
    noisy = logits + rng.normal(scale=1.0, size=n_rows)
    y = (noisy > threshold).astype(int)
    X[rng.random(X.shape) < nan_rate] = np.nan
    features = [f"feat_{i:03d}" for i in range(n_features)]
    frame = pd.DataFrame(X, columns=features)
    elements = ["O", "S", "P", "Zr", "Ti", "Ge", "Cl", "La", "Ta", "Al", "Si", "Nb"]
    n_systems = max(4, n_rows // 6)
    systems = [
        "-".join(sorted({"Li", *rng.choice(elements, size=int(rng.integers(1, 4)), replace=False)}))
        for _ in range(n_systems)
    ]
    frame[CHEMSYS] = [systems[i] for i in rng.integers(0, n_systems, size=n_rows)]
    families = np.array(["NASICON", "Garnet", "Perovskite", "Argyrodite", "LISICON", "Li-halide", None], dtype=object)
    frame[FAMILY] = families[rng.integers(0, len(families), size=n_rows)]
    frame[REDUCED_FORMULA] = [f"Li{i}X" for i in range(n_rows)]
    frame[FORMULA] = frame[REDUCED_FORMULA]
    frame[LOG10_SIGMA] = np.where(y == 1, -3.0, -6.0) + rng.normal(scale=0.3, size=n_rows)
    frame[LABEL] = y
    return frame, features
