"""Stage ``screen-predict``: rank the funnel survivors by calibrated P(superionic), with trust.

Every distinct formula of the screened release's pool is scored once by the
classifier ensemble (GB + LightGBM x ``classifier.n_splits`` split-models,
each Platt-calibrated on its own held-out rows):

* ``p_superionic``: mean calibrated probability over all split-models;
* ``p_std``, ``p_low``, ``p_high``: their spread (standard deviation and the
  central ``screen.interval`` range): how much the answer depends on which
  80 % of the data trained the model;
* the paper's unanimity rule (every split-model of every member votes
  superionic) as a reported column, ``paper_candidate``;
* applicability domain: mean distance to the ``screen.ad_neighbors`` nearest
  training materials in standardized feature space, *far* above the
  ``screen.ad_quantile`` quantile of the training set's own leave-one-out
  distances;
* the ``screen.n_neighbors_shown`` nearest training materials (formula,
  family, measured sigma), so a reader can judge plausibility at a glance;
* ``status``: known superionic / known poor conductor (the formula is in the
  training data, with its measured label) or new.

Survivors are ranked by P (ties: smaller spread, then material id); the
unknown-window list is ranked the same way on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.neighbors import NearestNeighbors

from superionic import files
from superionic.data import columns as D
from superionic.io import (
    PNG_METADATA,
    TABLE_DECIMALS,
    report_path,
    save_figure,
    write_csv,
    write_json,
    write_parquet,
)
from superionic.classifier.domain import applicability, standardize
from superionic.classifier.ensemble import (
    ENSEMBLE_LABEL,
    proba_col,
    unanimous_col,
    votes_col,
)
from superionic.classifier.generalize import ABSTAIN, P_CALIBRATED
from superionic.screening import columns as C
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

P, P_STD, P_LOW, P_HIGH = C.P, C.P_STD, C.P_LOW, C.P_HIGH
PAPER_CANDIDATE = "paper_candidate"
NEIGHBORS, STATUS, RANK = C.NEIGHBORS, C.STATUS, C.RANK
MEASURED_SIGMA = "measured_sigma"
CHEMSYS_IN_TRAINING = "chemsys_in_training"
FEATURIZABLE = "featurizable"
NEAR, FAR = "near", "far"
KNOWN_GOOD, KNOWN_POOR, NEW = "known superionic", "known poor conductor", "new"


RANKED_FILE = files.SCREEN_RANKED
UNKNOWN_RANKED_FILE = files.SCREEN_UNKNOWN_RANKED
MD_HANDOFF_FILE = files.SCREEN_MD_HANDOFF
SWEEP_FILE = files.SCREEN_RANKING_SWEEP
VOTES_FILE = files.SCREEN_VOTES
VOTES_FIGURE = files.SCREEN_VOTES_FIGURE
MAP_FIGURE = files.SCREEN_MAP_FIGURE
METRICS_FILE = files.SCREEN_PREDICT_METRICS

RANKED_COLUMNS = [
    RANK, C.TASK_ID, C.FORMULA, C.ANION_CLASS, C.BAND_GAP, C.E_HULL, C.V_OX, C.V_OX_SOURCE,
    P, P_STD, P_LOW, P_HIGH, P_CALIBRATED, ABSTAIN, C.AD_FLAG, C.AD_DISTANCE, STATUS, MEASURED_SIGMA, CHEMSYS_IN_TRAINING,
    PAPER_CANDIDATE, NEIGHBORS, C.REDUCED_FORMULA, C.CHEMSYS, C.N_MISSING_PHASES, C.MISSING_PHASES,
]  # fmt: skip


class EnsembleLike(Protocol):
    feature_columns: list[str]
    member_names: list[str]
    n_splits: int

    def assess(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]: ...


def neighbour_text(tz: np.ndarray, qz: np.ndarray, train: pd.DataFrame, k: int) -> list[str]:
    """The k nearest training materials of every query row, as "formula (family, sigma S/cm)"."""
    if len(qz) == 0 or k == 0:
        return [""] * len(qz)
    _, index = NearestNeighbors(n_neighbors=k).fit(tz).kneighbors(qz)
    family = train[D.FAMILY].astype("string").fillna("?").to_numpy()
    sigma = train[D.SIGMA].to_numpy(dtype=float)
    label = [f"{f} ({fam}, {s:.1e})" for f, fam, s in zip(train[D.REDUCED_FORMULA], family, sigma, strict=True)]
    label = np.asarray(label, dtype=object)
    return ["; ".join(row) for row in label[index]]


def _assess_chunk(X: pd.DataFrame, ensemble: EnsembleLike) -> tuple[pd.DataFrame, np.ndarray]:
    return ensemble.assess(X)


def assess_on_cluster(
    ensemble: EnsembleLike, X: pd.DataFrame, cluster: DictConfig, n_workers: int, chunk_size: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """``ensemble.assess(X)`` in row chunks on a Dask cluster; the same table and probabilities, in order."""
    from superionic.cluster import map_in_order, open_client

    if len(X) == 0:
        return ensemble.assess(X)
    chunks = [X.iloc[i : i + chunk_size] for i in range(0, len(X), chunk_size)]
    with open_client(cluster, n_workers=n_workers) as client:
        parts = map_in_order(client, _assess_chunk, chunks, ensemble=ensemble)
    return pd.concat([votes for votes, _ in parts]), np.hstack([p for _, p in parts])


def trust_columns(formulas: pd.Series, features: pd.DataFrame, deployed: Any) -> pd.DataFrame:
    """The generalize stage's calibrated probability and abstain flag per formula (NaN where unfeaturizable)."""
    X_cd = features[deployed.cd_columns].astype(float).reset_index(drop=True)
    ok = np.isfinite(X_cd.to_numpy()).any(axis=1)
    out = pd.DataFrame({P_CALIBRATED: np.nan, ABSTAIN: pd.Series(pd.NA, index=X_cd.index, dtype="boolean")})
    if ok.any():
        trust = deployed.assess(deployed.features(X_cd[ok], formulas.to_numpy()[ok]))
        out.loc[ok, P_CALIBRATED] = trust[P_CALIBRATED].to_numpy()
        out.loc[ok, ABSTAIN] = trust[ABSTAIN].to_numpy()
    return out


