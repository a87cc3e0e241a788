"""Classifier report: ``reports/classifier.md`` and its figures, from stage outputs only.

Mirrors Kang 2023 (accuracy distribution, Table S2, Figure 3 confusion
matrices, Tables S3-S5 importance, SHAP) and adds the grouped-CV comparison.
Every number is read from the files the evaluate, importance and ensemble
stages wrote.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from superionic.io import pyplot as _plt, save_figure, write_text
from superionic.reports.render import link
from superionic.reports.render import render as render_template
from superionic.classifier.ensemble import ENSEMBLE_SUMMARY_JSON, MEMBERS_KEY
from superionic.classifier.collect import GROUP_ACCURACY_CSV, GROUPED_CSV, PAPER_SPLITS_CSV
from superionic.classifier.importance import COMMON_TXT, IMPORTANCE_KIND, SHAP_DIR, TOP_CSV
from superionic.stage import StageResult, stage

# classifier-report's figures: its own folder under classifier.report_dir
FIGURES_DIR = "figures"
FIG_ACCURACY = f"{FIGURES_DIR}/accuracy_distribution.png"
FIG_CONFUSION = f"{FIGURES_DIR}/confusion_matrices.png"
FIG_GROUPED = f"{FIGURES_DIR}/paper_vs_grouped.png"


def plot_accuracy(per_split: pd.DataFrame, labels: Mapping[str, str], order: Sequence[str], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    data = [per_split.loc[per_split["model"] == m, "accuracy"].to_numpy() for m in order]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(order) + 1), [labels[m] for m in order], rotation=30, ha="right")
    ax.set_ylabel("test accuracy per split")
    ax.set_title(f"Accuracy over {per_split['split'].nunique()} stratified 80/20 splits")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def plot_confusions(paper: Mapping[str, Any], labels: Mapping[str, str], order: Sequence[str], path: Path) -> None:
    plt = _plt()
    n = len(order)
    cols = 3
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, m in zip(axes.ravel(), order, strict=False):
        s = paper[m]
        mat = [[s["tn"], s["fp"]], [s["fn"], s["tp"]]]
        ax.imshow(mat, cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, str(mat[i][j]), ha="center", va="center")
        ax.set_xticks([0, 1], ["pred 0", "pred 1"])
        ax.set_yticks([0, 1], ["true 0", "true 1"])
        ax.set_title(labels[m], fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("Confusion matrices summed over the splits (1 = superionic)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def plot_grouped(long: pd.DataFrame, labels: Mapping[str, str], order: Sequence[str], path: Path) -> None:
    plt = _plt()
    protocols = list(dict.fromkeys(long["protocol"]))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(protocols), 1)
    for k, proto in enumerate(protocols):
        sub = long[long["protocol"] == proto].set_index("model")
        ax.bar([i + k * width for i in range(len(order))], [sub.loc[m, "accuracy"] for m in order],
               width=width, label=proto)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(order))], [labels[m] for m in order],
                  rotation=30, ha="right")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    ax.set_title("Random splits vs grouped CV (unseen chemical systems / structure families)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


TEMPLATE = "classifier.md.j2"


def context(cfg: DictConfig) -> dict[str, Any]:
    """Everything classifier.md.j2 shows, as plain data read from the stage outputs (no formatting)."""
    c = cfg.classifier
    out_dir = Path(c.report_dir)
    rel = Path(link(c.report_dir, c.report))
    metrics = json.loads(Path(c.metrics).read_text(encoding="utf-8"))
    best = json.loads(Path(c.best_params).read_text(encoding="utf-8"))["models"]
    group_acc = pd.read_csv(out_dir / GROUP_ACCURACY_CSV)
    top = pd.read_csv(out_dir / TOP_CSV, keep_default_na=False)
    common = [x for x in (out_dir / COMMON_TXT).read_text(encoding="utf-8").split("\n") if x]
    ens = json.loads((out_dir / ENSEMBLE_SUMMARY_JSON).read_text(encoding="utf-8"))
    order = list(c.model_names)
    labels = {m: (cfg.models[m].label or m) for m in order}
    paper = metrics["paper"]
    ds = metrics["dataset"]
    majority = max(ds["positive_rate"], 1 - ds["positive_rate"])

    paper_rows = [[labels[m], *(paper[m][k] for k in ("accuracy_mean", "accuracy_max", "accuracy_min",
                                                       "accuracy_std", "precision_mean", "recall_mean",
                                                       "f1_mean", "roc_auc_mean"))] for m in order]
    grouped = metrics["grouped"]
    grouped_rows = []
    for m in order:
        row = [labels[m], paper[m]["accuracy_mean"]]
        for info in grouped.values():
            row.append(info["models"][m]["accuracy"] if info.get("status") == "ok" else None)
        grouped_rows.append(row)
    # Majority-class accuracy on the rows each protocol scores (grouped CV may leave rows out).
    baseline = ["majority-class baseline", majority]
    for col in grouped:
        sub = group_acc[(group_acc["grouping"] == col) & (group_acc["model"] == order[0])]
        rate = sub["positives"].sum() / sub["n"].sum() if len(sub) else float("nan")
        baseline.append(max(rate, 1 - rate) if len(sub) else None)
    grouped_rows.append(baseline)
    groupings = [{"column": col, "status": info.get("status"), "n_groups": info.get("n_groups"),
                  "n_folds": info["models"][order[0]]["n_folds"] if info.get("status") == "ok" else None,
                  "n_excluded": info.get("n_rows_excluded_null_group"),
                  "spellings_merged": dict(info.get("spellings_merged") or {})} for col, info in grouped.items()]

    members = list(ens[MEMBERS_KEY])
    fam = group_acc[(group_acc["grouping"] == "family") & (group_acc["model"].isin(members))]
    family_rows = []
    if len(fam):
        wide = fam.pivot_table(index=["group", "n", "positives"], columns="model", values="accuracy").reset_index()
        family_rows = [[r["group"], int(r["n"]), int(r["positives"]), *[r.get(m) for m in members]]
                       for _, r in wide.iterrows()]
    cols = ["rank"]
    for m in members:
        cols += [f"{m}_feature", f"{m}_importance"]
    chosen_by = ens["member_selection"]
    ensemble_rows = [[labels[m], ens[m]["unanimous"], ens[m]["unanimous_and_superionic"]] for m in members]
    ensemble_rows.append(["ensemble", ens["ensemble"]["positive"], ens["ensemble"]["positive_and_superionic"]])
    return {
        "cfg": cfg,
        "dataset": ds,
        "majority_accuracy": majority,
        "train_percent": int(round(100 * (1 - c.test_size))),
        "test_percent": int(round(100 * c.test_size)),
        "labels": labels,
        "order": order,
        "paper_rows": paper_rows,
        "grouped_columns": list(grouped),
        "grouped_rows": grouped_rows,
        "groupings": groupings,
        "members": members,
        "member_labels": [labels[m] for m in members],
        "family_rows": family_rows,
        "importance_kinds": {m: IMPORTANCE_KIND.get(m, "feature_importances_") for m in members},
        "importance_rows": top[cols].values.tolist(),
        "common": common,
        "member_selection": {"protocol": chosen_by["protocol"],
                             "ranking": sorted(chosen_by["accuracy"].items(), key=lambda kv: -kv[1])},
        "ensemble": {"n_materials": ens["n_materials"], "n_superionic": ens["n_superionic"], "rows": ensemble_rows},
        "tuned": [{"label": labels[m], "accuracy": best[m]["accuracy"], "n_complete": best[m]["n_complete"],
                   "params": dict(best[m]["params"])} for m in order],
        "figures": {"accuracy": (rel / FIG_ACCURACY).as_posix(), "confusion": (rel / FIG_CONFUSION).as_posix(),
                    "grouped": (rel / FIG_GROUPED).as_posix(),
                    "shap": {m: (rel / SHAP_DIR / f"shap_{m}.png").as_posix() for m in members}},
        "generalization": generalization_context(cfg),
    }


def render(cfg: DictConfig) -> str:
    """Draw the figures and render reports/classifier.md."""
    c = cfg.classifier
    out_dir = Path(c.report_dir)
    order = list(c.model_names)
    labels = {m: (cfg.models[m].label or m) for m in order}
    metrics = json.loads(Path(c.metrics).read_text(encoding="utf-8"))
    plot_accuracy(pd.read_csv(out_dir / PAPER_SPLITS_CSV), labels, order, out_dir / FIG_ACCURACY)
    plot_confusions(metrics["paper"], labels, order, out_dir / FIG_CONFUSION)
    plot_grouped(pd.read_csv(out_dir / GROUPED_CSV), labels, order, out_dir / FIG_GROUPED)
    return render_template(TEMPLATE, context(cfg))


GENERALIZATION_TEMPLATE = "classifier_generalization.md.j2"


def generalization_context(cfg: DictConfig) -> dict[str, Any] | None:
    """The generalize stage's variant table and the default's scores (None before the stage ran), for this
    report and the ablation report."""
    from superionic.classifier.generalize import PROTOCOL_TITLES, PROTOCOLS, VARIANTS_CSV, variant_rows

    g = cfg.generalize
    table_path = Path(g.report_dir) / VARIANTS_CSV
    if not Path(g.metrics).exists() or not table_path.exists():
        return None
    metrics = json.loads(Path(g.metrics).read_text(encoding="utf-8"))
    head = metrics["default_scores"]
    return {
        "report": g.report,
        "report_name": Path(g.report).name,
        "coverage": g.coverage,
        "variants": variant_rows(pd.read_csv(table_path)),
        "protocol_titles": [PROTOCOL_TITLES[p] for p in PROTOCOLS],
        "default": metrics["default"],
        "family_balanced_accuracy": head["family"]["balanced_accuracy"],
        "chemsys_balanced_accuracy": head["chemsys"]["balanced_accuracy"],
        "paper_protocol_accuracy": metrics["default_paper_protocol"]["accuracy_mean"],
        "structure": structure_context(Path(g.report_dir)),
    }


def generalization_section(cfg: DictConfig, number: str = "6. ") -> str:
    """The generalization section on its own (the ablation report appends it, unnumbered)."""
    return render_template(GENERALIZATION_TEMPLATE, {"generalization": generalization_context(cfg), "number": number})


def structure_context(report_dir: Path) -> dict[str, Any] | None:
    """The structure-ablation section's data (structure_ablation.md.j2), None before the stage ran."""
    from superionic.classifier.structure_ablation import METRICS_FILE, report_context

    path = report_dir / METRICS_FILE
    if not path.exists():
        return None
    return report_context(json.loads(path.read_text(encoding="utf-8")))


@stage("classifier-report", sections=["classifier"])
def run_stage(cfg: DictConfig) -> StageResult:
    c = cfg.classifier
    text = render(cfg)
    write_text(text, c.report)
    out_dir = Path(c.report_dir)
    return StageResult(artifacts=[c.report, out_dir / FIG_ACCURACY, out_dir / FIG_CONFUSION, out_dir / FIG_GROUPED])
