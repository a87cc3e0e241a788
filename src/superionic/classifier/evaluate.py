"""Evaluate stage: the paper's protocol beside honest grouped cross-validation.

(a) Paper (Kang 2023, Table S2 / Figure 3): ``classifier.n_splits`` stratified
80/20 splits with seeds ``seed .. seed + n_splits - 1`` per tuned model.
(b) Grouped CV: stratified group k-fold where no chemical system (``chemsys``)
and, separately, no structure family (``family``) is on both sides. The gap
between (a) and (b) is how much of (a) is memorising near-duplicates.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic.classifier.data import LABEL, ClassifierData
from superionic.classifier.zoo import model_spec
from superionic.stage import StageResult, stage
from superionic.classifier.protocol import (
    evaluate_grouped,
    evaluate_splits,
    group_labels,
    grouped_splits,
    NORMALIZED_GROUP_COLUMNS,
    normalize_groups,
    paper_splits,
    summarize,
)

log = logging.getLogger(__name__)



def evaluate_paper(
    specs: Mapping[str, Mapping[str, Any]], best: Mapping[str, Mapping[str, Any]], data: ClassifierData,
    n_splits: int, test_size: float, seed: int, n_jobs: int = 1,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    splits = paper_splits(data.y, n_splits, test_size, seed0=seed)
    seeds = [seed + i for i in range(n_splits)]
    frames, summary = [], {}
    for name, spec in specs.items():
        start = time.perf_counter()
        per_split = evaluate_splits(spec, best[name], data.X, data.y, splits, seeds, n_jobs=n_jobs)
        per_split.insert(0, "model", name)
        frames.append(per_split)
        summary[name] = summarize(per_split)
        log.info("%s: paper-protocol accuracy %.3f (%.1f s)", name, summary[name]["accuracy_mean"],
                 time.perf_counter() - start)
    return pd.concat(frames, ignore_index=True), summary


def evaluate_groups(
    specs: Mapping[str, Mapping[str, Any]], best: Mapping[str, Mapping[str, Any]], data: ClassifierData,
    column: str, n_folds: int, seed: int, n_jobs: int = 1,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Grouped CV over ``column``; returns the summary and per-group OOF accuracy."""
    if column not in data.frame.columns:
        return {"status": f"unavailable: dataset has no column {column!r}"}, pd.DataFrame()
    groups, mask = group_labels(data.frame, column)
    n_groups = len(np.unique(groups[mask]))
    merges = normalize_groups(data.frame[column])[1] if column in NORMALIZED_GROUP_COLUMNS else {}
    info: dict[str, Any] = {"n_rows_excluded_null_group": int((~mask).sum()), "n_groups": n_groups,
                            "spellings_merged": merges}
    if n_groups < 2:
        info["status"] = f"unavailable: {n_groups} {column} group(s) with a value"
        return info, pd.DataFrame()
    sub = ClassifierData(data.frame.loc[mask].reset_index(drop=True), data.feature_columns)
    g = groups[mask]
    splits = grouped_splits(sub.y, g, n_folds, seed)
    info["status"] = "ok"
    info["models"] = {}
    per_group = []
    for name, spec in specs.items():
        summary, oof = evaluate_grouped(spec, best[name], sub.X, sub.y, splits, seed, n_jobs=n_jobs)
        info["models"][name] = summary
        frame = pd.DataFrame({"group": g, "correct": oof == sub.y, "positive": sub.y})
        agg = frame.groupby("group").agg(n=("correct", "size"), positives=("positive", "sum"),
                                         accuracy=("correct", "mean")).reset_index()
        agg.insert(0, "model", name)
        per_group.append(agg)
    table = pd.concat(per_group, ignore_index=True)
    table.insert(0, "grouping", column)
    return info, table


def dataset_summary(data: ClassifierData) -> dict[str, Any]:
    return {
        "n_materials": int(len(data.frame)),
        "n_features": len(data.feature_columns),
        "n_superionic": int(data.frame[LABEL].sum()),
        "positive_rate": float(data.frame[LABEL].mean()),
    }


def evaluate_model(
    name: str, spec: Mapping[str, Any], params: Mapping[str, Any], data: ClassifierData,
    n_splits: int, test_size: float, group_columns: list[str], group_folds: int, seed: int, n_jobs: int = 1,
) -> dict[str, Any]:
    """One model under the paper's protocol and every grouped CV; splits and folds depend on the
    data and seed only, so models evaluated separately are scored on identical partitions."""
    per_split, paper = evaluate_paper({name: spec}, {name: params}, data, n_splits, test_size, seed, n_jobs)
    grouped, tables = {}, []
    for column in group_columns:
        grouped[column], table = evaluate_groups({name: spec}, {name: params}, data, column, group_folds, seed,
                                                 n_jobs)
        tables.append(table)
    tables = [t for t in tables if len(t)]
    return {
        "model": name,
        "dataset": dataset_summary(data),
        # columns and rows (not records): JSON sorts keys, and the merged table keeps this column order
        "paper_splits": {"columns": list(per_split.columns), "data": per_split.to_numpy().tolist()},
        "paper": paper[name],
        "grouped": grouped,
        "group_accuracy": pd.concat(tables, ignore_index=True).to_dict(orient="records") if tables else [],
    }


@stage("evaluate", sections=["classifier", "dataset", "features"])
def run_stage(cfg: DictConfig, model: str) -> StageResult:
    """Evaluate one tuned model (the DVC stage ``evaluate@<model>``)."""
    from superionic.classifier.data import load
    from superionic.classifier.collect import evaluated_path, score_metrics, tuned_path
    from superionic.io import write_json
    import mlflow

    from superionic.tracking import log_model_spec

    c = cfg.classifier
    spec = model_spec(cfg, model)
    params = json.loads(tuned_path(c.tune_dir, model).read_text(encoding="utf-8"))["params"]
    data = load(cfg.paths.dataset)
    log_model_spec(model, spec)
    doc = evaluate_model(model, spec, params, data, c.n_splits, c.test_size, list(c.group_columns),
                         c.group_folds, cfg.seed, c.n_jobs)
    path = write_json(doc, evaluated_path(c.evaluate_dir, model))
    # the tuned hyper-parameters this evaluation used, and every protocol's scores
    mlflow.log_params({f"best.{model}.{k}": v for k, v in params.items()})
    log.info("wrote %s", path)
    return StageResult(score_metrics({model: doc["paper"]}, doc["grouped"], [model]), [path])
