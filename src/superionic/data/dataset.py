"""Dataset stage: a variant's records -> one labelled row per material + features.

Deduplication rule: records with the same composition key (fractional
amounts, so Li2O and Li4O2 are one material) collapse to one material whose
log10 sigma is the median (``dataset.dedup_rule: median``) or maximum
(``max``) of its records. The label is ``sigma >= dataset.label_threshold``.
Groups whose records fall on both sides of the threshold are written to
``paths.duplicate_conflicts`` for the user to inspect. A censored record
("<1E-10") enters with its bound as its value: every bound in the sources is
far below the label threshold (the data report gives the largest), so the
label it gives is exact, while its log10 sigma is only an upper bound.
Structure families go through the curated map (``families``) before records
are merged, so one family is one group in family-grouped CV.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig

from superionic.config import DedupRule
from superionic.data import columns as C
from superionic.data.families import UNMAPPED, canonical_families, family_mapping_table
from superionic.features.structure import LatticeFeaturizer
from superionic.io import atomic_write, write_csv, write_json
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

DEDUP_RULES = tuple(r.value for r in DedupRule)
_FEATURES_META_KEY = b"superionic.feature_columns"


def select_sources(interim: pd.DataFrame, sources: list[str], key: str) -> pd.DataFrame:
    """The ingested records of ``sources`` (``key``: the config key that lists them, for errors)."""
    unknown = sorted(set(sources) - set(interim[C.SOURCE]))
    if unknown:
        raise KeyError(f"{key} names sources with no ingested rows: {unknown}")
    return interim[interim[C.SOURCE].isin(list(sources))].copy()


def select_variant(interim: pd.DataFrame, variants: dict, variant: str) -> pd.DataFrame:
    """The records of one dataset option; ``variants``: name -> sources, as under ``datasets``."""
    if variant not in variants:
        raise KeyError(f"dataset.variant={variant!r} is not one of datasets {sorted(variants)}")
    return select_sources(interim, list(variants[variant]), f"datasets.{variant}.sources")


def variant_sources(cfg: DictConfig) -> dict[str, list[str]]:
    """Every dataset option's sources (``datasets.<name>.sources``, from conf/dataset/<name>.yaml)."""
    return {name: list(option.sources) for name, option in cfg.datasets.items()}


def _mode(values: pd.Series) -> object:
    values = values.dropna()
    if values.empty:
        return None
    counts = values.value_counts()
    return sorted(counts[counts == counts.max()].index)[0]


