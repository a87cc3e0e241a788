"""Stage ``screen-predict``: the classifier ensemble on the funnel survivors.

Per member (the paper: GB and LightGBM) the number of its split-models that
call each survivor superionic (the paper's Figure 4), the survivors on which
all of them agree, and the intersection over members: the candidate list.

Applicability domain: survivors are described by the same composition
features as the training set; each gets the mean Euclidean distance to its
``screen.ad_neighbors`` nearest training materials in feature space
standardized with the training mean and standard deviation, and is "far"
when that exceeds the ``screen.ad_quantile`` quantile of the training
materials' own leave-one-out distances. A "far" candidate is an
extrapolation: the vote says little.

Survivors that are already in the training data (same reduced formula) are
marked with their measured label: they are known, not discoveries.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.neighbors import NearestNeighbors

from superionic.models.ensemble import proba_col, unanimous_col, votes_col
from superionic.screening import columns as C
from superionic.screening.io import report_path, write_csv, write_json, write_parquet

log = logging.getLogger(__name__)

ENSEMBLE_LABEL = "ensemble_label"
PROBA_MEAN = "proba_mean"
FEATURIZABLE = "featurizable"
NEAR, FAR = "near", "far"
TRAIN_FORMULA = "reduced_formula"
TRAIN_LABEL = "label"

CANDIDATES_FILE = "candidates.csv"
VOTES_FIGURE = "votes.png"
VOTES_FILE = "votes_histogram.csv"
METRICS_FILE = "predict_metrics.json"
SURVIVOR_COLUMNS = [
    C.TASK_ID, C.FORMULA, C.REDUCED_FORMULA, C.ANION_CLASS, C.BAND_GAP, C.E_HULL, C.V_RED, C.V_OX,
    C.N_MISSING_PHASES, C.MISSING_PHASES,
]  # fmt: skip


class EnsembleLike(Protocol):
    feature_columns: list[str]
    member_names: list[str]
    n_splits: int

    def vote(self, X: pd.DataFrame) -> pd.DataFrame: ...


def applicability(
    train: pd.DataFrame, query: pd.DataFrame, k: int, quantile: float
) -> tuple[np.ndarray, float]:
    """Mean distance to the k nearest training rows, and the "far" threshold."""
    if not 0 < quantile < 1:
        raise ValueError(f"screen.ad_quantile must be in (0, 1), got {quantile}")
    if k < 1 or k >= len(train):
        raise ValueError(f"screen.ad_neighbors must be in [1, {len(train) - 1}], got {k}")
    mean = train.mean()
    std = train.std(ddof=0).replace(0.0, 1.0)  # constant features carry no distance
    # a missing feature sits at the training mean (z = 0): it adds no distance
    tz = ((train - mean) / std).fillna(0.0).to_numpy(dtype=float)
    qz = ((query - mean) / std).fillna(0.0).to_numpy(dtype=float)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(tz)
    own, _ = nn.kneighbors(tz)
    # column 0 is the row itself (distance 0): leave it out
    threshold = float(np.quantile(own[:, 1:].mean(axis=1), quantile))
    if len(qz) == 0:
        return np.zeros(0), threshold
    dist, _ = nn.kneighbors(qz, n_neighbors=k)
    return dist.mean(axis=1), threshold


def predict_survivors(
    survivors: pd.DataFrame,
    features: pd.DataFrame,
    ensemble: EnsembleLike,
    train: pd.DataFrame,
    k: int,
    quantile: float,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Votes, probabilities, applicability and training overlap per survivor.

    ``features``: composition features, index aligned with ``survivors``
    (rows with every feature missing are reported as not featurizable).
    ``train``: the classifier's training table (reduced formula, label and
    the ensemble's feature columns).
    """
    columns = list(ensemble.feature_columns)
    missing = [c for c in columns if c not in features.columns or c not in train.columns]
    if missing:
        raise ValueError(f"features lack {len(missing)} columns the ensemble needs, e.g. {missing[:5]}")
    out = survivors[[c for c in SURVIVOR_COLUMNS if c in survivors.columns]].copy()
    X = features.loc[survivors.index, columns].astype(float)
    # Partly missing features (elements without magpie data) are imputed by
    # the ensemble's own pipelines; an all-missing row is an unreadable formula.
    ok = np.isfinite(X.to_numpy()).any(axis=1)
    out[FEATURIZABLE] = ok
    votes = ensemble.vote(X[ok]) if ok.any() else pd.DataFrame(index=X.index[:0])
    for member in ensemble.member_names:
        out[votes_col(member)] = votes[votes_col(member)].reindex(out.index).astype("Int64")
        out[proba_col(member)] = votes[proba_col(member)].reindex(out.index)
        out[unanimous_col(member)] = votes[unanimous_col(member)].reindex(out.index, fill_value=False).astype(bool)
    out[PROBA_MEAN] = out[[proba_col(m) for m in ensemble.member_names]].mean(axis=1, skipna=False)
    out[C.CANDIDATE] = votes[ENSEMBLE_LABEL].reindex(out.index, fill_value=False).astype(bool)

    train_x = train[columns].astype(float)
    distance, threshold = applicability(train_x, X[ok], k, quantile)
    out[C.AD_DISTANCE] = np.nan
    out.loc[ok, C.AD_DISTANCE] = distance
    out[C.AD_FLAG] = np.where(~ok, "", np.where(out[C.AD_DISTANCE] > threshold, FAR, NEAR))
    labels = train.groupby(TRAIN_FORMULA)[TRAIN_LABEL].max()
    out[C.IN_TRAINING] = out[C.REDUCED_FORMULA].isin(labels.index)
    out[C.TRAINING_LABEL] = out[C.REDUCED_FORMULA].map(labels).astype("Int64")

    candidates = out[out[C.CANDIDATE]]
    metrics: dict[str, Any] = {
        "n_survivors": len(out),
        "n_not_featurizable": int((~ok).sum()),
        "n_splits": int(ensemble.n_splits),
        "ad_threshold": threshold,
        "n_far": int((out[C.AD_FLAG] == FAR).sum()),
        "n_candidates": len(candidates),
        "n_candidates_far": int((candidates[C.AD_FLAG] == FAR).sum()),
        "n_candidates_in_training": int(candidates[C.IN_TRAINING].sum()),
        "n_candidates_with_missing_phases": int((candidates[C.N_MISSING_PHASES] > 0).sum())
        if C.N_MISSING_PHASES in candidates
        else 0,
        "n_survivors_in_training": int(out[C.IN_TRAINING].sum()),
    }
    for member in ensemble.member_names:
        metrics[f"n_unanimous_{member}"] = int(out[unanimous_col(member)].sum())
    return out, metrics


