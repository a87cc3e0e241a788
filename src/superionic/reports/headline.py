"""Headline stage: the few numbers that say how a run went, in one flat metrics file.

``dvc metrics show`` and ``dvc exp show`` read only this file (the stages'
detailed metrics stay plain outputs), so experiments compare on a screen:
each key is ``<track>.<quantity>`` and names the same quantity as the MLflow
metric of the stage that computes it. Nothing is computed here; a key whose
source lacks it is an error naming the file and key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from superionic.stage import StageResult, stage

# headline key -> (source file key in HEADLINE_SOURCES, dotted path inside that file)
HEADLINE: dict[str, tuple[str, str]] = {
    "classifier.paper_accuracy_gb": ("classifier", "paper.gb.accuracy_mean"),
    "classifier.paper_accuracy_lgbm": ("classifier", "paper.lgbm.accuracy_mean"),
    "classifier.chemsys_accuracy_lgbm": ("classifier", "grouped.chemsys.models.lgbm.accuracy"),
    "classifier.family_accuracy_lgbm": ("classifier", "grouped.family.models.lgbm.accuracy"),
    "generalize.chemsys_balanced_accuracy": ("generalize", "default_scores.chemsys.balanced_accuracy"),
    "generalize.family_balanced_accuracy": ("generalize", "default_scores.family.balanced_accuracy"),
    "generalize.source_balanced_accuracy": ("generalize", "default_scores.source.balanced_accuracy"),
    "generalize.chemsys_ece": ("generalize", "default_scores.chemsys.ece"),
    "generalize.chemsys_selective_accuracy": ("generalize", "default_scores.chemsys.selective_accuracy"),
    "generalize.paper_accuracy": ("generalize", "default_paper_protocol.accuracy_mean"),
    "screening.survivors": ("screen_predict", "n_survivors"),
    "screening.candidates_in_domain": ("screen_predict", "n_p_min_in_domain"),
    "screening.survivors_answered": ("screen_predict", "n_survivors_answered"),
    "screening.rediscovery_roc_auc": ("rediscovery", "roc_auc_labelled"),
    "nasicon.val_ranking_accuracy": ("nasicon_mlr", "best.val_ranking_accuracy"),
    "nasicon.experimental_recall_search": ("nasicon_svc", "experimental_recall.all.search"),
    "nasicon.test_ranking_accuracy_sisso": ("nasicon_sisso", "chosen.test_ranking_accuracy"),
    "nasicon.experimental_recall_sisso": ("nasicon_svc", "experimental_recall.all.sisso"),
    "explore.spearman_vs_ensemble": ("explore", "ensemble_check.spearman_sample"),
    "md.dEa_median_eV": ("md_comparison", "dEa_median_eV"),
}


def headline_sources(cfg: Any) -> dict[str, Path]:
    """The metrics files the headline reads (also the stage's deps in dvc.yaml)."""
    from superionic import files

    screen = Path(cfg.screen.report_dir)
    return {
        "classifier": Path(cfg.classifier.metrics),
        "generalize": Path(cfg.generalize.metrics),
        "screen_predict": screen / files.SCREEN_PREDICT_METRICS,
        "rediscovery": screen / files.SCREEN_REDISCOVERY_METRICS,
        "nasicon_mlr": Path(cfg.nasicon.paths.mlr_metrics),
        "nasicon_svc": Path(cfg.nasicon.paths.svc_metrics),
        "nasicon_sisso": Path(cfg.nasicon.paths.sisso_metrics),
        "explore": Path(cfg.explore.report_dir) / files.EXPLORE_METRICS,
        "md_comparison": Path(cfg.md.report_dir) / files.MD_COMPARISON_METRICS,
    }


def select(documents: Mapping[str, Mapping[str, Any]], paths: Mapping[str, Path]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, (source, dotted) in HEADLINE.items():
        node: Any = documents[source]
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(f"{paths[source]}: no {dotted!r} for headline metric {key!r}")
            node = node[part]
        if isinstance(node, bool) or not isinstance(node, int | float):
            raise TypeError(f"{paths[source]}: {dotted!r} is {node!r}, not a number")
        out[key] = node
    return out


@stage("headline", sections=["headline"])
def run_stage(cfg: Any) -> StageResult:
    from superionic.io import write_json

    paths = headline_sources(cfg)
    documents = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in paths.items()}
    headline = select(documents, paths)
    write_json(headline, cfg.headline.metrics)
    return StageResult(headline)
