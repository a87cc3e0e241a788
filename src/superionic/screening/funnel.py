"""Stage ``funnel``: the paper's four filters, in order, with counted reasons.

1. no transition metal (``screen.transition_metals``),
2. PBE band gap >= ``screen.band_gap_min`` (eV),
3. energy above hull <= ``screen.ehull_max`` (eV/atom); entries that are not
   the ground state of their composition have no energy in the snapshot and
   fail here with that reason,
4. oxidation voltage > ``screen.oxidation_voltage_min`` (V vs Li/Li+).

Every pool entry keeps a row with each filter's verdict, the first filter it
fails and why; the counts after each step sit beside the paper's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from pymatgen.core import Element

from superionic.screening import columns as C
from superionic.screening.anions import CLASSES
from superionic.screening.io import report_path, write_csv, write_json, write_parquet

log = logging.getLogger(__name__)

# Kang et al. 2023, Figure 2: Li materials of the (later) live database and
# the survivors of each filter. The snapshot here is older and smaller.
PAPER_COUNTS = {
    "pool": 20237,
    "no_transition_metal": 3190,
    "band_gap": 1859,
    "e_hull": 567,
    "v_ox": 468,
}
STEPS = ["pool", "no_transition_metal", "band_gap", "e_hull", "v_ox"]
PASS_COLUMNS = {
    "no_transition_metal": C.PASS_NO_TM,
    "band_gap": C.PASS_BAND_GAP,
    "e_hull": C.PASS_E_HULL,
    "v_ox": C.PASS_V_OX,
}
FUNNEL_COLUMNS = [
    C.TASK_ID, C.FORMULA, C.REDUCED_FORMULA, C.CHEMSYS, C.BAND_GAP, C.ANION_CLASS, C.ANIONS,
    C.GROUND_STATE, C.E_HULL, C.V_RED, C.V_OX, C.THERMO_NOTE, C.N_MISSING_PHASES, C.MISSING_PHASES,
    C.PASS_NO_TM, C.PASS_BAND_GAP, C.PASS_E_HULL, C.PASS_V_OX, C.SURVIVES, C.FAILED_AT, C.FAIL_REASON,
]  # fmt: skip
COUNTS_FILE = "funnel_counts.csv"
ANIONS_FILE = "funnel_anions.csv"
SURVIVORS_FILE = "funnel_survivors.csv"
METRICS_FILE = "funnel_metrics.json"
FIGURE_FILE = "funnel.png"


@dataclass(frozen=True)
class Thresholds:
    transition_metals: frozenset[str]
    band_gap_min: float
    ehull_max: float
    oxidation_voltage_min: float

    @classmethod
    def from_config(cls, screen: DictConfig) -> Thresholds:
        bad = [s for s in screen.transition_metals if not Element.is_valid_symbol(s)]
        if bad:
            raise ValueError(f"screen.transition_metals: not element symbols: {bad}")
        for key in ("band_gap_min", "ehull_max", "oxidation_voltage_min"):
            if not np.isfinite(float(screen[key])):
                raise ValueError(f"screen.{key} must be a finite number, got {screen[key]}")
        if screen.ehull_max < 0:
            raise ValueError(f"screen.ehull_max must be >= 0 eV/atom, got {screen.ehull_max}")
        return cls(
            transition_metals=frozenset(screen.transition_metals),
            band_gap_min=float(screen.band_gap_min),
            ehull_max=float(screen.ehull_max),
            oxidation_voltage_min=float(screen.oxidation_voltage_min),
        )


def merge_pool_thermo(pool: pd.DataFrame, thermo: pd.DataFrame) -> pd.DataFrame:
    thermo_only = [c for c in thermo.columns if c not in pool.columns or c == C.TASK_ID]
    merged = pool.merge(thermo[thermo_only], on=C.TASK_ID, how="left", validate="one_to_one")
    if merged[C.GROUND_STATE].isna().any():
        missing = merged.loc[merged[C.GROUND_STATE].isna(), C.TASK_ID].tolist()[:5]
        raise ValueError(f"pool entries without a thermo row (rerun `superionic thermo`): {missing}")
    return merged


def apply_filters(table: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """Each filter's verdict for every row, the first failure and its reason.

    ``table`` needs chemsys, band_gap, ground_state, e_hull, v_ox, thermo_note.
    """
    out = table.copy()
    tms = [sorted(set(s.split("-")) & t.transition_metals) for s in out[C.CHEMSYS]]
    out[C.PASS_NO_TM] = [not found for found in tms]
    out[C.PASS_BAND_GAP] = out[C.BAND_GAP].to_numpy(dtype=float) >= t.band_gap_min
    e_hull = out[C.E_HULL].to_numpy(dtype=float)
    ground = out[C.GROUND_STATE].to_numpy(dtype=bool)
    # NaN compares False: entries without an energy fail.
    out[C.PASS_E_HULL] = ground & (e_hull <= t.ehull_max)
    out[C.PASS_V_OX] = out[C.V_OX].to_numpy(dtype=float) > t.oxidation_voltage_min

    failed_at, reasons = [], []
    for i, row in enumerate(out.itertuples(index=False)):
        row = row._asdict()
        if not row[C.PASS_NO_TM]:
            failed_at.append("no_transition_metal")
            reasons.append("contains transition metal " + "-".join(tms[i]))
        elif not row[C.PASS_BAND_GAP]:
            failed_at.append("band_gap")
            reasons.append(f"band gap {row[C.BAND_GAP]:.3f} eV < {t.band_gap_min:g}")
        elif not row[C.PASS_E_HULL]:
            failed_at.append("e_hull")
            if row[C.GROUND_STATE]:
                reasons.append(f"E_hull {row[C.E_HULL]:.4f} eV/atom > {t.ehull_max:g}")
            else:
                reasons.append(row[C.THERMO_NOTE])
        elif not row[C.PASS_V_OX]:
            failed_at.append("v_ox")
            reasons.append(f"V_ox {row[C.V_OX]:.3f} V <= {t.oxidation_voltage_min:g}")
        else:
            failed_at.append("")
            reasons.append("")
    out[C.FAILED_AT] = failed_at
    out[C.FAIL_REASON] = reasons
    out[C.SURVIVES] = out[C.FAILED_AT] == ""
    return out


def funnel_counts(filtered: pd.DataFrame) -> pd.DataFrame:
    """Survivors after each step (cumulative), beside the paper's counts."""
    alive = np.ones(len(filtered), dtype=bool)
    rows = [{"step": "pool", "n": int(alive.sum())}]
    for step in STEPS[1:]:
        alive &= filtered[PASS_COLUMNS[step]].to_numpy(dtype=bool)
        rows.append({"step": step, "n": int(alive.sum())})
    counts = pd.DataFrame(rows)
    counts["n_formulas"] = [
        int(filtered.loc[_alive_after(filtered, step), C.REDUCED_FORMULA].nunique()) for step in STEPS
    ]
    counts["paper_n"] = [PAPER_COUNTS[s] for s in STEPS]
    counts["fraction_of_previous"] = counts["n"] / counts["n"].shift(1)
    counts["paper_fraction_of_previous"] = counts["paper_n"] / counts["paper_n"].shift(1)
    return counts


