"""Check of the computed stability windows against Wang et al. 2024.

Matching key: pymatgen reduced formula. Wang lists some formulas several
times (several ICSD entries); their windows are reduced to the median and the
spread is kept. Our side is the composition's ground state (one per formula
in the snapshot). Outliers get a rule-based hint at the likely cause.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from superionic.io import PNG_METADATA, save_figure
from superionic.screening import columns as C

WANG_OX_MEDIAN = C.WANG_V_OX
WANG_RED_MEDIAN = C.WANG_V_RED
WANG_N = "wang_n_rows"
WANG_OX_SPREAD = "wang_v_ox_spread"
DIFF_OX = C.DIFF_V_OX
DIFF_RED = C.DIFF_V_RED
HINT = C.HINT
N_WORST = 10
# Wang rows for one formula that disagree by more than this are "inconsistent".
SPREAD_TOL_V = 0.2


def _reduced(formula: str) -> str | None:
    try:
        return Composition(formula).reduced_formula
    except (ValueError, KeyError):
        return None


def wang_by_formula(wang: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Median windows per reduced formula, and the number of unparsed rows."""
    reduced = wang[C.WANG_FORMULA].map(_reduced)
    frame = wang.assign(**{C.REDUCED_FORMULA: reduced}).dropna(subset=[C.REDUCED_FORMULA])
    grouped = frame.groupby(C.REDUCED_FORMULA, sort=True)
    out = pd.DataFrame(
        {
            WANG_OX_MEDIAN: grouped[C.WANG_OX].median(),
            WANG_RED_MEDIAN: grouped[C.WANG_RED].median(),
            WANG_N: grouped.size(),
            WANG_OX_SPREAD: grouped[C.WANG_OX].max() - grouped[C.WANG_OX].min(),
        }
    ).reset_index()
    return out, int(reduced.isna().sum())


def _hint(row: pd.Series) -> str:
    if row[C.N_MISSING_PHASES] > 0:
        return f"{row[C.N_MISSING_PHASES]} competing phase(s) without energy in the snapshot: {row[C.MISSING_PHASES]}"
    if not row[C.ON_HULL]:
        return f"metastable in the 2019 snapshot (E_hull {row[C.E_HULL]:.3f} eV/atom): window of its decomposition products"
    if row[WANG_OX_SPREAD] > SPREAD_TOL_V:
        return f"Wang rows for this formula disagree by {row[WANG_OX_SPREAD]:.2f} V"
    if row[DIFF_OX] > 0:
        return "higher here: an oxidizing competing phase of the newer database is missing from the 2019 snapshot, or energies differ"
    return "lower here: a competing phase in the 2019 snapshot is absent or higher in Wang's database, or energies/corrections differ"


def window_stats(ours: pd.Series, theirs: pd.Series) -> dict[str, float]:
    if len(ours) < 2:
        return {"n": len(ours), "pearson_r": float("nan"), "mae_v": float("nan"), "median_abs_v": float("nan")}
    diff = ours - theirs
    return {
        "n": len(ours),
        "pearson_r": float(np.corrcoef(ours, theirs)[0, 1]),
        "mae_v": float(diff.abs().mean()),
        "median_abs_v": float(diff.abs().median()),
        "mean_diff_v": float(diff.mean()),
        "within_0p1_v": float((diff.abs() <= 0.1).mean()),
    }


def compare_windows(thermo: pd.DataFrame, wang: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Formulas in both, with both windows, and summary statistics."""
    ours = thermo.loc[
        thermo[C.GROUND_STATE],
        [C.TASK_ID, C.REDUCED_FORMULA, C.E_HULL, C.ON_HULL, C.V_RED, C.V_OX, C.THERMO_SYSTEM,
         C.N_MISSING_PHASES, C.MISSING_PHASES],
    ]
    theirs, n_unparsed = wang_by_formula(wang)
    matched = ours.merge(theirs, on=C.REDUCED_FORMULA, how="inner", validate="one_to_one")
    matched[DIFF_OX] = matched[C.V_OX] - matched[WANG_OX_MEDIAN]
    matched[DIFF_RED] = matched[C.V_RED] - matched[WANG_RED_MEDIAN]
    matched[HINT] = matched.apply(_hint, axis=1) if len(matched) else pd.Series(dtype=str)
    matched = matched.sort_values(C.REDUCED_FORMULA, ignore_index=True)
    on_hull = matched[matched[C.ON_HULL]]
    # on the hull and no competing composition missing from the snapshot
    complete = on_hull[on_hull[C.N_MISSING_PHASES] == 0]
    check = {
        "n_wang_rows": len(wang),
        "n_wang_unparsed": n_unparsed,
        "n_wang_formulas": len(theirs),
        "n_matched": len(matched),
        "n_matched_on_hull": len(on_hull),
        "v_ox_all": window_stats(matched[C.V_OX], matched[WANG_OX_MEDIAN]),
        "v_red_all": window_stats(matched[C.V_RED], matched[WANG_RED_MEDIAN]),
        "v_ox_on_hull": window_stats(on_hull[C.V_OX], on_hull[WANG_OX_MEDIAN]),
        "v_red_on_hull": window_stats(on_hull[C.V_RED], on_hull[WANG_RED_MEDIAN]),
        "n_matched_complete": len(complete),
        "v_ox_on_hull_complete": window_stats(complete[C.V_OX], complete[WANG_OX_MEDIAN]),
        "v_red_on_hull_complete": window_stats(complete[C.V_RED], complete[WANG_RED_MEDIAN]),
    }
    return matched, check


def worst_outliers(matched: pd.DataFrame, n: int = N_WORST) -> pd.DataFrame:
    order = matched[DIFF_OX].abs().sort_values(ascending=False, kind="mergesort").index
    return matched.loc[order[:n]]


def plot_window_check(matched: pd.DataFrame, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    complete = (matched[C.N_MISSING_PHASES] == 0).to_numpy(dtype=bool)
    hull = matched[C.ON_HULL].to_numpy(dtype=bool)
    groups = (
        (hull & complete, "o", "on hull, no competitor missing"),
        (hull & ~complete, "o", "on hull, competitor(s) missing"),
        (~hull, "x", "above hull (2019)"),
    )
    for ax, ours, theirs, title in (
        (axes[0], C.V_OX, WANG_OX_MEDIAN, "oxidation limit"),
        (axes[1], C.V_RED, WANG_RED_MEDIAN, "reduction limit"),
    ):
        # Windows blown up by missing competitors would squash the plot:
        # clip them at the top edge and say how many.
        top = float(np.nanmax([matched[theirs].max(), 1.0])) + 1.5
        y = matched[ours].clip(upper=top)
        for mask, marker, label in groups:
            ax.scatter(matched.loc[mask, theirs], y[mask], s=9, alpha=0.6, marker=marker, label=label)
        ax.plot([0, top], [0, top], color="grey", lw=0.8)
        n_clipped = int((matched[ours] > top).sum())
        if n_clipped:
            ax.text(0.02, 0.97, f"{n_clipped} above {top:.1f} V drawn at the edge", transform=ax.transAxes,
                    va="top", fontsize=8)
        ax.set_xlabel("Wang 2024 (V vs Li/Li+)")
        ax.set_ylabel("this work, MP 2019 (V vs Li/Li+)")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=120, metadata=PNG_METADATA)
    plt.close(fig)
    return path
