"""Stage ``mp2024-pool``: every Li material of the complete 2024 Materials Project release.

Reads ``mp2024_energy_above_hull.csv.gz`` (153,235 materials, MP's own
E_hull) and ``mp2024_li_band_gap.csv`` (band gaps of the Li materials with
gap >= 0.5 eV and E_hull < 0.1 eV/atom). Li is detected on the parsed
composition; a regular expression on the formula only pre-selects the rows
to parse (an element token "Li" is never followed by a lower-case letter).

Band gap rule for a Li material absent from the gap file (the file's
coverage, :data:`superionic.screening.mpdata.GAP_FILE_MIN_GAP` /
``GAP_FILE_MAX_E_HULL``): with E_hull < 0.1 its gap is below 0.5 eV (it fails
any band-gap cut >= 0.5 eV); with E_hull >= 0.1 its gap is unknown.

Defect found here (not in the datasets README): the gap file lists *one
polymorph per formula* (4,580 distinct formulas in 4,582 rows), while the
pool has several polymorphs with E_hull < 0.1 for many formulas. The absence
rule is only valid when no polymorph of the formula is listed. A polymorph
whose formula is listed under another material id gets that polymorph's gap
as a proxy, flagged in ``band_gap_note`` (polymorph gaps usually differ by
far less than the 1 eV cut). Every case is counted; the gap stays NaN where
it is unknown or only bounded.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic import files
from superionic.screening import columns as C
from superionic.screening.anions import CLASSES
from superionic.io import TABLE_DECIMALS, report_path, write_csv, write_json, write_parquet
from superionic.screening.mpdata import GAP_FILE_MAX_E_HULL, GAP_FILE_MIN_GAP
from superionic.screening.pool import li_entries, parse_formula, task_id_sort_key
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

RELEASE_2024 = "mp2024"
GAP_FROM_FILE = "mp2024_li_band_gap"
GAP_BELOW_COVERAGE = f"absent from the gap file, E_hull < {GAP_FILE_MAX_E_HULL:g}: gap < {GAP_FILE_MIN_GAP:g} eV"
GAP_UNKNOWN = f"absent from the gap file, E_hull >= {GAP_FILE_MAX_E_HULL:g}: gap unknown"
GAP_FROM_POLYMORPH = "gap of the listed polymorph of the same formula (the gap file keeps one per formula)"
# short keys of the notes, for metrics (MLflow metric names allow no commas)
GAP_NOTE_KEYS = {
    GAP_FROM_FILE: "from_file",
    GAP_FROM_POLYMORPH: "from_polymorph",
    GAP_BELOW_COVERAGE: "below_coverage",
    GAP_UNKNOWN: "unknown",
}

POOL_2024_COLUMNS = [
    C.TASK_ID, C.FORMULA, C.REDUCED_FORMULA, C.CHEMSYS, C.N_ELEMENTS, C.NSITES,
    C.E_HULL, C.BAND_GAP, C.BAND_GAP_NOTE, C.ANION_CLASS, C.ANIONS,
]  # fmt: skip
METRICS_FILE = files.SCREEN_POOL2024_METRICS
UNPARSED_FILE = f"{files.SCREEN_MP2024_POOL_DIR}/pool2024_unparsed.csv"
# An element token "Li" followed by anything but a lower-case letter.
LI_TOKEN = r"Li(?![a-z])"


def assign_band_gaps(pool: pd.DataFrame, gaps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Band gap and its note for every pool row (rule in the module docstring)."""
    gap_of = gaps.set_index(C.GAP_ID)[C.GAP_BAND_GAP]
    listed = gaps.assign(**{C.REDUCED_FORMULA: gaps[C.GAP_FORMULA].map(lambda f: (parse_formula(f) or (f,))[0])})
    # two formulas appear twice: the lower-E_hull row speaks for the formula
    listed = listed.sort_values([C.REDUCED_FORMULA, C.GAP_E_HULL, C.GAP_ID]).drop_duplicates(C.REDUCED_FORMULA)
    gap_of_formula = listed.set_index(C.REDUCED_FORMULA)[C.GAP_BAND_GAP]
    in_file = pool[C.TASK_ID].isin(gap_of.index).to_numpy()
    formula_listed = pool[C.REDUCED_FORMULA].isin(gap_of_formula.index).to_numpy()
    covered = (pool[C.E_HULL] < GAP_FILE_MAX_E_HULL).to_numpy()
    proxy = ~in_file & formula_listed & covered
    gap = np.where(
        in_file,
        pool[C.TASK_ID].map(gap_of).to_numpy(dtype=float),
        np.where(proxy, pool[C.REDUCED_FORMULA].map(gap_of_formula).to_numpy(dtype=float), np.nan),
    )
    note = np.select(
        [in_file, proxy, covered], [GAP_FROM_FILE, GAP_FROM_POLYMORPH, GAP_BELOW_COVERAGE], default=GAP_UNKNOWN
    )
    return gap, note