def _alive_after(filtered: pd.DataFrame, step: str) -> np.ndarray:
    alive = np.ones(len(filtered), dtype=bool)
    for name in STEPS[1 : STEPS.index(step) + 1]:
        alive &= filtered[PASS_COLUMNS[name]].to_numpy(dtype=bool)
    return alive


def anion_breakdown(filtered: pd.DataFrame) -> pd.DataFrame:
    """Anion classes of the pool and of the survivors after each step."""
    data = {"anion_class": CLASSES}
    for step in STEPS:
        counts = filtered.loc[_alive_after(filtered, step), C.ANION_CLASS].value_counts()
        data[step] = [int(counts.get(c, 0)) for c in CLASSES]
    return pd.DataFrame(data)


def plot_funnel(counts: pd.DataFrame, anions: pd.DataFrame, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(len(counts))
    left.bar(x - 0.2, counts["n"], width=0.4, label="this work (MP 2019 snapshot)")
    left.bar(x + 0.2, counts["paper_n"], width=0.4, label="Kang 2023")
    for xi, n in zip(x, counts["n"], strict=True):
        left.text(xi - 0.2, n, str(n), ha="center", va="bottom", fontsize=7)
    left.set_xticks(x, counts["step"], rotation=20, fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("Li materials remaining")
    left.set_title("screening funnel")
    left.legend(fontsize=8)
    final = anions[anions[STEPS[-1]] > 0]
    right.barh(final["anion_class"], final[STEPS[-1]])
    for y, n in enumerate(final[STEPS[-1]]):
        right.text(n, y, f" {n}", va="center", fontsize=8)
    right.set_xlabel("survivors")
    right.set_title("anion classes of the survivors")
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return path


def funnel_metrics(counts: pd.DataFrame, filtered: pd.DataFrame, anions: pd.DataFrame) -> dict:
    from superionic.screening.thermo import NOTE_KEYS

    failed = filtered[filtered[C.FAILED_AT] == "e_hull"]
    reasons = failed[C.GROUND_STATE].value_counts()
    notes = failed[C.THERMO_NOTE].value_counts()
    return {
        "e_hull_failures_by_note": {key: int(notes.get(note, 0)) for note, key in NOTE_KEYS.items()},
        "counts": {row.step: int(row.n) for row in counts.itertuples()},
        "paper_counts": dict(PAPER_COUNTS),
        "n_survivor_formulas": int(filtered.loc[filtered[C.SURVIVES], C.REDUCED_FORMULA].nunique()),
        "e_hull_failures_not_ground_state": int(reasons.get(False, 0)),
        "e_hull_failures_above_tolerance": int(reasons.get(True, 0)),
        "survivor_anions": {r.anion_class: int(r.v_ox) for r in anions.itertuples()},
    }


def run_stage(cfg: DictConfig) -> None:
    from superionic.tracking import log_artifacts, log_metrics, stage_run

    screen = cfg.screen
    thresholds = Thresholds.from_config(screen)
    with stage_run("funnel", cfg, sections=["screen"]):
        merged = merge_pool_thermo(pd.read_parquet(screen.pool), pd.read_parquet(screen.thermo))
        filtered = apply_filters(merged, thresholds)[FUNNEL_COLUMNS]
        counts = funnel_counts(filtered)
        anions = anion_breakdown(filtered)
        metrics = funnel_metrics(counts, filtered, anions)
        survivors = filtered[filtered[C.SURVIVES]]
        write_parquet(filtered, screen.funnel)
        outputs = [
            write_csv(counts, report_path(screen.report_dir, COUNTS_FILE)),
            write_csv(anions, report_path(screen.report_dir, ANIONS_FILE)),
            write_csv(survivors, report_path(screen.report_dir, SURVIVORS_FILE)),
            write_json(metrics, report_path(screen.report_dir, METRICS_FILE)),
            plot_funnel(counts, anions, report_path(screen.report_dir, FIGURE_FILE)),
        ]
        log_metrics(metrics)
        log_artifacts(outputs)
        log.info("funnel: %s", " -> ".join(str(n) for n in counts["n"]))