def apply_family_map(records: pd.DataFrame, families: dict[str, list[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records with canonical families, and the table of spellings seen (for the data report)."""
    table = family_mapping_table(records[C.FAMILY], families)
    return records.assign(**{C.FAMILY: canonical_families(records[C.FAMILY], families)}), table


def deduplicate(
    records: pd.DataFrame, rule: str, label_threshold: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collapse records to materials; return (materials, conflicting records)."""
    if rule not in DEDUP_RULES:
        raise ValueError(f"dataset.dedup_rule={rule!r}; choose one of {DEDUP_RULES}")
    if label_threshold <= 0:
        raise ValueError(f"dataset.label_threshold={label_threshold} must be positive (S/cm)")
    log_threshold = math.log10(label_threshold)
    records = records.sort_values([C.COMPOSITION, C.SOURCE, C.ROW])
    records = records.assign(_label=(records[C.LOG10_SIGMA] >= log_threshold).astype(int))
    groups = records.groupby(C.COMPOSITION, sort=True)
    agg = getattr(groups[C.LOG10_SIGMA], rule)()
    first = groups.first()
    materials = pd.DataFrame(
        {
            C.COMPOSITION: agg.index,
            C.FORMULA: first[C.FORMULA].to_numpy(),
            C.REDUCED_FORMULA: first[C.REDUCED_FORMULA].to_numpy(),
            C.AMOUNTS: first[C.AMOUNTS].to_numpy(),
            C.CHEMSYS: first[C.CHEMSYS].to_numpy(),
            C.MOBILE_ION: first[C.MOBILE_ION].to_numpy(),
            C.LOG10_SIGMA: agg.to_numpy(),
            C.N_RECORDS: groups.size().to_numpy(),
            C.SOURCES: groups[C.SOURCE].agg(lambda s: ";".join(sorted(set(s)))).to_numpy(),
            C.FAMILY: groups[C.FAMILY].agg(_mode).to_numpy(),
            C.SPACE_GROUP: groups[C.SPACE_GROUP].agg(_mode).to_numpy(),
            C.LATTICE_A: groups[C.LATTICE_A].median().to_numpy(),
            C.LATTICE_C: groups[C.LATTICE_C].median().to_numpy(),
            C.VOLUME: groups[C.VOLUME].median().to_numpy(),
            # A material known only through upper bounds ("<1E-10") keeps that flag.
            C.SIGMA_CENSORED: groups[C.SIGMA_CENSORED].agg(
                lambda s: s.iloc[0] if (s == s.iloc[0]).all() else ""
            ).to_numpy(),
            C.LABEL_CONFLICT: (groups["_label"].nunique() > 1).to_numpy(),
        }
    )
    materials[C.SIGMA] = 10.0 ** materials[C.LOG10_SIGMA]
    materials[C.LABEL] = (materials[C.LOG10_SIGMA] >= log_threshold).astype(int)
    conflicted = materials.loc[materials[C.LABEL_CONFLICT], C.COMPOSITION]
    conflicts = records[records[C.COMPOSITION].isin(conflicted)][
        [C.COMPOSITION, C.REDUCED_FORMULA, C.SOURCE, C.ROW, C.FORMULA_RAW, C.SIGMA, C.DOI]
    ].reset_index(drop=True)
    return materials.reset_index(drop=True), conflicts


def attach_features(materials: pd.DataFrame, composition_features: pd.DataFrame, structural: bool) -> tuple[pd.DataFrame, list[str]]:
    """Join CD-145 (and optionally lattice descriptors); return frame and feature names."""
    feature_names = [c for c in composition_features.columns if c != C.COMPOSITION]
    frame = materials.merge(composition_features, on=C.COMPOSITION, how="left", validate="one_to_one")
    missing = frame.loc[frame[feature_names].isna().all(axis=1), C.COMPOSITION]
    if len(missing):
        raise ValueError(f"{len(missing)} materials lack composition features (re-run featurize): {list(missing[:5])}")
    if structural:
        lattice = LatticeFeaturizer()
        values = [
            lattice.featurize(a, c, v, sg)
            for a, c, v, sg in frame[[C.LATTICE_A, C.LATTICE_C, C.VOLUME, C.SPACE_GROUP]].itertuples(index=False)
        ]
        labels = lattice.feature_labels()
        frame = pd.concat([frame, pd.DataFrame(values, columns=labels, index=frame.index)], axis=1)
        feature_names = feature_names + labels
    return frame, feature_names


def save_dataset(frame: pd.DataFrame, feature_columns: list[str], path: str | Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[_FEATURES_META_KEY] = json.dumps(feature_columns).encode()
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def load_dataset(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read a dataset written by this stage: (frame, feature column names)."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if _FEATURES_META_KEY not in meta:
        raise ValueError(f"{path} has no feature-column metadata; was it written by `superionic dataset`?")
    return table.to_pandas(), json.loads(meta[_FEATURES_META_KEY])


def variant_summary(interim: pd.DataFrame, variants: dict, rule: str, threshold: float) -> pd.DataFrame:
    """Records, materials, duplicates and label balance of every variant."""
    rows = []
    for name in variants:
        records = select_variant(interim, variants, name)
        materials, conflicts = deduplicate(records, rule, threshold)
        rows.append(
            {
                "variant": name,
                "sources": ", ".join(variants[name]),
                "records": len(records),
                "materials": len(materials),
                "duplicate_groups": int((materials[C.N_RECORDS] > 1).sum()),
                "conflicting_groups": int(materials[C.LABEL_CONFLICT].sum()),
                "superionic": int(materials[C.LABEL].sum()),
                "not_superionic": int((materials[C.LABEL] == 0).sum()),
                "superionic_fraction": round(float(materials[C.LABEL].mean()), 4),
                "li_materials": int((materials[C.MOBILE_ION] == "Li").sum()),
                "na_materials": int((materials[C.MOBILE_ION] == "Na").sum()),
            }
        )
    return pd.DataFrame(rows)


@stage("dataset", sections=["dataset", "datasets", "features", "paths"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.data.report import write_data_report

    interim = pd.read_parquet(cfg.paths.interim)
    variants = variant_sources(cfg)
    records = select_sources(interim, list(cfg.dataset.sources), "dataset.sources")
    records, family_table = apply_family_map(records, {k: list(v) for k, v in cfg.families.items()})
    materials, conflicts = deduplicate(records, cfg.dataset.dedup_rule, cfg.dataset.label_threshold)
    composition_features = pd.read_parquet(cfg.paths.composition_features)
    frame, feature_names = attach_features(materials, composition_features, cfg.features.structural)
    save_dataset(frame, feature_names, cfg.paths.dataset)
    write_csv(conflicts, cfg.paths.duplicate_conflicts, float_format=None)
    summary = variant_summary(interim, variants, cfg.dataset.dedup_rule, cfg.dataset.label_threshold)
    metrics = {
        "variant": cfg.dataset.variant,
        "materials": int(len(frame)),
        "features": len(feature_names),
        "superionic": int(frame[C.LABEL].sum()),
        "superionic_fraction": round(float(frame[C.LABEL].mean()), 4),
        "conflicting_groups": int(frame[C.LABEL_CONFLICT].sum()),
        "families": int(frame[C.FAMILY].nunique()),
        "family_spellings_unmapped": int((family_table["status"] == UNMAPPED).sum()),
        "feature_missing_fraction": round(float(np.isnan(frame[feature_names].to_numpy(dtype=float)).mean()), 6),
    }
    write_json(metrics, cfg.paths.dataset_metrics)
    write_data_report(cfg, summary, conflicts, metrics, family_table, records)
    log.info("dataset %s: %d materials, %d features", cfg.dataset.variant, len(frame), len(feature_names))
    return StageResult(metrics, [cfg.paths.data_report, cfg.paths.duplicate_conflicts, cfg.paths.dataset_metrics])
