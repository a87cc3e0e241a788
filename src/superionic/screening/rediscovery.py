"""Stage ``rediscovery``: does the ranking find known conductors it never saw?

Pool formulas that are also in the conductivity data have measured labels.
The ensemble is refitted with those materials *and every training material
of their chemical systems* removed (:func:`refit_mask`, checked by
:func:`assert_no_leak` before fitting), then ranks every distinct formula of
the pool. Reported against a random ranking:

* ROC-AUC of known superionic vs known poor conductors (random 0.5), and of
  known superionic vs the rest of the pool, with a one-sided Mann-Whitney p;
* precision@k and recall@k of the known superionic conductors over the
  whole-pool ranking (random: n_pos / N and k / N); unlabelled formulas count
  as misses, so precision is a lower bound;
* calibration of P on the held-out labelled formulas (Brier score, ECE).

Caveat stated in the report: the hyper-parameters come from the tuning stage,
which saw the held-out materials; only the fitted models are clean.

It also states the fate of well-known conductors (``screen.known_conductors``)
and of every known superionic conductor in the pool: which funnel step
rejects it, and why.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy.stats import mannwhitneyu
from sklearn.metrics import brier_score_loss, roc_auc_score

from superionic import files
from superionic.data import columns as D
from superionic.screening import columns as C
from superionic.io import TABLE_DECIMALS, report_path, write_csv, write_json
from superionic.screening.predict import P, measured
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

P_REFIT = C.P_REFIT
RANK_REFIT = "rank_refit"
LABEL = "measured_label"
NOT_IN_POOL = "not in the pool"

METRICS_FILE = files.SCREEN_REDISCOVERY_METRICS
RANKING_FILE = f"{files.SCREEN_REDISCOVERY_DIR}/rediscovery_labelled.csv"
KNOWN_FILE = files.SCREEN_KNOWN_CONDUCTORS
FATES_FILE = files.SCREEN_REDISCOVERY_FATES
ECE_BINS = 10


def labelled_pool(pool_formulas: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Pool formulas (reduced formula, chemsys) with a measured label in the training data."""
    labels = measured(train, (D.LABEL,))[D.LABEL]
    out = pool_formulas[pool_formulas[C.REDUCED_FORMULA].isin(labels.index)].copy()
    out[LABEL] = out[C.REDUCED_FORMULA].map(labels).astype(int)
    return out.sort_values(C.REDUCED_FORMULA, ignore_index=True)


def refit_mask(train: pd.DataFrame, held_formulas: set[str], held_chemsys: set[str]) -> np.ndarray:
    """Training rows that may be used: neither a held-out formula nor in a held-out chemical system."""
    return (~train[D.REDUCED_FORMULA].isin(held_formulas) & ~train[D.CHEMSYS].isin(held_chemsys)).to_numpy()


def assert_no_leak(kept: pd.DataFrame, held_formulas: set[str], held_chemsys: set[str]) -> None:
    leaked_formulas = sorted(set(kept[D.REDUCED_FORMULA]) & held_formulas)
    leaked_systems = sorted(set(kept[D.CHEMSYS]) & held_chemsys)
    if leaked_formulas or leaked_systems:
        raise AssertionError(
            f"rediscovery refit would train on held-out material: formulas {leaked_formulas[:5]}, "
            f"chemical systems {leaked_systems[:5]}"
        )


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Equal-width bins; weighted mean |observed rate - mean P|."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(error)


def rank_pool(p: pd.Series) -> pd.Series:
    """1 = most likely superionic; ties broken by formula (index), so the ranking is deterministic."""
    order = pd.DataFrame({"p": p.to_numpy(), "key": p.index}).sort_values(
        ["p", "key"], ascending=[False, True], kind="mergesort", na_position="last"
    )
    ranks = pd.Series(np.arange(1, len(order) + 1), index=order["key"].to_numpy())
    return ranks.reindex(p.index)


