"""Composition descriptors (CD-145) of Ward et al. 2016 as used by Kang 2023.

Stoichiometry (6) + ElementProperty "magpie" (132) + ValenceOrbital "frac"
(4) + IonProperty (3) = 145 features. One deliberate deviation:
IonProperty(fast=True), because pymatgen's oxidation-state guesser (the
default path) refuses non-integer compositions, and most electrolytes here
are doped (Li1.3Al0.3Ti1.7(PO4)3). fast=True tests charge neutrality with
one oxidation state per element, which differs only for mixed-valence
compounds. Elements without magpie data give NaN, which is kept and imputed
inside each model pipeline (fitted on training rows only).

The features are computed by :mod:`superionic.features.cd145`, array code
that reproduces matminer to rounding (about 100x faster), because screening
pools and exploratory sweeps featurize far more compositions than the
training set. matminer's own featurizer stays here as the reference
(:func:`featurize_compositions_matminer`) that the tests and
``benchmarks/cd145_throughput.py`` hold the fast path to.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matminer.featurizers.base import MultipleFeaturizer
from matminer.featurizers.composition import ElementProperty, IonProperty, Stoichiometry, ValenceOrbital
from pymatgen.core import Composition

from superionic.data.formula import parse_formula
from superionic.features.cd145 import cd145_frame


def composition_featurizer() -> MultipleFeaturizer:
    """The CD-145 feature set, declared once."""
    return MultipleFeaturizer(
        [
            Stoichiometry(),
            ElementProperty.from_preset("magpie", impute_nan=False),
            ValenceOrbital(props=["frac"]),
            IonProperty(fast=True),
        ]
    )


def composition_feature_labels() -> list[str]:
    return composition_featurizer().feature_labels()


def featurize_compositions(compositions: Sequence[Composition]) -> pd.DataFrame:
    """CD-145 for each composition (rows in input order).

    One process: the array code featurises tens of thousands of compositions
    a second, faster than worker processes start.
    """
    return cd145_frame(list(compositions))


def featurize_compositions_matminer(
    compositions: Sequence[Composition], n_jobs: int = 1, chunksize: int = 200
) -> pd.DataFrame:
    """CD-145 by matminer itself, one composition at a time (the reference)."""
    featurizer = composition_featurizer()
    labels = featurizer.feature_labels()
    if not compositions:
        return pd.DataFrame(columns=labels, dtype=float)
    featurizer.set_n_jobs(n_jobs)
    featurizer.set_chunksize(chunksize)
    with warnings.catch_warnings():
        # matminer warns that magpie has no data for some elements; those
        # values are NaN in the output and counted by the featurize stage.
        warnings.filterwarnings("ignore", message=".*impute_nan.*")
        rows = featurizer.featurize_many(list(compositions), ignore_errors=False, pbar=False)
    return pd.DataFrame(np.asarray(rows, dtype=float), columns=labels)


def featurize_formulas(formulas: Sequence[str]) -> pd.DataFrame:
    """CD-145 for formula strings; unreadable formulas give an all-NaN row.

    The index is the input position; use :func:`superionic.data.formula.parse_formula`
    to learn why a row is empty.
    """
    parsed = [parse_formula(f) for f in formulas]
    good = [i for i, p in enumerate(parsed) if p.ok]
    features = featurize_compositions([parsed[i].composition for i in good])
    out = pd.DataFrame(np.nan, index=range(len(formulas)), columns=composition_feature_labels())
    out.iloc[good] = features.to_numpy()
    return out
