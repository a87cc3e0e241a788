"""Stage ``funnel``: the paper's four filters on both releases, with counted reasons.

1. no transition metal (``screen.transition_metals``),
2. PBE band gap >= ``screen.band_gap_min`` (eV); a 2024 Li material absent
   from the gap file has a gap below 0.5 eV or an unknown one (rule in
   :mod:`superionic.screening.pool2024`) and fails with that reason,
3. energy above hull <= ``screen.ehull_max`` (eV/atom): MP's own value for
   2024; the own hull for 2019, where non-ground-state polymorphs have no
   energy and fail with that reason,
4. oxidation voltage > ``screen.oxidation_voltage_min`` (V vs Li/Li+), with
   the source of every V_ox (:mod:`superionic.screening.voltage`); a window
   that no source gives is *unknown*: listed on its own, neither passed nor
   silently dropped.

Both releases go through the same filters (one table, ``release`` column);
``screen.release`` picks the one the ranking uses. Counts after each step sit
beside the paper's, per anion class, and over the ``screen.ehull_sweep``
tolerances.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from pymatgen.core import Element

from superionic import files
from superionic.screening import columns as C
from superionic.screening.anions import CLASSES
from superionic.screening.config import Release
from superionic.io import PNG_METADATA, TABLE_DECIMALS, report_path, save_figure, write_csv, write_json, write_parquet
from superionic.screening.mpdata import GAP_FILE_MAX_E_HULL, GAP_FILE_MIN_GAP
from superionic.screening.columns import GGA_MISSING, SOURCE_GGA, SOURCE_UNKNOWN, V_OX_ERROR
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

STEPS = C.STEPS
PASS_COLUMNS = {
    "no_transition_metal": C.PASS_NO_TM,
    "band_gap": C.PASS_BAND_GAP,
    "e_hull": C.PASS_E_HULL,
    "v_ox": C.PASS_V_OX,
}
V_OX_PASS, V_OX_FAIL, V_OX_UNKNOWN = "pass", "fail", "unknown"
UNKNOWN_WINDOW_STEP = C.UNKNOWN_WINDOW_STEP
BAND_GAP_2019_NOTE = "mp2019_band_gap_all_polymorphs"

FUNNEL_COLUMNS = [
    C.RELEASE, C.TASK_ID, C.FORMULA, C.REDUCED_FORMULA, C.CHEMSYS, C.ANION_CLASS, C.ANIONS,
    C.BAND_GAP, C.BAND_GAP_NOTE, C.E_HULL, C.E_HULL_NOTE, C.V_RED, C.V_OX, C.V_OX_SOURCE, V_OX_ERROR,
    C.N_MISSING_PHASES, C.MISSING_PHASES,
    C.PASS_NO_TM, C.PASS_BAND_GAP, C.PASS_E_HULL, C.V_OX_STATUS, C.PASS_V_OX, C.SURVIVES,
    C.FAILED_AT, C.FAIL_REASON,
]  # fmt: skip
COUNTS_FILE = files.SCREEN_FUNNEL_COUNTS
ANIONS_FILE = files.SCREEN_FUNNEL_ANIONS
SURVIVORS_FILE = f"{files.SCREEN_FUNNEL_DIR}/funnel_survivors.csv"
UNKNOWN_FILE = f"{files.SCREEN_FUNNEL_DIR}/funnel_unknown_window.csv"
SWEEP_FILE = files.SCREEN_FUNNEL_SWEEP
METRICS_FILE = files.SCREEN_FUNNEL_METRICS
FIGURE_FILE = files.SCREEN_FUNNEL_FIGURE


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
        # The 2024 gap file covers gap >= 0.5 eV and E_hull < 0.1 eV/atom; outside
        # that a material's absence from it decides nothing.
        if screen.band_gap_min < GAP_FILE_MIN_GAP:
            raise ValueError(
                f"screen.band_gap_min must be >= {GAP_FILE_MIN_GAP} eV (the 2024 gap file's coverage), "
                f"got {screen.band_gap_min}"
            )
        for key, value in [("ehull_max", screen.ehull_max), *(("ehull_sweep", v) for v in screen.ehull_sweep)]:
            if not 0 <= float(value) < GAP_FILE_MAX_E_HULL:
                raise ValueError(
                    f"screen.{key} must be in [0, {GAP_FILE_MAX_E_HULL}) eV/atom (the 2024 gap file's "
                    f"coverage), got {value}"
                )
        return cls(
            transition_metals=frozenset(screen.transition_metals),
            band_gap_min=float(screen.band_gap_min),
            ehull_max=float(screen.ehull_max),
            oxidation_voltage_min=float(screen.oxidation_voltage_min),
        )


def input_2019(pool: pd.DataFrame, thermo: pd.DataFrame) -> pd.DataFrame:
    """The 2019 snapshot in the funnel's schema: own hulls and windows."""
    thermo_only = [c for c in thermo.columns if c not in pool.columns or c == C.TASK_ID]
    merged = pool.merge(thermo[thermo_only], on=C.TASK_ID, how="left", validate="one_to_one")
    if merged[C.GROUND_STATE].isna().any():
        missing = merged.loc[merged[C.GROUND_STATE].isna(), C.TASK_ID].tolist()[:5]
        raise ValueError(f"pool entries without a thermo row (rerun `superionic thermo`): {missing}")
    ground = merged[C.GROUND_STATE].to_numpy(dtype=bool)
    merged[C.RELEASE] = Release.mp2019.value
    merged[C.BAND_GAP_NOTE] = BAND_GAP_2019_NOTE
    merged[C.E_HULL_NOTE] = np.where(ground, "", merged[C.THERMO_NOTE])
    merged[C.V_OX_SOURCE] = np.where(merged[C.V_OX].notna(), SOURCE_GGA, SOURCE_UNKNOWN)
    merged[V_OX_ERROR] = np.nan
    return merged


