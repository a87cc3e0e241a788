"""Structural descriptors from reported lattice data (Xu 2020 "structural properties")."""

from __future__ import annotations

import math

from matminer.featurizers.base import BaseFeaturizer


class LatticeFeaturizer(BaseFeaturizer):
    """a, c, a/c, cell volume and space-group number from reported values.

    Inputs are the values a source reports (no structure relaxation). A
    missing input gives NaN for the features that need it; a/c needs both.
    """

    def featurize(self, a: float, c: float, volume: float, space_group: float) -> list[float]:
        def clean(x: float) -> float:
            return float(x) if x is not None and not math.isnan(float(x)) else math.nan

        a, c, volume, space_group = clean(a), clean(c), clean(volume), clean(space_group)
        ratio = a / c if c and not math.isnan(a) and not math.isnan(c) else math.nan
        return [a, c, ratio, volume, space_group]

    def feature_labels(self) -> list[str]:
        return ["lattice a", "lattice c", "lattice a/c", "cell volume", "space group number"]

    def citations(self) -> list[str]:
        return ["Xu, Zong & Hippalgaonkar, J. Phys. Commun. 4, 055015 (2020)"]

    def implementors(self) -> list[str]:
        return ["superionic"]
