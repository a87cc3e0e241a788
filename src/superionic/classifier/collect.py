"""Stage ``classifier-collect``: merge the per-model tune and evaluate outputs.

``tune@<model>`` and ``evaluate@<model>`` run one model each (a DVC
``matrix``), so editing one model's search space re-tunes and re-evaluates
that model only. This cheap stage then writes the documents the rest of the
track reads: ``classifier.best_params`` and the tables under
``classifier.report_dir``. When a re-run model's numbers do not change, its
outputs are byte-identical and DVC runs nothing downstream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

# classifier-collect writes into its own folder under classifier.report_dir
SCORES_DIR = "scores"
PAPER_SPLITS_CSV = f"{SCORES_DIR}/paper_splits.csv"
GROUPED_CSV = f"{SCORES_DIR}/grouped_cv.csv"
GROUP_ACCURACY_CSV = f"{SCORES_DIR}/group_accuracy.csv"
# Wide copies for `dvc plots` (one column per model / per protocol).
PLOT_SPLITS_CSV = f"{SCORES_DIR}/plot_accuracy_by_split.csv"
PLOT_PROTOCOLS_CSV = f"{SCORES_DIR}/plot_accuracy_by_protocol.csv"
GROUP_ACCURACY_COLUMNS = ["grouping", "model", "group", "n", "positives", "accuracy"]


def load_best(path: str | Path, names: list[str]) -> dict[str, dict[str, Any]]:
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [n for n in names if n not in payload["models"]]
    if missing:
        raise ValueError(f"classifier.best_params: {path} lacks {missing}; rerun `dvc repro`")
    return {n: payload["models"][n]["params"] for n in names}


def evaluated_path(evaluate_dir: str | Path, model: str) -> Path:
    """Where ``evaluate@<model>`` writes that model's scores (exact floats; the merge rounds)."""
    return Path(evaluate_dir) / f"{model}.json"


def tuned_path(tune_dir: str | Path, model: str) -> Path:
    """Where ``tune@<model>`` writes that model's study result."""
    return Path(tune_dir) / f"{model}.json"


def merge_tuned(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The per-model tune results as one ``best_params`` document; all must come from the same data."""
    hashes = {name: res["data_hash"] for name, res in results.items()}
    if len(set(hashes.values())) > 1:
        raise ValueError(f"classifier.tune_dir: models were tuned on different datasets {hashes}; "
                         "rerun `dvc repro` so every tune@<model> sees the current dataset")
    data_hash = next(iter(hashes.values()))
    return {"data_hash": data_hash,
            "models": {name: {k: v for k, v in res.items() if k not in ("data_hash", "model")}
                       for name, res in results.items()}}


def combine(evaluated: Mapping[str, Mapping[str, Any]], names: list[str]) -> dict[str, Any]:
    """Merge per-model evaluations (in ``names`` order) into the tables and metrics the reports read."""
    missing = [n for n in names if n not in evaluated]
    if missing:
        raise ValueError(f"classifier.evaluate_dir lacks {missing}; rerun `dvc repro`")
    docs = [evaluated[n] for n in names]
    per_split = pd.concat([pd.DataFrame(d["paper_splits"]["data"], columns=d["paper_splits"]["columns"]) for d in docs],
                          ignore_index=True)
    paper = {n: evaluated[n]["paper"] for n in names}
    grouped: dict[str, Any] = {}
    for column, first in docs[0]["grouped"].items():
        info = {k: v for k, v in first.items() if k != "models"}
        if first.get("status") == "ok":
            info["models"] = {n: evaluated[n]["grouped"][column]["models"][n] for n in names}
        grouped[column] = info
    rows = [row for d in docs for row in d["group_accuracy"]]
    group_table = pd.DataFrame(rows, columns=GROUP_ACCURACY_COLUMNS)
    long = _grouped_long(grouped, paper)
    return {
        "per_split": per_split,
        "group_table": group_table.sort_values(["grouping", "model", "group"]),
        "long": long,
        "metrics": {"dataset": docs[0]["dataset"], "paper": paper, "grouped": grouped},
    }


def write_combined(combined: Mapping[str, Any], names: list[str], out_dir: Path, metrics_path: str | Path) -> list[Path]:
    from superionic.io import TABLE_DECIMALS, write_csv, write_json

    per_split, long = combined["per_split"], combined["long"]
    return [
        write_csv(per_split.round(6), out_dir / PAPER_SPLITS_CSV, float_format="%.6f"),
        write_csv(combined["group_table"], out_dir / GROUP_ACCURACY_CSV, float_format="%.6f"),
        write_csv(long, out_dir / GROUPED_CSV, float_format="%.6f"),
        write_csv(per_split.pivot(index="split", columns="model", values="accuracy")[names].reset_index(),
                  out_dir / PLOT_SPLITS_CSV, float_format="%.6f"),
        write_csv(long.pivot(index="model", columns="protocol", values="accuracy").loc[names].reset_index(),
                  out_dir / PLOT_PROTOCOLS_CSV, float_format="%.6f"),
        write_json(combined["metrics"], metrics_path, decimals=TABLE_DECIMALS),
    ]


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



@stage("classifier-collect", sections=["classifier"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.io import write_json

    c = cfg.classifier
    names = list(c.model_names)
    tuned = {n: _read(tuned_path(c.tune_dir, n), "tune") for n in names}
    evaluated = {n: _read(evaluated_path(c.evaluate_dir, n), "evaluate") for n in names}
    best = write_json(merge_tuned(tuned), c.best_params)
    combined = combine(evaluated, names)
    written = write_combined(combined, names, Path(c.report_dir), c.metrics)
    metrics = combined["metrics"]
    log.info("merged %d models into %s and %s", len(names), c.best_params, c.report_dir)
    return StageResult(score_metrics(metrics["paper"], metrics["grouped"], names), [best, *written])


def score_metrics(paper: Mapping[str, Mapping[str, Any]], grouped: Mapping[str, Mapping[str, Any]],
                  names: list[str]) -> dict[str, Any]:
    """The scores logged to MLflow (evaluate@<model> for one model, classifier-collect for all): the
    paper protocol's means and each available grouped CV's accuracy, F1 and ROC-AUC."""
    return {
        "paper": {m: {k: v for k, v in paper[m].items() if k.endswith("_mean")} for m in names},
        "grouped": {col: {m: {k: info["models"][m][k] for k in ("accuracy", "f1", "roc_auc")} for m in names}
                    for col, info in grouped.items() if info.get("status") == "ok"},
    }


def _read(path: Path, stage: str) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro {stage}` (one {stage}@<model> per model)")
    return json.loads(path.read_text(encoding="utf-8"))