def input_2024(pool: pd.DataFrame, voltage: pd.DataFrame) -> pd.DataFrame:
    """The 2024 release in the funnel's schema: MP's E_hull, V_ox by source."""
    by_formula = voltage.set_index(C.REDUCED_FORMULA)
    missing = sorted(set(pool[C.REDUCED_FORMULA]) - set(by_formula.index))
    if missing:
        raise ValueError(f"{len(missing)} pool formulas have no voltage row (rerun `superionic voltage`): {missing[:5]}")
    out = pool.copy()
    out[C.RELEASE] = Release.mp2024.value
    out[C.E_HULL_NOTE] = ""
    for column in (C.V_RED, C.V_OX, C.V_OX_SOURCE, V_OX_ERROR):
        out[column] = out[C.REDUCED_FORMULA].map(by_formula[column])
    # 2024 hull compositions of the system without a 2019 energy: why source 1 did not apply
    out[C.MISSING_PHASES] = out[C.REDUCED_FORMULA].map(by_formula[GGA_MISSING])
    out[C.N_MISSING_PHASES] = out[C.MISSING_PHASES].str.split().str.len().fillna(0).astype(int)
    return out


def apply_filters(table: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """Each filter's verdict for every row, the first failure and its reason (vectorised)."""
    out = table.copy()
    elements = out[C.CHEMSYS].str.split("-")
    tm_found = elements.map(lambda els: "-".join(e for e in els if e in t.transition_metals))
    out[C.PASS_NO_TM] = (tm_found == "").to_numpy()
    gap = out[C.BAND_GAP].to_numpy(dtype=float)
    e_hull = out[C.E_HULL].to_numpy(dtype=float)
    v_ox = out[C.V_OX].to_numpy(dtype=float)
    # An estimate with an error counts only when it clears the threshold by more than the error.
    error = np.nan_to_num(out[V_OX_ERROR].to_numpy(dtype=float), nan=0.0) if V_OX_ERROR in out else 0.0
    undecided = ~np.isnan(v_ox) & (np.abs(v_ox - t.oxidation_voltage_min) <= error)
    # NaN compares False: an unknown gap or E_hull fails, with its note as the reason.
    out[C.PASS_BAND_GAP] = gap >= t.band_gap_min
    out[C.PASS_E_HULL] = e_hull <= t.ehull_max
    out[C.V_OX_STATUS] = np.select(
        [np.isnan(v_ox) | undecided, v_ox > t.oxidation_voltage_min], [V_OX_UNKNOWN, V_OX_PASS], default=V_OX_FAIL
    )
    out[C.PASS_V_OX] = out[C.V_OX_STATUS] == V_OX_PASS

    no_tm = out[C.PASS_NO_TM].to_numpy()
    ok_gap = out[C.PASS_BAND_GAP].to_numpy()
    ok_hull = out[C.PASS_E_HULL].to_numpy()
    status = out[C.V_OX_STATUS].to_numpy()
    conditions = [~no_tm, ~ok_gap, ~ok_hull, status != V_OX_PASS]
    out[C.FAILED_AT] = np.select(conditions, STEPS[1:], default="")
    gap_text = pd.Series(gap).map("{:.3f}".format).to_numpy()
    hull_text = pd.Series(e_hull).map("{:.4f}".format).to_numpy()
    vox_text = pd.Series(v_ox).map("{:.3f}".format).to_numpy()
    source = out[C.V_OX_SOURCE].astype(str).to_numpy()
    reasons = [
        "contains transition metal " + tm_found.to_numpy(dtype=object),
        np.where(np.isnan(gap), out[C.BAND_GAP_NOTE].astype(str).to_numpy(),
                 "band gap " + gap_text + f" eV < {t.band_gap_min:g}"),
        np.where(np.isnan(e_hull), out[C.E_HULL_NOTE].astype(str).to_numpy(),
                 "E_hull " + hull_text + f" eV/atom > {t.ehull_max:g}"),
        np.select(
            [np.isnan(v_ox), status == V_OX_UNKNOWN],
            ["oxidation window unknown: no source gives it",
             "V_ox estimate " + vox_text + f" V within its error of {t.oxidation_voltage_min:g} (" + source + ")"],
            default="V_ox " + vox_text + f" V <= {t.oxidation_voltage_min:g} (" + source + ")",
        ),
    ]
    out[C.FAIL_REASON] = np.select(conditions, reasons, default="")
    out[C.SURVIVES] = out[C.FAILED_AT] == ""
    return out


def alive_after(filtered: pd.DataFrame, step: str) -> np.ndarray:
    alive = np.ones(len(filtered), dtype=bool)
    for name in STEPS[1 : STEPS.index(step) + 1]:
        alive &= filtered[PASS_COLUMNS[name]].to_numpy(dtype=bool)
    return alive


def unknown_window(filtered: pd.DataFrame) -> np.ndarray:
    """Rows that pass filters 1-3 and whose oxidation window no source gives."""
    return alive_after(filtered, "e_hull") & (filtered[C.V_OX_STATUS] == V_OX_UNKNOWN).to_numpy()


def funnel_counts(filtered: pd.DataFrame) -> pd.DataFrame:
    """Survivors after each step, materials and distinct formulas, and the unknown-window list."""
    rows = []
    for step in STEPS:
        alive = alive_after(filtered, step)
        rows.append({"step": step, "n": int(alive.sum()),
                     "n_formulas": int(filtered.loc[alive, C.REDUCED_FORMULA].nunique())})
    unknown = unknown_window(filtered)
    rows.append({"step": UNKNOWN_WINDOW_STEP, "n": int(unknown.sum()),
                 "n_formulas": int(filtered.loc[unknown, C.REDUCED_FORMULA].nunique())})
    return pd.DataFrame(rows)


def compare_releases(by_release: dict[str, pd.DataFrame], paper_counts: Mapping[str, int]) -> pd.DataFrame:
    """Counts per step for every release beside the paper's (``references.kang2023.funnel``), with
    step-to-step fractions."""
    table = pd.DataFrame({"step": [*STEPS, UNKNOWN_WINDOW_STEP]})
    for release, filtered in by_release.items():
        counts = funnel_counts(filtered)
        table[release] = counts["n"].to_numpy()
        table[f"{release}_formulas"] = counts["n_formulas"].to_numpy()
    table["paper"] = table["step"].map(dict(paper_counts)).astype("Int64")
    for name in [*by_release, "paper"]:
        main = table[name].iloc[: len(STEPS)].astype(float)
        table[f"{name}_fraction"] = pd.concat([main / main.shift(1), pd.Series([np.nan])], ignore_index=True)
    return table


def anion_breakdown(filtered: pd.DataFrame) -> pd.DataFrame:
    """Anion classes of the pool and of the survivors after each step."""
    data: dict[str, list] = {"anion_class": CLASSES}
    for step in STEPS:
        counts = filtered.loc[alive_after(filtered, step), C.ANION_CLASS].value_counts()
        data[step] = [int(counts.get(c, 0)) for c in CLASSES]
    counts = filtered.loc[unknown_window(filtered), C.ANION_CLASS].value_counts()
    data[UNKNOWN_WINDOW_STEP] = [int(counts.get(c, 0)) for c in CLASSES]
    return pd.DataFrame(data)


def tolerance_sweep(table: pd.DataFrame, t: Thresholds, tolerances: list[float]) -> pd.DataFrame:
    """Funnel counts at each E_hull tolerance (what `dvc exp run -S screen.ehull_max=...` gives)."""
    rows = []
    for tol in sorted(set(float(v) for v in tolerances)):
        counts = funnel_counts(apply_filters(table, dataclasses.replace(t, ehull_max=tol)))
        rows.append({"ehull_max": tol, **dict(zip(counts["step"], counts["n"], strict=True))})
    return pd.DataFrame(rows)


def plot_funnel(compare: pd.DataFrame, anions: pd.DataFrame, releases: list[str], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    main = compare.iloc[: len(STEPS)]
    series = [*releases, "paper"]
    width = 0.8 / len(series)
    x = np.arange(len(main))
    for i, name in enumerate(series):
        values = main[name].astype(float).to_numpy()
        offset = (i - (len(series) - 1) / 2) * width
        left.bar(x + offset, values, width=width, label=name)
        for xi, n in zip(x, values, strict=True):
            left.text(xi + offset, n, f"{int(n)}", ha="center", va="bottom", fontsize=6, rotation=90)
    left.set_xticks(x, main["step"], rotation=20, fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("Li materials remaining")
    left.set_title("screening funnel: MP 2024, MP 2019 snapshot, Kang 2023")
    left.legend(fontsize=8)
    final = anions[(anions[STEPS[-1]] > 0) | (anions[UNKNOWN_WINDOW_STEP] > 0)]
    y = np.arange(len(final))
    right.barh(y - 0.2, final[STEPS[-1]], height=0.4, label="survivors (V_ox known, passes)")
    right.barh(y + 0.2, final[UNKNOWN_WINDOW_STEP], height=0.4, label="window unknown")
    right.set_yticks(y, final["anion_class"])
    right.set_xlabel(f"materials ({releases[0]})")
    right.set_title("anion classes at the V_ox step")
    right.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def funnel_metrics(by_release: dict[str, pd.DataFrame], selected: str, paper_counts: Mapping[str, int]) -> dict:
    from superionic.screening.pool2024 import GAP_NOTE_KEYS

    NOTE_KEYS = {**GAP_NOTE_KEYS, BAND_GAP_2019_NOTE: "mp2019"}  # noqa: N806
    out: dict = {"release": selected, "paper_counts": dict(paper_counts)}
    for release, filtered in by_release.items():
        counts = funnel_counts(filtered)
        failed = filtered[filtered[C.FAILED_AT] == "e_hull"]
        out[release] = {
            "counts": dict(zip(counts["step"], counts["n"].astype(int), strict=True)),
            "band_gap_failures_by_note": {
                NOTE_KEYS.get(str(k), str(k)): int(v)
                for k, v in filtered.loc[filtered[C.FAILED_AT] == "band_gap", C.BAND_GAP_NOTE].value_counts().items()
            },
            "passing_band_gap_by_note": {
                NOTE_KEYS.get(str(k), str(k)): int(v)
                for k, v in filtered.loc[alive_after(filtered, "band_gap"), C.BAND_GAP_NOTE].value_counts().items()
            },
            "e_hull_failures_without_energy": int(failed[C.E_HULL].isna().sum()),
            "e_hull_failures_above_tolerance": int(failed[C.E_HULL].notna().sum()),
            "survivor_v_ox_sources": {
                str(k): int(v) for k, v in filtered.loc[filtered[C.SURVIVES], C.V_OX_SOURCE].value_counts().items()
            },
            "reached_v_ox_step_by_source": {
                str(k): int(v)
                for k, v in filtered.loc[alive_after(filtered, "e_hull"), C.V_OX_SOURCE].value_counts().items()
            },
            "n_survivors_with_missing_phases": int((filtered.loc[filtered[C.SURVIVES], C.N_MISSING_PHASES] > 0).sum()),
        }
    return out


@stage("funnel", sections=["screen", "references"])
def run_stage(cfg: DictConfig) -> StageResult:
    screen = cfg.screen
    thresholds = Thresholds.from_config(screen)
    selected = Release(screen.release).value
    paper_counts = OmegaConf.to_container(cfg.references.kang2023.funnel)
    inputs = {
        Release.mp2024.value: input_2024(pd.read_parquet(screen.pool2024), pd.read_parquet(screen.voltage)),
        Release.mp2019.value: input_2019(pd.read_parquet(screen.pool), pd.read_parquet(screen.thermo)),
    }
    # the selected release first: it leads every table and figure
    order = [selected, *[r for r in inputs if r != selected]]
    by_release = {r: apply_filters(inputs[r], thresholds)[FUNNEL_COLUMNS] for r in order}
    chosen = by_release[selected]
    compare = compare_releases(by_release, paper_counts)
    anions = pd.concat(
        [anion_breakdown(f).assign(**{C.RELEASE: r}) for r, f in by_release.items()], ignore_index=True
    )
    sweep = tolerance_sweep(inputs[selected], thresholds, list(screen.ehull_sweep))
    metrics = funnel_metrics(by_release, selected, paper_counts)
    write_parquet(pd.concat(by_release.values(), ignore_index=True), screen.funnel)
    outputs = [
        write_csv(compare, report_path(screen.report_dir, COUNTS_FILE)),
        write_csv(anions, report_path(screen.report_dir, ANIONS_FILE)),
        write_csv(chosen[chosen[C.SURVIVES]], report_path(screen.report_dir, SURVIVORS_FILE)),
        write_csv(chosen[unknown_window(chosen)], report_path(screen.report_dir, UNKNOWN_FILE)),
        write_csv(sweep, report_path(screen.report_dir, SWEEP_FILE)),
        write_json(metrics, report_path(screen.report_dir, METRICS_FILE), decimals=TABLE_DECIMALS),
        plot_funnel(compare, anions[anions[C.RELEASE] == selected], order, report_path(screen.report_dir, FIGURE_FILE)),
    ]
    for release, filtered in by_release.items():
        log.info("funnel %s: %s", release, " -> ".join(str(n) for n in funnel_counts(filtered)["n"]))
    return StageResult(metrics, outputs)
