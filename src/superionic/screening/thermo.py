"""Stage ``thermo``: energy above hull and Li stability window of every pool entry.

Known defect of the snapshot (not in the datasets README): 2,790 of the
87,085 compositions of the all-polymorphs file have no entry in the
formation-energy file, among them LiF, LiCl, LiBr, LiI, B2O3, P2O5, MgO,
CaO, ZrO2. Hulls built without them are too high where they would compete,
so every entry records the compositions of its own chemical system that are
missing (``missing_phases``), and the report counts how many survivors are
affected.

Only ground states (task ids present in ``mp2019_formation_energy.csv``, the
lowest-energy entry of each composition) have an energy in the snapshot, so
only they get E_hull and a window; every other polymorph is marked "not
ground state" (its E_hull is unknown and larger than its ground state's) and
fails the E_hull filter with that reason. Physics and method:
:mod:`superionic.screening.hull`. The windows are checked against Wang et al.
2024 (:mod:`superionic.screening.esw`).
"""

from __future__ import annotations

import logging
import time
from itertools import combinations

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from pymatgen.core import Composition

from superionic import files
from superionic.screening import columns as C
from superionic.screening.hull import LITHIUM, hull_and_windows
from superionic.io import TABLE_DECIMALS, report_path, write_csv, write_json, write_parquet
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

NOTE_ON_HULL = "on hull"
NOTE_ABOVE_HULL = "above hull: window is that of its decomposition products"
NOTE_NOT_GROUND_STATE = "not ground state: a lower-energy polymorph exists, energy not in snapshot"
NOTE_NO_COMPOSITION = "composition absent from the formation-energy file"
NOTE_ELEMENT = "elemental Li: reference at 0, no entry in the formation-energy file"

# short names of the notes for metrics (MLflow metric names allow no commas)
NOTE_KEYS = {
    NOTE_ON_HULL: "on_hull",
    NOTE_ABOVE_HULL: "above_hull",
    NOTE_NOT_GROUND_STATE: "not_ground_state",
    NOTE_NO_COMPOSITION: "composition_without_energy",
    NOTE_ELEMENT: "elemental_li",
}

THERMO_COLUMNS = [
    C.TASK_ID, C.FORMULA, C.REDUCED_FORMULA, C.CHEMSYS, C.GROUND_STATE,
    C.FORMATION_ENERGY, C.E_HULL, C.ON_HULL, C.V_RED, C.V_OX, C.THERMO_SYSTEM, C.THERMO_NOTE,
    C.N_MISSING_PHASES, C.MISSING_PHASES,
]  # fmt: skip
# how many of the most frequent missing compositions the metrics name
N_MISSING_REPORTED = 15
METRICS_FILE = files.SCREEN_THERMO_METRICS
SYSTEMS_FILE = f"{files.SCREEN_THERMO_DIR}/thermo_systems.csv"


def parse_amounts(compositions: pd.Series) -> list[dict[str, float]]:
    amounts = []
    for formula in compositions:
        composition = Composition(formula)
        amounts.append({str(el): float(amt) for el, amt in composition.items()})
    return amounts


def missing_compositions(all_formulas: pd.Series, formation_formulas: pd.Series) -> dict[frozenset[str], list[str]]:
    """Reduced formulas (not elements) of ``all_formulas`` without an energy, by element set."""
    known = {Composition(f).reduced_formula for f in formation_formulas}
    missing: dict[frozenset[str], list[str]] = {}
    for formula in sorted(set(all_formulas)):
        composition = Composition(formula)
        if len(composition.elements) < 2 or composition.reduced_formula in known:
            continue
        missing.setdefault(frozenset(str(el) for el in composition.elements), []).append(
            composition.reduced_formula
        )
    return {k: sorted(set(v)) for k, v in missing.items()}


def missing_in_system(chemsys: str, missing: dict[frozenset[str], list[str]]) -> list[str]:
    elements = chemsys.split("-")
    found = []
    for k in range(2, len(elements) + 1):
        for subset in combinations(elements, k):
            found.extend(missing.get(frozenset(subset), []))
    return sorted(found)