def build_pool_2024(materials: pd.DataFrame, gaps: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The Li pool with E_hull and band gap, the unparsed Li rows, and gap-file checks."""
    maybe_li = materials[materials[C.RAW_FORMULA_2024].str.contains(LI_TOKEN, regex=True)]
    pool, bad = li_entries(maybe_li[C.RAW_MATERIAL_ID], maybe_li[C.RAW_FORMULA_2024])
    unparsed = maybe_li.loc[bad, [C.RAW_MATERIAL_ID, C.RAW_FORMULA_2024]].copy()
    unparsed[C.FAIL_REASON] = "pymatgen cannot parse the formula"
    pool[C.NSITES] = maybe_li.loc[pool.index, C.RAW_NSITES].to_numpy(dtype=int)
    pool[C.E_HULL] = maybe_li.loc[pool.index, C.RAW_E_ABOVE_HULL].to_numpy(dtype=float)
    pool[C.BAND_GAP], pool[C.BAND_GAP_NOTE] = assign_band_gaps(pool, gaps)
    pool = pool.sort_values(C.TASK_ID, key=task_id_sort_key).reset_index(drop=True)

    # The absence rule stands on the file's coverage: check it on the file itself.
    matched = gaps.merge(pool[[C.TASK_ID, C.E_HULL]], left_on=C.GAP_ID, right_on=C.TASK_ID, how="left")
    checks = {
        "gap_rows": len(gaps),
        "gap_file_formulas": int(gaps[C.GAP_FORMULA].nunique()),
        "gap_rows_not_in_li_pool": int(matched[C.TASK_ID].isna().sum()),
        "gap_rows_below_min_gap": int((gaps[C.GAP_BAND_GAP] < GAP_FILE_MIN_GAP).sum()),
        "gap_rows_at_or_above_max_e_hull": int((gaps[C.GAP_E_HULL] >= GAP_FILE_MAX_E_HULL).sum()),
        "gap_file_e_hull_max_abs_diff": float((matched[C.GAP_E_HULL] - matched[C.E_HULL]).abs().max()),
    }
    return pool[POOL_2024_COLUMNS], unparsed.reset_index(drop=True), checks


def pool_2024_metrics(materials: pd.DataFrame, pool: pd.DataFrame, unparsed: pd.DataFrame, checks: dict) -> dict:
    notes = pool[C.BAND_GAP_NOTE].value_counts()
    counts = pool[C.ANION_CLASS].value_counts()
    return {
        "n_materials": len(materials),
        "n_li_materials": len(pool),
        "n_li_formulas": int(pool[C.REDUCED_FORMULA].nunique()),
        "n_li_chemsys": int(pool[C.CHEMSYS].nunique()),
        "n_unparsed_li_formulas": len(unparsed),
        "n_on_hull": int((pool[C.E_HULL] <= 0.0).sum()),
        "band_gap": {key: int(notes.get(note, 0)) for note, key in GAP_NOTE_KEYS.items()},
        "gap_file": checks,
        "anion_class": {c: int(counts.get(c, 0)) for c in CLASSES},
    }


@stage("mp2024-pool", sections=["data_dir", "screen"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.screening.mpdata import read_mp2024_e_hull, read_mp2024_li_gaps

    screen = cfg.screen
    materials = read_mp2024_e_hull(cfg.data_dir)
    gaps = read_mp2024_li_gaps(cfg.data_dir)
    pool, unparsed, checks = build_pool_2024(materials, gaps)
    metrics = pool_2024_metrics(materials, pool, unparsed, checks)
    write_parquet(pool, screen.pool2024)
    outputs = [
        write_csv(unparsed, report_path(screen.report_dir, UNPARSED_FILE)),
        write_json(metrics, report_path(screen.report_dir, METRICS_FILE), decimals=TABLE_DECIMALS),
    ]
    log.info("mp2024 pool: %d Li materials of %d; band gaps: %s", len(pool), len(materials), metrics["band_gap"])
    return StageResult(metrics, outputs)