def score_formulas(
    formulas: pd.Series, features: pd.DataFrame, ensemble: EnsembleLike, train: pd.DataFrame,
    screen: DictConfig, assess: Callable[[pd.DataFrame], tuple[pd.DataFrame, np.ndarray]] | None = None,
) -> tuple[pd.DataFrame, float]:
    """Probability, spread, votes, domain, neighbours and training status per formula.

    ``features``: composition features aligned with ``formulas``. ``train``:
    the classifier's training table (formula, label, sigma, family, chemsys
    and the ensemble's feature columns). Returns the table and the "far"
    distance threshold.
    """
    columns = list(ensemble.feature_columns)
    missing = [c for c in columns if c not in features.columns or c not in train.columns]
    if missing:
        raise ValueError(f"features lack {len(missing)} columns the ensemble needs, e.g. {missing[:5]}")
    if not 0 < screen.interval < 1:
        raise ValueError(f"screen.interval must be in (0, 1), got {screen.interval}")
    out = pd.DataFrame({C.REDUCED_FORMULA: formulas.to_numpy()})
    X = features[columns].astype(float).reset_index(drop=True)
    ok = np.isfinite(X.to_numpy()).any(axis=1)
    out[FEATURIZABLE] = ok
    votes, split_p = (assess or ensemble.assess)(X[ok])
    votes.index = out.index[ok]
    for member in ensemble.member_names:
        out[votes_col(member)] = votes[votes_col(member)].reindex(out.index).astype("Int64")
        out[proba_col(member)] = votes[proba_col(member)].reindex(out.index)
        out[unanimous_col(member)] = votes[unanimous_col(member)].reindex(out.index, fill_value=False).astype(bool)
    out[PAPER_CANDIDATE] = votes[ENSEMBLE_LABEL].reindex(out.index, fill_value=False).astype(bool)
    tail = (1 - screen.interval) / 2
    for name, values in (
        (P, split_p.mean(axis=0)),
        (P_STD, split_p.std(axis=0)),
        (P_LOW, np.quantile(split_p, tail, axis=0)),
        (P_HIGH, np.quantile(split_p, 1 - tail, axis=0)),
    ):
        out[name] = np.nan
        out.loc[ok, name] = values

    tz, qz = standardize(train[columns].astype(float), X[ok])
    distance, threshold = applicability(tz, qz, screen.ad_neighbors, screen.ad_quantile)
    out[C.AD_DISTANCE] = np.nan
    out.loc[ok, C.AD_DISTANCE] = distance
    out[C.AD_FLAG] = np.where(~ok, "", np.where(out[C.AD_DISTANCE] > threshold, FAR, NEAR))
    out[NEIGHBORS] = ""
    out.loc[ok, NEIGHBORS] = neighbour_text(tz, qz, train, screen.n_neighbors_shown)

    known = measured(train)
    label = out[C.REDUCED_FORMULA].map(known[D.LABEL])
    out[C.IN_TRAINING] = label.notna()
    out[C.TRAINING_LABEL] = label.astype("Int64")
    out[MEASURED_SIGMA] = out[C.REDUCED_FORMULA].map(known[D.SIGMA])
    out[STATUS] = np.select([label == 1, label == 0], [KNOWN_GOOD, KNOWN_POOR], default=NEW)
    return out, threshold


