"""Learned element embeddings that ship with matminer, pooled over a composition.

CD-145 describes an element by a few dozen hand-picked properties. The
embeddings below were learned elsewhere (Matscholar: word2vec on 3 million
materials-science abstracts, Tshitoyan et al. 2019; MEGNet: a graph network
trained on Materials Project energies, Chen et al. 2019), so two elements
that behave alike in chemistry sit close together even where no tabulated
property says so. That is the kind of similarity an unseen chemical system
or structure family needs.

Contract (as matminer's ``ElementProperty`` with the ``matscholar_el`` /
``megnet_el`` presets and the ``mean`` and ``std_dev`` statistics): the
fraction-weighted mean and matminer's weighted standard deviation (with its
1 / (1 - sum of squared fractions) correction; 0 for one element) of every
embedding dimension. One deliberate difference: an element without an embedding gives
NaN (imputed downstream), where matminer's MEGNet table silently substitutes
the average element.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd


class Embedding(StrEnum):
    MATSCHOLAR = "matscholar"
    MEGNET = "megnet"


# matminer's data file and feature-label source name of each embedding
_FILES = {Embedding.MATSCHOLAR: "matscholar_els.json", Embedding.MEGNET: "megnet_elemental_embedding.json"}
_SOURCES = {Embedding.MATSCHOLAR: "MatscholarElementData", Embedding.MEGNET: "MEGNetElementData"}
STATS = ("mean", "std_dev")


def _data_dir() -> Path:
    import matminer

    return Path(matminer.__file__).parent / "utils" / "data_files"


@lru_cache(maxsize=None)
def embedding_table(name: Embedding | str) -> np.ndarray:
    """(elements x dimensions) embedding in ``lithium.element_symbols`` (Z) order; NaN rows where absent."""
    from pymatgen.core import Element

    from superionic.features.lithium import element_symbols

    name = Embedding(name)
    path = _data_dir() / _FILES[name]
    raw = json.loads(path.read_text())
    if isinstance(raw, list):  # MEGNet's file: row Z holds element Z, row 0 a dummy species
        raw = {Element.from_Z(z).symbol: vector for z, vector in enumerate(raw) if z > 0}
    symbols = element_symbols()
    width = len(next(iter(raw.values())))
    table = np.full((len(symbols), width), np.nan)
    for row, symbol in enumerate(symbols):
        if symbol in raw:
            table[row] = raw[symbol]
    table.setflags(write=False)
    return table


def feature_labels(name: Embedding | str) -> list[str]:
    name = Embedding(name)
    width = embedding_table(name).shape[1]
    return [f"{_SOURCES[name]} {stat} embedding {i}" for stat in STATS for i in range(1, width + 1)]


def embedding_features_from_amounts(amounts: np.ndarray, name: Embedding | str) -> pd.DataFrame:
    """Mean and standard deviation of the embedding over each row of an (n x elements) amount matrix."""
    table = embedding_table(name)
    if amounts.ndim != 2 or amounts.shape[1] != table.shape[0]:
        raise ValueError(f"amount matrix must be (n, {table.shape[0]}) in element_symbols order, got {amounts.shape}")
    total = amounts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = np.where(total > 0, amounts / total, np.nan)
    filled = np.nan_to_num(table)
    mean = weights @ filled
    second = weights @ (filled**2)
    # matminer's weighted std_dev uses the reliability-weights correction 1 / (1 - sum f^2),
    # and 0 for a single element (where that correction is undefined)
    spread = 1.0 - (weights**2).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        correction = np.where(spread > 1e-12, 1.0 / spread, 0.0)
    std = np.sqrt(np.clip(second - mean**2, 0.0, None) * correction)
    missing = (amounts > 0) @ np.isnan(table).any(axis=1)
    values = np.hstack([mean, std])
    values[missing.astype(bool)] = np.nan
    return pd.DataFrame(values, columns=feature_labels(name))