def rediscovery_metrics(p: pd.Series, labelled: pd.DataFrame, ks: list[int]) -> dict[str, Any]:
    """Ranking quality for the known conductors; ``p`` is indexed by reduced formula (whole pool)."""
    ranks = rank_pool(p)
    n = int(p.notna().sum())
    positives = labelled.loc[labelled[LABEL] == 1, C.REDUCED_FORMULA]
    negatives = labelled.loc[labelled[LABEL] == 0, C.REDUCED_FORMULA]
    n_pos = len(positives)
    out: dict[str, Any] = {"n_pool_formulas": n, "n_known_superionic": n_pos, "n_known_poor": len(negatives)}
    if n_pos == 0:
        return out
    pos_p = p.loc[positives].to_numpy(dtype=float)
    neg_p = p.loc[negatives].to_numpy(dtype=float)
    rest_p = p.drop(index=positives).dropna().to_numpy(dtype=float)
    if len(negatives):
        y = np.r_[np.ones(n_pos), np.zeros(len(neg_p))]
        scores = np.r_[pos_p, neg_p]
        out["roc_auc_labelled"] = float(roc_auc_score(y, scores))
        out["mannwhitney_p_labelled"] = float(mannwhitneyu(pos_p, neg_p, alternative="greater").pvalue)
        out["brier_labelled"] = float(brier_score_loss(y, scores))
        out["ece_labelled"] = expected_calibration_error(scores, y)
        out["mean_p_known_superionic"] = float(pos_p.mean())
        out["mean_p_known_poor"] = float(neg_p.mean())
        out["labelled_prevalence"] = float(n_pos / len(y))
        out["mean_p_labelled"] = float(scores.mean())
    out["roc_auc_pool"] = float(roc_auc_score(np.r_[np.ones(n_pos), np.zeros(len(rest_p))], np.r_[pos_p, rest_p]))
    out["mannwhitney_p_pool"] = float(mannwhitneyu(pos_p, rest_p, alternative="greater").pvalue)
    pos_ranks = ranks.loc[positives].to_numpy()
    at_k = {}
    for k in sorted(set(int(v) for v in ks)):
        hits = int((pos_ranks <= k).sum())
        at_k[str(k)] = {
            "hits": hits,
            "precision": hits / k,
            "recall": hits / n_pos,
            "random_precision": n_pos / n,
            "random_recall": min(k / n, 1.0),
        }
    out["at_k"] = at_k
    out["median_rank_known_superionic"] = float(np.median(pos_ranks))
    return out


def best_polymorph(funnel: pd.DataFrame) -> pd.DataFrame:
    """Per formula, the polymorph that got furthest through the funnel (then lowest E_hull, then id)."""
    from superionic.screening.funnel import STEPS

    progress = funnel[C.FAILED_AT].map({s: i for i, s in enumerate(STEPS)}).fillna(len(STEPS))
    ordered = funnel.assign(_progress=progress).sort_values(
        [C.REDUCED_FORMULA, "_progress", C.E_HULL, C.TASK_ID], ascending=[True, False, True, True], kind="mergesort"
    )
    return ordered.drop_duplicates(C.REDUCED_FORMULA).drop(columns="_progress").set_index(C.REDUCED_FORMULA)


def fate_table(formulas: list[str], funnel: pd.DataFrame, p_main: pd.Series, p_refit: pd.Series,
               train: pd.DataFrame) -> pd.DataFrame:
    """What the funnel did to each formula (its furthest polymorph), with both probabilities."""
    from superionic.screening.pool import parse_formula

    best = best_polymorph(funnel)
    n_polymorphs = funnel.groupby(C.REDUCED_FORMULA).size()
    labels = measured(train, (D.LABEL,))[D.LABEL]
    rows = []
    for name in formulas:
        parsed = parse_formula(name)
        reduced = parsed[0] if parsed else name
        row: dict[str, Any] = {"formula": name, C.REDUCED_FORMULA: reduced}
        if reduced not in best.index:
            row.update({"n_polymorphs": 0, "fate": NOT_IN_POOL})
        else:
            b = best.loc[reduced]
            row.update({
                "n_polymorphs": int(n_polymorphs[reduced]),
                C.TASK_ID: b[C.TASK_ID],
                C.E_HULL: b[C.E_HULL],
                C.BAND_GAP: b[C.BAND_GAP],
                C.V_OX: b[C.V_OX],
                C.V_OX_SOURCE: b[C.V_OX_SOURCE],
                "fate": "survives" if b[C.SURVIVES] else f"rejected at {b[C.FAILED_AT]}: {b[C.FAIL_REASON]}",
                "p_main": p_main.get(reduced, np.nan),
                P_REFIT: p_refit.get(reduced, np.nan),
            })
        label = labels.get(reduced)
        row["in_training"] = "no" if label is None else f"yes (label {int(label)})"
        rows.append(row)
    return pd.DataFrame(rows)