def compute_thermo(
    pool: pd.DataFrame,
    formation: pd.DataFrame,
    all_formulas: pd.Series | None = None,
    tol: float = 1e-6,
    n_jobs: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Thermo table aligned with ``pool`` and a per-phase-diagram summary.

    ``all_formulas``: reduced formulas of every MP structure (all chemistries),
    to record the compositions whose energy the snapshot lacks.
    """
    amounts = parse_amounts(formation[C.RAW_COMPOSITION])
    energies = formation[C.RAW_FORMATION_ENERGY].to_numpy(dtype=float)
    position_of = {tid: i for i, tid in enumerate(formation[C.RAW_TASK_ID])}
    reduced_in_formation = {Composition(c).reduced_formula for c in formation[C.RAW_COMPOSITION]}
    has_li = np.array([LITHIUM in a for a in amounts])
    query = np.flatnonzero(has_li)
    values, results = hull_and_windows(amounts, energies, query, tol=tol, n_jobs=n_jobs)
    by_position = {int(q): i for i, q in enumerate(query)}

    n = len(pool)
    table = pool[[C.TASK_ID, C.FORMULA, C.REDUCED_FORMULA, C.CHEMSYS]].copy()
    ground = np.zeros(n, dtype=bool)
    formation_energy = np.full(n, np.nan)
    e_hull = np.full(n, np.nan)
    mu_min = np.full(n, np.nan)
    mu_max = np.full(n, np.nan)
    system = np.full(n, "", dtype=object)
    note = np.full(n, "", dtype=object)
    for row, (tid, reduced, chemsys) in enumerate(
        zip(pool[C.TASK_ID], pool[C.REDUCED_FORMULA], pool[C.CHEMSYS], strict=True)
    ):
        position = position_of.get(tid)
        if position is None:
            if chemsys == LITHIUM:
                note[row] = NOTE_ELEMENT
            elif reduced in reduced_in_formation:
                note[row] = NOTE_NOT_GROUND_STATE
            else:
                note[row] = NOTE_NO_COMPOSITION
            continue
        slot = by_position[position]
        ground[row] = True
        formation_energy[row] = energies[position]
        e_hull[row] = values["e_hull"][slot]
        mu_min[row] = values["mu_li_min"][slot]
        mu_max[row] = values["mu_li_max"][slot]
        system[row] = values["system"][slot]
        note[row] = NOTE_ON_HULL if e_hull[row] <= 0.0 else NOTE_ABOVE_HULL
    table[C.GROUND_STATE] = ground
    table[C.FORMATION_ENERGY] = formation_energy
    table[C.E_HULL] = e_hull
    table[C.ON_HULL] = ground & (np.nan_to_num(e_hull, nan=np.inf) <= 0.0)
    # V = -mu_Li/e with mu_Li relative to Li metal; +0.0 turns -0.0 into 0.0.
    table[C.V_RED] = -mu_max + 0.0
    table[C.V_OX] = -mu_min + 0.0
    table[C.THERMO_SYSTEM] = system
    table[C.THERMO_NOTE] = note
    missing = missing_compositions(
        all_formulas if all_formulas is not None else pool[C.REDUCED_FORMULA], formation[C.RAW_COMPOSITION]
    )
    per_system = {s: missing_in_system(s, missing) for s in table[C.CHEMSYS].unique()}
    table[C.N_MISSING_PHASES] = [len(per_system[s]) for s in table[C.CHEMSYS]]
    table[C.MISSING_PHASES] = [" ".join(per_system[s]) for s in table[C.CHEMSYS]]
    missing_pool = set(formation[C.RAW_TASK_ID].to_numpy()[query]) - set(pool[C.TASK_ID])
    if missing_pool:
        raise ValueError(f"{len(missing_pool)} Li formation-energy entries are not in the pool: {sorted(missing_pool)[:5]}")
    systems = pd.DataFrame(
        {
            "system": ["-".join(r.elements) for r in results],
            "n_elements": [len(r.elements) for r in results],
            "n_entries": [r.n_entries for r in results],
            "n_facets": [r.n_facets for r in results],
            "n_li_evaluated": [len(r.query) for r in results],
        }
    ).sort_values("system", ignore_index=True)
    return table[THERMO_COLUMNS], systems


def thermo_metrics(table: pd.DataFrame, systems: pd.DataFrame, seconds: float) -> dict:
    notes = table[C.THERMO_NOTE].value_counts()
    ground = table[table[C.GROUND_STATE]]
    return {
        "n_pool": len(table),
        "n_ground_state": int(table[C.GROUND_STATE].sum()),
        "n_on_hull": int(table[C.ON_HULL].sum()),
        "notes": {NOTE_KEYS[k]: int(notes.get(k, 0)) for k in NOTE_KEYS},
        "n_phase_diagrams": len(systems),
        "max_elements_per_diagram": int(systems["n_elements"].max()),
        "max_entries_per_diagram": int(systems["n_entries"].max()),
        "n_facets_total": int(systems["n_facets"].sum()),
        "median_e_hull_ground_state": float(ground[C.E_HULL].median()),
        "median_v_ox_on_hull": float(table.loc[table[C.ON_HULL], C.V_OX].median()),
        "n_ground_state_with_missing_phases": int((ground[C.N_MISSING_PHASES] > 0).sum()),
        "n_on_hull_with_missing_phases": int((table[C.ON_HULL] & (table[C.N_MISSING_PHASES] > 0)).sum()),
        # missing compositions ranked by how many Li ground states they could affect
        "most_frequent_missing_phases": _most_frequent(ground[C.MISSING_PHASES], N_MISSING_REPORTED),
        "li_binaries_without_energy": sorted(
            table.loc[
                (table[C.THERMO_NOTE] == NOTE_NO_COMPOSITION) & (table[C.CHEMSYS].str.count("-") == 1),
                C.REDUCED_FORMULA,
            ].unique()
        ),
        "hull_and_window_seconds": seconds,
    }


def _most_frequent(names: pd.Series, n: int) -> dict[str, int]:
    counts = names[names != ""].str.split().explode().value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return {k: int(v) for k, v in ranked}


@stage("thermo", sections=["data_dir", "screen"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.screening.esw import compare_windows, plot_window_check
    from superionic.screening.mpdata import read_all_polymorphs, read_formation_energies, read_wang_esw
    from superionic.screening.pool import parse_formula

    screen = cfg.screen
    if screen.hull_tol < 0:
        raise ValueError(f"screen.hull_tol must be >= 0, got {screen.hull_tol}")
    if screen.n_jobs < 1:
        raise ValueError(f"screen.n_jobs must be >= 1, got {screen.n_jobs}")
    pool = pd.read_parquet(screen.pool)
    formation = read_formation_energies(cfg.data_dir)
    polymorphs = read_all_polymorphs(cfg.data_dir)
    all_formulas = polymorphs[C.RAW_PRETTY_FORMULA].map(parse_formula).dropna().map(lambda p: p[0])
    start = time.perf_counter()
    table, systems = compute_thermo(pool, formation, all_formulas, tol=screen.hull_tol, n_jobs=screen.n_jobs)
    seconds = time.perf_counter() - start
    metrics = thermo_metrics(table, systems, seconds)
    metrics["n_compositions_all_polymorphs"] = int(all_formulas.nunique())
    metrics["n_compositions_without_energy"] = int(
        sum(len(v) for v in missing_compositions(all_formulas, formation[C.RAW_COMPOSITION]).values())
    )
    matched, check = compare_windows(table, read_wang_esw(cfg.data_dir))
    metrics["wang2024_check"] = check
    write_parquet(table, screen.thermo)
    outputs = [
        write_csv(systems, report_path(screen.report_dir, SYSTEMS_FILE)),
        write_csv(matched, report_path(screen.report_dir, files.SCREEN_WANG_CHECK)),
        plot_window_check(matched, report_path(screen.report_dir, files.SCREEN_WANG_CHECK_FIGURE)),
    ]
    # The timing is informative, not a reproducible metric: log it to
    # MLflow only, keep the metrics file bit-identical between runs.
    logged = dict(metrics)
    metrics.pop("hull_and_window_seconds")
    outputs.append(write_json(metrics, report_path(screen.report_dir, METRICS_FILE), decimals=TABLE_DECIMALS))
    log.info("thermo: %d ground states, %d on hull, %.1f s", metrics["n_ground_state"], metrics["n_on_hull"], seconds)
    return StageResult(logged, outputs)
