"""Applicability domain: how far a query composition lies from the training materials.

Shared by the screening ranking and the generalize stage's trust columns, so
"inside the domain" means the same thing in both: the mean distance to the k
nearest training rows, in features standardized with the training mean and
deviation, against a quantile of the training set's own (leave-one-out)
k-nearest distances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors


def standardize(train: pd.DataFrame, query: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """z-scores with the training mean and deviation; a missing value sits at the mean."""
    mean = train.mean()
    std = train.std(ddof=0).replace(0.0, 1.0)  # constant features carry no distance
    tz = ((train - mean) / std).fillna(0.0).to_numpy(dtype=float)
    qz = ((query - mean) / std).fillna(0.0).to_numpy(dtype=float)
    return tz, qz


def applicability(tz: np.ndarray, qz: np.ndarray, k: int, quantile: float) -> tuple[np.ndarray, float]:
    """Mean distance to the k nearest training rows, and the "far" threshold."""
    if not 0 < quantile < 1:
        raise ValueError(f"screen.ad_quantile must be in (0, 1), got {quantile}")
    if k < 1 or k >= len(tz):
        raise ValueError(f"screen.ad_neighbors must be in [1, {len(tz) - 1}], got {k}")
    nn = NearestNeighbors(n_neighbors=k + 1).fit(tz)
    own, _ = nn.kneighbors(tz)
    # column 0 is the row itself (distance 0): leave it out
    threshold = float(np.quantile(own[:, 1:].mean(axis=1), quantile))
    if len(qz) == 0:
        return np.zeros(0), threshold
    dist, _ = nn.kneighbors(qz, n_neighbors=k)
    return dist.mean(axis=1), threshold