def step_counts(fates: pd.DataFrame) -> pd.DataFrame:
    from superionic.screening.funnel import STEPS

    first = fates["fate"].str.extract(r"^rejected at (\w+):")[0].fillna(fates["fate"])
    counts = first.value_counts()
    order = [*(s for s in STEPS[1:]), "survives"]
    return pd.DataFrame({"outcome": order, "n": [int(counts.get(s, 0)) for s in order]})


@stage("rediscovery", sections=["screen", "classifier"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.data.dataset import load_dataset
    from superionic.classifier.data import prepare
    from superionic.classifier.ensemble import chosen_members, fit_ensemble, member_specs
    from superionic.classifier.collect import load_best
    from superionic.screening.config import Release
    from superionic.screening.features import features_for

    screen, c = cfg.screen, cfg.classifier
    redo = screen.rediscovery
    funnel = pd.read_parquet(screen.funnel)
    funnel = funnel[funnel[C.RELEASE] == Release(screen.release).value].reset_index(drop=True)
    train, feature_columns = load_dataset(cfg.paths.dataset)
    formulas = funnel[[C.REDUCED_FORMULA, C.CHEMSYS]].drop_duplicates(C.REDUCED_FORMULA)
    formulas = formulas.sort_values(C.REDUCED_FORMULA, ignore_index=True)
    labelled = labelled_pool(formulas, train)
    held_formulas = set(labelled[C.REDUCED_FORMULA])
    held_chemsys = set(labelled[C.CHEMSYS])
    kept = train[refit_mask(train, held_formulas, held_chemsys)]
    assert_no_leak(kept, held_formulas, held_chemsys)
    members = chosen_members(cfg)
    ensemble = fit_ensemble(
        member_specs(cfg, members), load_best(c.best_params, members), prepare(kept, feature_columns),
        redo.n_splits, c.test_size, cfg.seed, c.calibration, c.n_jobs,
    )
    X = features_for(formulas, pd.read_parquet(screen.pool_features), feature_columns)
    ok = np.isfinite(X.to_numpy()).any(axis=1)
    _, split_p = ensemble.assess(X[ok])
    p_refit = pd.Series(np.nan, index=formulas[C.REDUCED_FORMULA].to_numpy())
    p_refit[ok] = split_p.mean(axis=0)
    metrics = rediscovery_metrics(p_refit, labelled, list(redo.ks))
    metrics.update({
        "n_training_materials": len(train),
        "n_refit_training_materials": len(kept),
        "n_held_out_chemsys": len(held_chemsys),
        "n_refit_splits": int(redo.n_splits),
    })
    p_main = pd.read_parquet(screen.predictions).set_index(C.REDUCED_FORMULA)[P]
    ranks = rank_pool(p_refit)
    labelled[P_REFIT] = labelled[C.REDUCED_FORMULA].map(p_refit)
    labelled[RANK_REFIT] = labelled[C.REDUCED_FORMULA].map(ranks)
    positives = labelled.loc[labelled[LABEL] == 1, C.REDUCED_FORMULA].tolist()
    fates_all = fate_table(positives, funnel, p_main, p_refit, train)
    known = fate_table(list(screen.known_conductors), funnel, p_main, p_refit, train)
    steps = step_counts(fates_all)
    metrics["known_superionic_fates"] = dict(zip(steps["outcome"], steps["n"].astype(int), strict=True))
    outputs = [
        write_csv(labelled.sort_values([RANK_REFIT, C.REDUCED_FORMULA], ignore_index=True),
                  report_path(screen.report_dir, RANKING_FILE)),
        write_csv(known, report_path(screen.report_dir, KNOWN_FILE)),
        write_csv(fates_all, report_path(screen.report_dir, FATES_FILE)),
        write_json(metrics, report_path(screen.report_dir, METRICS_FILE), decimals=TABLE_DECIMALS),
    ]
    log.info("rediscovery: AUC labelled %s, pool %s", metrics.get("roc_auc_labelled"), metrics.get("roc_auc_pool"))
    return StageResult({k: v for k, v in metrics.items() if not isinstance(v, dict)}, outputs)