def candidate_table(predictions: pd.DataFrame, members: list[str]) -> pd.DataFrame:
    cols = [
        C.TASK_ID, C.FORMULA, C.ANION_CLASS, C.BAND_GAP, C.E_HULL, C.V_OX,
        *[votes_col(m) for m in members], *[proba_col(m) for m in members], PROBA_MEAN,
        C.AD_FLAG, C.AD_DISTANCE, C.IN_TRAINING, C.TRAINING_LABEL, C.N_MISSING_PHASES, C.MISSING_PHASES,
    ]  # fmt: skip
    table = predictions.loc[predictions[C.CANDIDATE], [c for c in cols if c in predictions.columns]]
    return table.sort_values([PROBA_MEAN, C.TASK_ID], ascending=[False, True], kind="mergesort")


def votes_histogram(predictions: pd.DataFrame, members: list[str], n_splits: int) -> pd.DataFrame:
    data = {"votes": np.arange(n_splits + 1)}
    for member in members:
        counts = predictions[votes_col(member)].dropna().astype(int).value_counts()
        data[member] = [int(counts.get(v, 0)) for v in data["votes"]]
    return pd.DataFrame(data)


def plot_votes(hist: pd.DataFrame, members: list[str], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(members), figsize=(4.5 * len(members), 3.6), squeeze=False)
    for ax, member in zip(axes[0], members, strict=True):
        ax.bar(hist["votes"], hist[member], width=1.0)
        ax.set_yscale("symlog", linthresh=10)
        ax.set_xlabel(f"split-models voting superionic (of {int(hist['votes'].max())})")
        ax.set_ylabel("survivors")
        ax.set_title(f"{member}: {int(hist[member].iloc[-1])} unanimous")
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return path


def run_stage(cfg: DictConfig) -> None:
    from superionic.data.dataset import load_dataset
    from superionic.features.composition import featurize_formulas
    from superionic.models.ensemble import load_ensemble
    from superionic.tracking import log_artifacts, log_metrics, stage_run

    screen = cfg.screen
    with stage_run("screen-predict", cfg, sections=["screen", "classifier"]):
        funnel = pd.read_parquet(screen.funnel)
        survivors = funnel[funnel[C.SURVIVES]].reset_index(drop=True)
        ensemble = load_ensemble(cfg.classifier.ensemble_model)
        train, _ = load_dataset(cfg.paths.dataset)
        formulas = survivors[C.REDUCED_FORMULA].tolist()
        features = featurize_formulas(formulas)
        features.index = survivors.index
        predictions, metrics = predict_survivors(
            survivors, features, ensemble, train, screen.ad_neighbors, screen.ad_quantile
        )
        members = list(ensemble.member_names)
        hist = votes_histogram(predictions, members, ensemble.n_splits)
        write_parquet(predictions, screen.predictions)
        outputs = [
            write_csv(candidate_table(predictions, members), report_path(screen.report_dir, CANDIDATES_FILE)),
            write_csv(hist, report_path(screen.report_dir, VOTES_FILE)),
            plot_votes(hist, members, report_path(screen.report_dir, VOTES_FIGURE)),
            write_json(metrics, report_path(screen.report_dir, METRICS_FILE)),
        ]
        log_metrics(metrics)
        log_artifacts(outputs)
        log.info("screen-predict: %d survivors, %d candidates", metrics["n_survivors"], metrics["n_candidates"])
