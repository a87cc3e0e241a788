"""Structure-ablation stage: does a real crystal structure help? CD vs CD + Li-sublattice features.

The paper's "composition + structure" runs used reported lattice constants.
Here the structure comes from the experimental CIFs that OBELiX publishes for
some of its rows (``generalize.structure.cif_dir``): Li–Li distances, Li
density, partial Li occupancy, anion packing and Li coordination
(:mod:`superionic.features.li_sublattice`). Each CIF is tied to its OBELiX
row by ``ID``, the row to its ingested record by the file row number, and the
record to its material by the composition key; a material with several CIFs
takes the mean of their features.

On the materials that have a structure, the same model (the generalize
stage's ``generalize.structure.model``) is scored with and without the
structure block on identical folds: repeated stratified k-fold (random) and
chemical-system-grouped k-fold. With about a hundred materials the fold-to-
fold spread is large, so the report gives it beside every mean.

The stage also states what the paper's "264 materials" most likely is: the
80 % training part of its ~330-material set, computed here for our ``kang``
variant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold

from superionic.data import columns as D
from superionic.classifier import generalize as G
from superionic.classifier.protocol import Split, grouped_splits
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

OBELIX = "obelix2025"
OBELIX_ID = "ID"
STRUCT_BLOCK = "struct"
WITHOUT, WITH = "cd", "cd+struct"
# the stage's folder under generalize.report_dir
ABLATION_DIR = "structure-ablation"
METRICS_FILE = f"{ABLATION_DIR}/structure_ablation.json"
TABLE_FILE = f"{ABLATION_DIR}/structure_ablation.csv"


def obelix_ids_by_composition(interim: pd.DataFrame, obelix_raw: pd.DataFrame) -> pd.DataFrame:
    """(composition key, OBELiX ID) for every ingested OBELiX record; ROW is the file row (header = 1)."""
    records = interim[interim[D.SOURCE] == OBELIX][[D.ROW, D.COMPOSITION]]
    position = records[D.ROW].astype(int).to_numpy() - 2
    if len(position) and (position.min() < 0 or position.max() >= len(obelix_raw)):
        raise ValueError("interim OBELiX rows do not match the OBELiX file: rerun `dvc repro ingest`")
    ids = obelix_raw[OBELIX_ID].astype(str).to_numpy()[position]
    return pd.DataFrame({D.COMPOSITION: records[D.COMPOSITION].to_numpy(), OBELIX_ID: ids})


def structure_by_composition(links: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Mean structure features per composition over its CIFs (rows without any feature dropped)."""
    joined = links.join(features, on=OBELIX_ID, how="inner")
    table = joined.drop(columns=OBELIX_ID).groupby(D.COMPOSITION, sort=True).mean()
    return table[table.notna().any(axis=1)]


def ablation_folds(y: np.ndarray, chemsys: np.ndarray, n_folds: int, repeats: int, seed: int) -> dict[str, list[Split]]:
    index = np.arange(len(y))
    rand = RepeatedStratifiedKFold(n_splits=n_folds, n_repeats=repeats, random_state=seed)
    return {
        G.RANDOM: [(tr, te) for tr, te in rand.split(index, y)],
        G.CHEMSYS: grouped_splits(y, chemsys, n_folds, seed),
    }


def compare(
    X_without: pd.DataFrame, X_with: pd.DataFrame, y: np.ndarray, chemsys: np.ndarray,
    folds: Mapping[str, Sequence[Split]], spec: Mapping[str, Any], params: Mapping[str, Any],
    method: str, inner_folds: int, seed: int, n_jobs: int,
) -> pd.DataFrame:
    """Per fold: balanced accuracy and ROC-AUC with and without the structure block."""
    rows = []
    for protocol, splits in folds.items():
        fold = G.Folds(protocol, list(splits), [str(i) for i in range(len(splits))])
        for name, X in ((WITHOUT, X_without), (WITH, X_with)):
            oof = G.out_of_fold(spec, params, X, y, chemsys, fold, method, inner_folds, seed, n_jobs)
            for part, sub in oof.groupby("part", sort=False):
                s = G.scores(sub["y"].to_numpy(), sub["p"].to_numpy(), 1.0, 10)
                rows.append({"protocol": protocol, "features": name, "fold": int(part),
                             "balanced_accuracy": s["balanced_accuracy"], "roc_auc": s["roc_auc"]})
    return pd.DataFrame(rows)