def measured(train: pd.DataFrame, columns: tuple[str, ...] = (D.LABEL, D.SIGMA)) -> pd.DataFrame:
    """Label (and conductivity) per training formula: the highest, when a formula repeats."""
    return train.groupby(D.REDUCED_FORMULA)[list(columns)].max()


def chemsys_in_training(chemsys: pd.Series, train: pd.DataFrame) -> np.ndarray:
    return chemsys.isin(set(train[D.CHEMSYS])).to_numpy()


def rank(rows: pd.DataFrame, scores: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Funnel rows joined with their formula's scores, best first, deterministic."""
    merged = rows.merge(scores, on=C.REDUCED_FORMULA, how="left", validate="many_to_one")
    merged[CHEMSYS_IN_TRAINING] = chemsys_in_training(merged[C.CHEMSYS], train)
    merged = merged.sort_values(
        [P, P_STD, C.TASK_ID], ascending=[False, True, True], kind="mergesort", na_position="last"
    ).reset_index(drop=True)
    merged[RANK] = np.arange(1, len(merged) + 1)
    return merged


def actionable(ranked: pd.DataFrame, p_min: float) -> np.ndarray:
    """P at least ``p_min`` and inside the applicability domain."""
    return ((ranked[P] >= p_min) & (ranked[C.AD_FLAG] == NEAR)).to_numpy()


def ranking_sweep(funnel: pd.DataFrame, scores: pd.DataFrame, tolerances: list[float], p_min: float) -> pd.DataFrame:
    """Survivors and actionable candidates at every E_hull tolerance."""
    from superionic.screening.funnel import V_OX_PASS, V_OX_UNKNOWN

    merged = funnel.merge(scores[[C.REDUCED_FORMULA, P, C.AD_FLAG, STATUS]], on=C.REDUCED_FORMULA, how="left")
    early = (merged[C.PASS_NO_TM] & merged[C.PASS_BAND_GAP]).to_numpy()
    good = actionable(merged, p_min)
    new = (merged[STATUS] == NEW).to_numpy()
    rows = []
    for tol in sorted(set(float(v) for v in tolerances)):
        reached = early & (merged[C.E_HULL].to_numpy(dtype=float) <= tol)
        passes = reached & (merged[C.V_OX_STATUS] == V_OX_PASS).to_numpy()
        unknown = reached & (merged[C.V_OX_STATUS] == V_OX_UNKNOWN).to_numpy()
        rows.append({
            "ehull_max": tol,
            "survivors": int(passes.sum()),
            "survivor_formulas": int(merged.loc[passes, C.REDUCED_FORMULA].nunique()),
            f"p>={p_min:g}_in_domain": int((passes & good).sum()),
            f"p>={p_min:g}_in_domain_new": int((passes & good & new).sum()),
            "unknown_window": int(unknown.sum()),
            f"unknown_window_p>={p_min:g}_in_domain": int((unknown & good).sum()),
        })
    return pd.DataFrame(rows)


def md_handoff(ranked: pd.DataFrame, top: int) -> pd.DataFrame:
    """The best-ranked new survivors, in the layout `md.mlip.candidates_csv` reads."""
    chosen = ranked[ranked[STATUS] == NEW].head(top)
    return chosen[[RANK, C.TASK_ID, C.FORMULA, P, P_STD, C.AD_FLAG, C.V_OX, C.V_OX_SOURCE]]


def votes_histogram(scored: pd.DataFrame, members: list[str], n_splits: int) -> pd.DataFrame:
    data = {C.VOTES: np.arange(n_splits + 1)}
    for member in members:
        counts = scored[votes_col(member)].dropna().astype(int).value_counts()
        data[member] = [int(counts.get(v, 0)) for v in data[C.VOTES]]
    return pd.DataFrame(data)


def plot_votes(hist: pd.DataFrame, members: list[str], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(members), figsize=(4.5 * len(members), 3.6), squeeze=False)
    for ax, member in zip(axes[0], members, strict=True):
        ax.bar(hist[C.VOTES], hist[member], width=1.0)
        ax.set_yscale("symlog", linthresh=10)
        ax.set_xlabel(f"split-models voting superionic (of {int(hist['votes'].max())})")
        ax.set_ylabel("survivors")
        ax.set_title(f"{member}: {int(hist[member].iloc[-1])} unanimous")
    fig.tight_layout()
    save_figure(fig, path, dpi=120, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def plot_p_vs_vox(reached: pd.DataFrame, v_min: float, p_min: float, path: str | Path) -> Path:
    """P(superionic) against V_ox for every material that reached the V_ox step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from superionic.screening.columns import SOURCES

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    markers = dict(zip(SOURCES, ["o", "s", "^", "x"], strict=True))
    known = reached[reached[C.V_OX].notna()]
    for source in SOURCES:
        for flag, colour in ((NEAR, "tab:blue"), (FAR, "tab:gray")):
            sub = known[(known[C.V_OX_SOURCE] == source) & (known[C.AD_FLAG] == flag)]
            if len(sub):
                ax.errorbar(sub[C.V_OX].clip(upper=10), sub[P], yerr=sub[P_STD], fmt=markers[source],
                            color=colour, ms=4, alpha=0.6, elinewidth=0.5, label=f"{source}, {flag}")
    ax.axvline(v_min, color="k", ls="--", lw=0.8)
    ax.axhline(p_min, color="k", ls=":", lw=0.8)
    ax.set_xlabel("V_ox vs Li/Li+ (V; clipped at 10)")
    ax.set_ylabel("calibrated P(superionic) ± split-model std")
    ax.set_title("materials reaching the V_ox step (survivors: right of the dashed line)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path, dpi=120, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def predict_metrics(ranked: pd.DataFrame, unknown: pd.DataFrame, scores: pd.DataFrame, members: list[str],
                    threshold: float, n_splits: int, p_min: float) -> dict[str, Any]:
    good = actionable(ranked, p_min)
    good_unknown = actionable(unknown, p_min)
    out: dict[str, Any] = {
        "n_formulas_scored": len(scores),
        "n_not_featurizable": int((~scores[FEATURIZABLE]).sum()),
        "n_splits": n_splits,
        "ad_threshold": threshold,
        "n_survivors": len(ranked),
        "n_survivors_far": int((ranked[C.AD_FLAG] == FAR).sum()),
        "n_p_min": int((ranked[P] >= p_min).sum()),
        "n_p_min_in_domain": int(good.sum()),
        "n_p_min_in_domain_new": int((good & (ranked[STATUS] == NEW).to_numpy()).sum()),
        "survivor_status": {str(k): int(v) for k, v in ranked[STATUS].value_counts().items()},
        "n_paper_candidates": int(ranked[PAPER_CANDIDATE].sum()),
        "n_unknown_window": len(unknown),
        "n_unknown_window_p_min_in_domain": int(good_unknown.sum()),
    }
    for member in members:
        out[f"n_unanimous_{member}"] = int(ranked[unanimous_col(member)].sum())
    return out


@stage("screen-predict", sections=["screen", "classifier", "cluster"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.data.dataset import load_dataset
    from superionic.classifier.ensemble import load_ensemble, load_verified
    from superionic.classifier.generalize import DeployedModel
    from superionic.screening.config import Release
    from superionic.screening.features import features_for
    from superionic.screening.funnel import alive_after, unknown_window

    screen = cfg.screen
    funnel = pd.read_parquet(screen.funnel)
    funnel = funnel[funnel[C.RELEASE] == Release(screen.release).value].reset_index(drop=True)
    ensemble = load_ensemble(cfg.classifier.ensemble_model)
    train, _ = load_dataset(cfg.paths.dataset)
    formulas = pd.DataFrame({C.REDUCED_FORMULA: sorted(set(funnel[C.REDUCED_FORMULA]))})
    features = features_for(formulas, pd.read_parquet(screen.pool_features), list(ensemble.feature_columns))
    assess = partial(assess_on_cluster, ensemble, cluster=cfg.cluster, n_workers=int(screen.workers),
                     chunk_size=int(screen.chunk_size)) if screen.workers > 1 else None
    scores, threshold = score_formulas(formulas[C.REDUCED_FORMULA], features, ensemble, train, screen, assess)
    deployed = load_verified(cfg.generalize.model, DeployedModel, "generalize.model", "generalize")
    scores = pd.concat([scores, trust_columns(formulas[C.REDUCED_FORMULA], features, deployed)], axis=1)
    ranked = rank(funnel[funnel[C.SURVIVES]], scores, train)
    unknown = rank(funnel[unknown_window(funnel)], scores, train)
    reached = rank(funnel[alive_after(funnel, "e_hull")], scores, train)
    members = list(ensemble.member_names)
    hist = votes_histogram(ranked, members, ensemble.n_splits)
    metrics = predict_metrics(ranked, unknown, scores, members, threshold, ensemble.n_splits, screen.p_min)
    answered = ~ranked[ABSTAIN].fillna(True).astype(bool).to_numpy()
    metrics.update({
        "trust_coverage": deployed.coverage,
        "n_survivors_answered": int(answered.sum()),
        "n_p_calibrated_min_answered_in_domain": int(
            (answered & (ranked[P_CALIBRATED] >= screen.p_min).to_numpy() & (ranked[C.AD_FLAG] == NEAR).to_numpy()).sum()),
    })  # fmt: skip
    write_parquet(scores, screen.predictions)
    outputs = [
        write_csv(ranked[RANKED_COLUMNS], report_path(screen.report_dir, RANKED_FILE)),
        write_csv(unknown[RANKED_COLUMNS], report_path(screen.report_dir, UNKNOWN_RANKED_FILE)),
        write_csv(md_handoff(ranked, screen.md_handoff_top),
                  report_path(screen.report_dir, MD_HANDOFF_FILE)),
        write_csv(ranking_sweep(funnel, scores, list(screen.ehull_sweep), screen.p_min),
                  report_path(screen.report_dir, SWEEP_FILE)),
        write_csv(hist, report_path(screen.report_dir, VOTES_FILE)),
        plot_votes(hist, members, report_path(screen.report_dir, VOTES_FIGURE)),
        plot_p_vs_vox(reached, screen.oxidation_voltage_min, screen.p_min,
                      report_path(screen.report_dir, MAP_FIGURE)),
        write_json(metrics, report_path(screen.report_dir, METRICS_FILE), decimals=TABLE_DECIMALS),
    ]
    log.info("screen-predict: %d survivors, %d with P >= %g in domain",
             metrics["n_survivors"], metrics["n_p_min_in_domain"], screen.p_min)
    return StageResult(metrics, outputs)
