"""Stage ``mp-pool``: every Li-containing Materials Project entry.

Reads ``mp2019_band_gap_all_polymorphs.csv`` (every structure, PBE band gap),
keeps the entries whose parsed composition contains Li, and adds elements,
chemical system and anion class (rule in :mod:`superionic.screening.anions`).
Formulas pymatgen cannot parse are counted and listed, never dropped silently.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import pandas as pd
from omegaconf import DictConfig
from pymatgen.core import Composition, Element

from superionic import files
from superionic.screening import columns as C
from superionic.screening.anions import CLASSES, classify_formula
from superionic.io import TABLE_DECIMALS, report_path, write_csv, write_json, write_parquet
from superionic.screening.mpdata import read_all_polymorphs
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

POOL_COLUMNS = [
    C.TASK_ID, C.FORMULA, C.REDUCED_FORMULA, C.CHEMSYS, C.N_ELEMENTS,
    C.BAND_GAP, C.ANION_CLASS, C.ANIONS,
]  # fmt: skip
METRICS_FILE = files.SCREEN_POOL_METRICS
UNPARSED_FILE = f"{files.SCREEN_MP_POOL_DIR}/pool_unparsed.csv"
LITHIUM = "Li"


@lru_cache(maxsize=None)
def parse_formula(formula: str) -> tuple[str, tuple[str, ...]] | None:
    """(reduced formula, sorted element symbols), or None when unparseable."""
    try:
        composition = Composition(formula)
    except (ValueError, KeyError) as error:
        log.debug("unparseable formula %r: %s", formula, error)
        return None
    # pymatgen reads unknown symbols ("NA", "Xx") as dummy species: reject them.
    if composition.num_atoms <= 0 or not all(isinstance(el, Element) for el in composition.elements):
        return None
    return composition.reduced_formula, tuple(sorted(str(el) for el in composition.elements))


def chemsys_of(elements: tuple[str, ...] | list[str]) -> str:
    return "-".join(sorted(elements))


def li_entries(ids: pd.Series, formulas: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """Parsed Li entries (id, formula, reduced formula, chemsys, anion class; the
    input index kept) and the mask of formulas pymatgen cannot read."""
    parsed = formulas.map(parse_formula)
    unparsed = parsed.isna()
    has_li = parsed.map(lambda p: p is not None and LITHIUM in p[1]).astype(bool)
    info = parsed[has_li]
    entries = pd.DataFrame(
        {
            C.TASK_ID: ids[has_li].to_numpy(),
            C.FORMULA: formulas[has_li].to_numpy(),
            C.REDUCED_FORMULA: [p[0] for p in info],
            C.CHEMSYS: [chemsys_of(p[1]) for p in info],
            C.N_ELEMENTS: [len(p[1]) for p in info],
        },
        index=info.index,
    )
    classes = [classify_formula(f) for f in entries[C.REDUCED_FORMULA]]
    entries[C.ANION_CLASS] = [c[0] for c in classes]
    entries[C.ANIONS] = [c[1] for c in classes]
    return entries, unparsed


def build_pool(polymorphs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Li-containing entries of the all-polymorphs table, and the unparsed rows."""
    pool, bad = li_entries(polymorphs[C.RAW_TASK_ID], polymorphs[C.RAW_PRETTY_FORMULA])
    unparsed = polymorphs.loc[bad, [C.RAW_TASK_ID, C.RAW_PRETTY_FORMULA]].copy()
    unparsed[C.FAIL_REASON] = "pymatgen cannot parse the formula"
    pool[C.BAND_GAP] = polymorphs.loc[pool.index, C.RAW_BAND_GAP].to_numpy(dtype=float)
    pool = pool.sort_values(C.TASK_ID, key=task_id_sort_key).reset_index(drop=True)
    return pool[POOL_COLUMNS], unparsed.reset_index(drop=True)


def task_id_sort_key(ids: pd.Series) -> pd.Series:
    """Sort "mp-123" / "mvc-45" numerically within each prefix."""
    parts = ids.str.extract(r"^(?P<prefix>[a-z]+)-(?P<number>\d+)$")
    if parts.isna().any().any():
        bad = ids[parts.isna().any(axis=1)].tolist()[:5]
        raise ValueError(f"unexpected task id format: {bad}")
    return parts["prefix"] + parts["number"].str.zfill(12)


def pool_metrics(polymorphs: pd.DataFrame, pool: pd.DataFrame, unparsed: pd.DataFrame) -> dict:
    counts = pool[C.ANION_CLASS].value_counts()
    return {
        "n_entries_all_polymorphs": len(polymorphs),
        "n_unparsed_formulas": len(unparsed),
        "n_li_entries": len(pool),
        "n_li_formulas": int(pool[C.REDUCED_FORMULA].nunique()),
        "n_li_chemsys": int(pool[C.CHEMSYS].nunique()),
        "anion_class": {c: int(counts.get(c, 0)) for c in CLASSES},
    }


@stage("mp-pool", sections=["data_dir", "screen"])
def run_stage(cfg: DictConfig) -> StageResult:
    screen = cfg.screen
    polymorphs = read_all_polymorphs(cfg.data_dir)
    pool, unparsed = build_pool(polymorphs)
    metrics = pool_metrics(polymorphs, pool, unparsed)
    write_parquet(pool, screen.pool)
    outputs = [
        write_csv(unparsed, report_path(screen.report_dir, UNPARSED_FILE)),
        write_json(metrics, report_path(screen.report_dir, METRICS_FILE), decimals=TABLE_DECIMALS),
    ]
    log.info("pool: %d Li entries of %d (%d unparsed)", len(pool), len(polymorphs), len(unparsed))
    return StageResult(metrics, outputs)
