"""Rank a doping space: descriptors, the calibrated default model, trust, and an ensemble cross-check.

The ranking model is the ``generalize`` stage's default (chosen by grouped
CV, calibrated on unseen chemical systems): one calibrated model of a few
inner-fold boosters, fast enough for a hundred thousand compositions a
minute. The paper's 200-model GB + LightGBM ensemble is too slow for that on
two cores, so it re-scores the top of the ranking and a random sample; the
sample's rank correlation says how faithfully the fast model orders the
space as the ensemble would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from superionic.data import columns as D
from superionic.explore.space import COMPOSITION, N_DOPANTS, RADIUS_MISMATCH, Enumeration
from superionic.classifier.ensemble import ENSEMBLE_LABEL

P_ENSEMBLE = "p_ensemble"
P_ENSEMBLE_STD = "p_ensemble_std"
NEAREST = "nearest_training"
RANK = "rank"
ENUM_ROW = "enum_row"  # row of the enumeration (and of its descriptor table)
MEASURED_SIGMA = "measured_sigma"  # S/cm, where the composition is a training material
# columns of the measured-materials table (known_points)
KNOWN_FORMULA = "measured"
KNOWN_SIGMA = "sigma_S_cm"
KNOWN_LABEL = "measured_label"
KNOWN_GRID_POINT = "grid_point"


def z_order_amounts(amounts: np.ndarray, elements: Sequence[str]) -> np.ndarray:
    """The space's amount matrix widened to every element in Z order (the Li block's layout)."""
    from superionic.features.lithium import element_symbols

    symbols = element_symbols()
    index = {s: i for i, s in enumerate(symbols)}
    wide = np.zeros((len(amounts), len(symbols)))
    wide[:, [index[e] for e in elements]] = amounts
    return wide


def descriptors(enum: Enumeration, chunk_rows: int = 20_000) -> pd.DataFrame:
    """CD-145 of every composition, straight from the amount matrix (no formula parsing)."""
    from superionic.features.cd145 import cd145_from_matrix, feature_labels

    values = cd145_from_matrix(enum.amounts, enum.elements, chunk_rows=chunk_rows)
    return pd.DataFrame(values, columns=feature_labels())


def model_inputs(cd: pd.DataFrame, enum: Enumeration, deployed: Any) -> pd.DataFrame:
    """The deployed model's feature columns for every composition."""
    from superionic.classifier.generalize import block_features, needs_amounts

    blocks = deployed.feature_blocks
    amounts = z_order_amounts(enum.amounts, enum.elements) if needs_amounts(blocks) else None
    return block_features(cd[list(deployed.cd_columns)], amounts, blocks, deployed.encoder)[deployed.feature_columns]


def neighbours(X: pd.DataFrame, deployed: Any, train: pd.DataFrame, k: int) -> list[str]:
    """The k nearest training materials of each row, in the deployed model's z-scored feature space."""
    from superionic.classifier.domain import standardize
    from superionic.screening.predict import neighbour_text

    cd = list(deployed.cd_columns)
    same = len(train) == len(deployed.train_features) and np.allclose(
        train[cd].to_numpy(dtype=float), deployed.train_features[cd].to_numpy(dtype=float), equal_nan=True)
    if not same:  # neighbour names would belong to other rows
        raise ValueError("the training table does not match the rows the generalize model was fitted on "
                         "(load it with superionic.classifier.data.load, or rerun `dvc repro generalize`)")
    tz, qz = standardize(deployed.train_features, X[deployed.feature_columns])
    return neighbour_text(tz, qz, train.reset_index(drop=True), k)


def rank_space(enum: Enumeration, X: pd.DataFrame, deployed: Any) -> pd.DataFrame:
    """Design table + trust columns (with the inner-model spread), best first; ``rank`` 1 is the best."""
    trust = deployed.assess(X, spread=True).reset_index(drop=True)
    from superionic.classifier.generalize import P_CALIBRATED

    table = pd.concat([enum.design, trust], axis=1)
    table[ENUM_ROW] = np.arange(len(table))

    # stable sort: equal probabilities keep enumeration order, so the ranking is deterministic
    order = np.argsort(-table[P_CALIBRATED].to_numpy(), kind="stable")
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, RANK, np.arange(1, len(table) + 1))
    return table


