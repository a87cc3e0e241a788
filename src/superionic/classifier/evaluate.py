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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic.classifier.data import LABEL, ClassifierData
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

PAPER_SPLITS_CSV = "paper_splits.csv"
GROUPED_CSV = "grouped_cv.csv"
GROUP_ACCURACY_CSV = "group_accuracy.csv"
# Wide copies for `dvc plots` (one column per model / per protocol).
PLOT_SPLITS_CSV = "plot_accuracy_by_split.csv"
PLOT_PROTOCOLS_CSV = "plot_accuracy_by_protocol.csv"


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


def load_best(path: str | Path, names: list[str]) -> dict[str, dict[str, Any]]:
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [n for n in names if n not in payload["models"]]
    if missing:
        raise ValueError(f"classifier.best_params: {path} lacks {missing}; rerun `superionic tune`")
    return {n: payload["models"][n]["params"] for n in names}


def run_stage(cfg: DictConfig) -> None:
    from superionic.classifier.data import load
    from superionic.io import TABLE_DECIMALS, write_csv, write_json
    from superionic.classifier.tune import model_spec
    import mlflow

    from superionic.tracking import log_artifacts, log_metrics, stage_run

    c = cfg.classifier
    data = load(cfg.paths.dataset)
    names = list(c.model_names)
    specs = {n: model_spec(cfg, n) for n in names}
    best = load_best(c.best_params, names)
    out_dir = Path(c.report_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with stage_run("evaluate", cfg, sections=["classifier", "dataset", "features"]):
        start = time.perf_counter()
        per_split, paper = evaluate_paper(specs, best, data, c.n_splits, c.test_size, cfg.seed, c.n_jobs)
        grouped, tables = {}, []
        for column in c.group_columns:
            grouped[column], table = evaluate_groups(specs, best, data, column, c.group_folds, cfg.seed, c.n_jobs)
            tables.append(table)
        metrics = {"dataset": dataset_summary(data), "paper": paper, "grouped": grouped}
        write_csv(per_split.round(6), out_dir / PAPER_SPLITS_CSV, float_format="%.6f")
        group_table = pd.concat(tables, ignore_index=True) if any(len(t) for t in tables) else pd.DataFrame(
            columns=["grouping", "model", "group", "n", "positives", "accuracy"])
        write_csv(group_table.sort_values(["grouping", "model", "group"]), out_dir / GROUP_ACCURACY_CSV,
                  float_format="%.6f")
        long = _grouped_long(grouped, paper)
        write_csv(long, out_dir / GROUPED_CSV, float_format="%.6f")
        write_csv(per_split.pivot(index="split", columns="model", values="accuracy")[names].reset_index(),
                  out_dir / PLOT_SPLITS_CSV, float_format="%.6f")
        write_csv(long.pivot(index="model", columns="protocol", values="accuracy").loc[names].reset_index(),
                  out_dir / PLOT_PROTOCOLS_CSV, float_format="%.6f")
        write_json(metrics, c.metrics, decimals=TABLE_DECIMALS)
        # the tuned hyper-parameters this evaluation used, and every protocol's scores, beside the paper's
        mlflow.log_params({f"best.{m}.{k}": v for m, params in best.items() for k, v in params.items()})
        log_metrics({"paper": {m: {k: v for k, v in s.items() if k.endswith("_mean")} for m, s in paper.items()}})
        log_metrics({"grouped": {col: {m: {k: info["models"][m][k] for k in ("accuracy", "f1", "roc_auc")}
                                       for m in names}
                                 for col, info in grouped.items() if info.get("status") == "ok"}})  # fmt: skip
        log_metrics({"elapsed_s": time.perf_counter() - start})
        log_artifacts([c.metrics, out_dir / PAPER_SPLITS_CSV, out_dir / GROUPED_CSV, out_dir / GROUP_ACCURACY_CSV])


def _grouped_long(grouped: Mapping[str, Any], paper: Mapping[str, Any]) -> pd.DataFrame:
    """Accuracy per model under each protocol, side by side (the plot and table source)."""
    rows = []
    for name, summ in paper.items():
        rows.append({"model": name, "protocol": "paper_100_splits", "accuracy": summ["accuracy_mean"],
                     "f1": summ["f1_mean"], "roc_auc": summ["roc_auc_mean"]})
        for column, info in grouped.items():
            if info.get("status") != "ok":
                continue
            m = info["models"][name]
            rows.append({"model": name, "protocol": f"grouped_{column}", "accuracy": m["accuracy"],
                         "f1": m["f1"], "roc_auc": m["roc_auc"]})
    return pd.DataFrame(rows)
