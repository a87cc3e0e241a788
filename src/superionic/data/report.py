"""The generated data report (``paths.data_report``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from superionic.data import columns as C
from superionic.data.sources import SOURCES
from superionic.io import write_text
from superionic.reports.render import render


def _reason_class(reason: str) -> str:
    """Group free-text reasons (which carry values) into countable classes."""
    return re.sub(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", "#", re.sub(r"'[^']*'", "'…'", reason))


TEMPLATE = "data.md.j2"


def censored(records: pd.DataFrame, label_threshold: float) -> dict:
    """Records that give only an upper bound of σ: how many, the largest bound, and whether all lie below the
    label threshold (then their label is certain)."""
    bounds = records.loc[records[C.SIGMA_CENSORED].fillna("").astype(str) != "", C.SIGMA]
    if bounds.empty:
        return {"n": 0, "largest": None, "below_threshold": True}
    return {"n": len(bounds), "largest": bounds.max(), "below_threshold": bool(bounds.max() < label_threshold)}


def context(
    ingest_metrics: dict,
    rejected: pd.DataFrame,
    repairs: pd.DataFrame,
    summary: pd.DataFrame,
    conflicts: pd.DataFrame,
    dataset_metrics: dict,
    cfg: DictConfig,
    family_table: pd.DataFrame,
    records: pd.DataFrame,
) -> dict:
    """Everything data.md.j2 shows, as plain data and tables (no formatting)."""
    per_source = pd.DataFrame(
        [
            {"source": name, "file": SOURCES[name].filename, **counts}
            for name, counts in ingest_metrics["per_source"].items()
        ]
    )[["source", "file", "read", "accepted", "repaired", "rejected"]]
    reasons = (
        rejected.assign(reason_class=rejected[C.REASON].map(_reason_class))
        .groupby([C.SOURCE, "reason_class"]).size().rename("rows").reset_index()
    )
    repair_kinds = (
        repairs.assign(kind=repairs["repair"].map(_reason_class))
        .groupby([C.SOURCE, "kind"]).size().rename("rows").reset_index()
    )
    return {
        "cfg": cfg,
        "ingest": ingest_metrics,
        "per_source": per_source,
        "n_not_room_temperature": int(rejected[C.REASON].str.startswith("not room temperature").sum()),
        "reasons": reasons,
        "repair_kinds": repair_kinds,
        "summary": summary,
        "dataset_metrics": pd.DataFrame([dataset_metrics]),
        "censored": censored(records, cfg.dataset.label_threshold),
        "n_records": len(records),
        "n_records_without_family": int(records[C.FAMILY].isna().sum()),
        "family_table": family_table,
        "conflicts": conflicts,
    }


def write_data_report(
    cfg: DictConfig, summary: pd.DataFrame, conflicts: pd.DataFrame, dataset_metrics: dict,
    family_table: pd.DataFrame, records: pd.DataFrame,
) -> None:
    ingest_metrics = json.loads(Path(cfg.paths.ingest_metrics).read_text())
    rejected = pd.read_csv(cfg.paths.rejected_rows, keep_default_na=False)
    repairs = pd.read_csv(cfg.paths.repairs, keep_default_na=False)
    text = render(TEMPLATE, context(ingest_metrics, rejected, repairs, summary, conflicts, dataset_metrics, cfg,
                                    family_table, records))
    write_text(text, cfg.paths.data_report)