def ensemble_check(
    ranked: pd.DataFrame, cd: pd.DataFrame, ensemble: Any, top: int, sample: int, seed: int, n_jobs: int,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Ensemble P for the ``top`` ranked rows and for a seeded random ``sample``; agreement figures.

    ``cd`` is indexed like the enumeration (``ranked`` carries that index in
    its ``enum_row`` column).
    """
    from superionic.classifier.generalize import P_CALIBRATED

    rng = np.random.default_rng(seed)
    picked_sample = np.sort(rng.choice(len(ranked), size=min(sample, len(ranked)), replace=False))
    rows = np.union1d(np.arange(min(top, len(ranked))), picked_sample)
    X = cd.iloc[ranked[ENUM_ROW].to_numpy()[rows]].reindex(columns=ensemble.feature_columns)
    table, split_p = ensemble.assess(X.reset_index(drop=True), n_jobs=n_jobs)
    scored = pd.DataFrame({P_ENSEMBLE: split_p.mean(axis=0), P_ENSEMBLE_STD: split_p.std(axis=0),
                           ENSEMBLE_LABEL: table[ENSEMBLE_LABEL].to_numpy()}, index=rows)
    in_sample = scored.loc[picked_sample]
    p_fast = ranked[P_CALIBRATED].to_numpy()[picked_sample]
    p_ens = in_sample[P_ENSEMBLE].to_numpy()
    rho = float(spearmanr(p_fast, p_ens).statistic) if len(picked_sample) > 2 else float("nan")
    n_top = min(top, len(ranked))
    top_rows = scored.loc[np.arange(n_top)]
    figures = {
        "sample_size": int(len(picked_sample)),
        "spearman_sample": rho,
        "label_agreement_sample": float(np.mean((p_fast >= 0.5) == (p_ens >= 0.5))) if len(p_ens) else float("nan"),
        "top_rows": int(n_top),
        "top_ensemble_p_mean": float(top_rows[P_ENSEMBLE].mean()) if n_top else float("nan"),
        "top_ensemble_p_ge_0.5": float((top_rows[P_ENSEMBLE] >= 0.5).mean()) if n_top else float("nan"),
        "ensemble_features_imputed": int(len(set(ensemble.feature_columns) - set(cd.columns))),
    }
    return scored, figures


def known_points(enum: Enumeration, ranked: pd.DataFrame, train: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Training materials that lie in the space: their measured label beside the map's probability there.

    Compositions are compared as atomic fractions over the space's elements
    (max difference <= ``tolerance``), so "Li1.4Al0.4Ge1.6(PO4)3" matches its
    grid point whatever the formula unit.
    """
    from sklearn.neighbors import NearestNeighbors

    from pymatgen.core import Composition

    from superionic.features.lithium import amount_matrix, element_symbols
    from superionic.classifier.generalize import P_CALIBRATED

    if train.empty:
        return pd.DataFrame()
    wide = amount_matrix([Composition(a) for a in train[D.AMOUNTS]])
    z_index = {s: i for i, s in enumerate(element_symbols())}
    space_cols = [z_index[e] for e in enum.elements]
    inside = wide.sum(axis=1) - wide[:, space_cols].sum(axis=1) < 1e-9
    pool, wide = train[inside], wide[inside][:, space_cols]
    if pool.empty:
        return pd.DataFrame()
    frac_train = wide / wide.sum(axis=1, keepdims=True)
    frac_space = enum.amounts / enum.amounts.sum(axis=1, keepdims=True)
    distance, index = NearestNeighbors(n_neighbors=1, metric="chebyshev").fit(frac_space).kneighbors(frac_train)
    hit = distance[:, 0] <= tolerance
    where = pd.Series(np.arange(len(ranked)), index=ranked[ENUM_ROW].to_numpy())
    matched = ranked.iloc[where.loc[index[hit, 0]].to_numpy()].reset_index(drop=True)
    design_cols = [c for c in enum.design.columns if c not in (COMPOSITION, N_DOPANTS, RADIUS_MISMATCH)]
    out = pd.DataFrame({
        KNOWN_FORMULA: pool[D.REDUCED_FORMULA].to_numpy()[hit],
        D.FAMILY: pool[D.FAMILY].to_numpy()[hit],
        KNOWN_SIGMA: pool[D.SIGMA].to_numpy(dtype=float)[hit],
        KNOWN_LABEL: pool[D.LABEL].to_numpy()[hit].astype(int),
        KNOWN_GRID_POINT: matched[COMPOSITION].to_numpy(),
        **{c: matched[c].to_numpy() for c in [*design_cols, N_DOPANTS]},
        P_CALIBRATED: matched[P_CALIBRATED].to_numpy(),
        RANK: matched[RANK].to_numpy(),
        ENUM_ROW: matched[ENUM_ROW].to_numpy(),
    })
    return out.sort_values([N_DOPANTS, *design_cols, KNOWN_FORMULA]).reset_index(drop=True)