def summarize(per_fold: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (protocol, name), sub in per_fold.groupby(["protocol", "features"], sort=True):
        out.setdefault(protocol, {})[name] = {
            "balanced_accuracy_mean": float(sub["balanced_accuracy"].mean()),
            "balanced_accuracy_std": float(sub["balanced_accuracy"].std(ddof=0)),
            "roc_auc_mean": float(sub["roc_auc"].mean()),
            "roc_auc_std": float(sub["roc_auc"].std(ddof=0)),
            "n_folds": int(len(sub)),
        }
    for protocol, entry in out.items():
        a = per_fold[(per_fold["protocol"] == protocol) & (per_fold["features"] == WITHOUT)]
        b = per_fold[(per_fold["protocol"] == protocol) & (per_fold["features"] == WITH)]
        diff = b["balanced_accuracy"].to_numpy() - a["balanced_accuracy"].to_numpy()
        # the same folds on both sides: the paired difference is what structure adds
        entry["paired_difference_mean"] = float(diff.mean())
        entry["paired_difference_std"] = float(diff.std(ddof=0))
        entry["folds_better_with_structure"] = int((diff > 0).sum())
        entry["folds_worse_with_structure"] = int((diff < 0).sum())
    return out


def paper_264(interim: pd.DataFrame, variants: Mapping[str, Sequence[str]], variant: str,
              dedup_rule: str, label_threshold: float, test_size: float) -> dict[str, Any]:
    """Materials of the Kang variant and the size of its training part under the paper's split.

    ``variants``: dataset option -> its sources, as under ``datasets``.
    """
    from superionic.data.dataset import deduplicate, select_variant

    materials, _ = deduplicate(select_variant(interim, dict(variants), variant), dedup_rule, label_threshold)
    n = int(len(materials))
    return {"variant": variant, "materials": n, "test_size": test_size,
            "training_part": int(n - int(np.ceil(test_size * n)))}


@stage("structure-ablation", sections=["generalize", "seed"])
def run_stage(cfg: Any) -> StageResult:
    from superionic.data.dataset import load_dataset, variant_sources
    from superionic.features.li_sublattice import featurize_cif_dir
    from superionic.io import TABLE_DECIMALS, write_csv, write_json

    g, s = cfg.generalize, cfg.generalize.structure
    if s.model not in g.models:
        raise ValueError(f"generalize.structure.model: {s.model!r} is not one of generalize.models {list(g.models)}")
    entry = g.models[s.model]
    spec, params = cfg.models[entry.spec], dict(entry.params)
    interim = pd.read_parquet(cfg.paths.interim)
    obelix_csv = Path(cfg.data_dir) / "conductivity" / "obelix2025_subset.csv"
    raw = pd.read_csv(obelix_csv, dtype=str, keep_default_na=False)
    links = obelix_ids_by_composition(interim, raw)
    cif_dir = Path(s.cif_dir)
    have = {p.stem for p in cif_dir.glob("*.cif")}
    features, failures = featurize_cif_dir(cif_dir, sorted(set(links[OBELIX_ID]) & have))
    struct = structure_by_composition(links[links[OBELIX_ID].isin(have)], features)
    frame, cd_columns = load_dataset(cfg.paths.dataset)
    frame = frame[frame[D.COMPOSITION].isin(struct.index)].sort_values(D.REDUCED_FORMULA).reset_index(drop=True)
    y = frame[D.LABEL].to_numpy(dtype=int)
    chemsys = frame[D.CHEMSYS].astype(str).to_numpy()
    X_without = G.feature_table(frame, cd_columns, [G.CD_BLOCK])
    X_struct = struct.loc[frame[D.COMPOSITION]].reset_index(drop=True)
    X_with = pd.concat([X_without, X_struct], axis=1)
    folds = ablation_folds(y, chemsys, int(s.folds), int(s.repeats), int(cfg.seed))
    per_fold = compare(X_without, X_with, y, chemsys, folds, spec, params, g.calibration,
                       int(g.inner_folds), int(cfg.seed), int(g.n_jobs))  # fmt: skip
    metrics = {
        "model": s.model,
        "cifs": len(have),
        "cifs_linked_to_ingested_records": len(set(links[OBELIX_ID]) & have),
        "cifs_unreadable": failures,
        "materials_with_structure": int(len(frame)),
        "superionic": int(y.sum()),
        "structure_features": list(X_struct.columns),
        "comparison": summarize(per_fold),
        "paper_264": paper_264(interim, variant_sources(cfg), s.paper_variant, cfg.dataset.dedup_rule,
                               float(cfg.dataset.label_threshold), float(cfg.classifier.test_size)),
    }
    out = Path(g.report_dir)
    paths = [write_csv(per_fold, out / TABLE_FILE),
             write_json(metrics, out / METRICS_FILE, decimals=TABLE_DECIMALS)]
    log.info("structure ablation on %d materials: %s", len(frame), {
        p: round(v["paired_difference_mean"], 3) for p, v in metrics["comparison"].items()})
    return StageResult({"materials_with_structure": len(frame)}, paths)


def report_context(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The stage's metrics (``METRICS_FILE``) as the data of structure_ablation.md.j2, one row per protocol."""
    protocols = [{"protocol": protocol, "n_folds": entry[WITHOUT]["n_folds"],
                  "without": entry[WITHOUT], "with": entry[WITH],
                  "difference_mean": entry["paired_difference_mean"], "difference_std": entry["paired_difference_std"],
                  "better": entry["folds_better_with_structure"], "worse": entry["folds_worse_with_structure"]}
                 for protocol, entry in metrics["comparison"].items()]
    p = metrics["paper_264"]
    return {
        "cifs": metrics["cifs"],
        "cifs_linked": metrics["cifs_linked_to_ingested_records"],
        "cifs_unreadable": len(metrics["cifs_unreadable"]),
        "materials": metrics["materials_with_structure"],
        "superionic": metrics["superionic"],
        "model": metrics["model"],
        "n_features": len(metrics["structure_features"]),
        "protocols": protocols,
        "paper_264": {"variant": p["variant"], "materials": p["materials"], "training_part": p["training_part"],
                      "training_share": 1 - p["test_size"]},
    }
