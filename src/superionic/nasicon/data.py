"""``nasicon-data``: the Ouyang 2021 DFT data set, split, labelled and summarized.

Reads the authors' 3,104 / 777 split, checks it against the feature list, the
paper's own 2D descriptor files and the experimental compositions, holds out a
stratified validation share of the training split for the descriptor search,
and writes one tidy table (fit rows first, then validation, then test; each
sorted by composition) plus the statistics the data supports.

Stability groups: the paper separates ground states (E_hull <= 0), likely
synthesizable (0 < E_hull <= T*S_ideal) and unlikely (E_hull > T*S_ideal)
compounds. The released data holds only E_hull - T*S_ideal, so it separates
"ground state or likely synthesizable" (<= 0) from "unlikely" (> 0) and no
further; the metrics say so rather than guessing S_ideal.
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from pymatgen.core import Composition
from sklearn.model_selection import train_test_split

from superionic.io import write_json, write_parquet
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

SUBDIR = "nasicon"
TRAIN_FILE = "ouyang2021_train.csv"
TEST_FILE = "ouyang2021_test.csv"
TRAIN_2D_FILE = "ouyang2021_train_2D.csv"
TEST_2D_FILE = "ouyang2021_test_2D.csv"
FEATURE_NAMES_FILE = "ouyang2021_KeyFeatureNames.txt"
EXP_FILE = "ouyang2021_exp_comps.json"

COMP = "CompName"
RAW_TARGET = "NewEhullLst"
RAW_2D_TARGET = "Ehull"
PAPER_T1_RAW = "(cbrt(NNaLst)+(AnionChgStdLst)^2)"
PAPER_T2_RAW = "((EWaldSumLst)^2*(XWithNaLst*RDiffStdLst))"
NA_FEATURE = "NNaLst"

# Columns of the tidy table.
TARGET = "e_hull_minus_ts"  # meV/atom
ROLE = "role"  # fit / validation / test
SPLIT = "split"  # the authors' train / test
STABLE = "stable"
PAPER_T1 = "paper_t1"
PAPER_T2 = "paper_t2"
EXP_GROUP = "exp_group"  # "", reported, new
FAMILY = "polyanion"
NA_RICH = "na_rich"
ROLES = ("fit", "validation", "test")
EXP_KEYS = {"reported_exp_comps": "reported", "new_exp_comps": "new"}
POLYANION_CENTERS = ("P", "Si", "S")
# The 2D files store t1, t2 in single precision and the target to 1e-6.
TARGET_TOLERANCE = 1e-3


def read_feature_names(path: Path) -> list[str]:
    names = ast.literal_eval(path.read_text(encoding="utf-8").strip())
    if not isinstance(names, list) or not names or names[0] != RAW_TARGET:
        raise ValueError(f"{path}: expected a list starting with {RAW_TARGET!r}")
    return [str(n) for n in names[1:]]


def paper_descriptor(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The paper's t1, t2 evaluated from the primary features."""
    t1 = np.cbrt(frame["NNaLst"].to_numpy()) + frame["AnionChgStdLst"].to_numpy() ** 2
    t2 = frame["EWaldSumLst"].to_numpy() ** 2 * (
        frame["XWithNaLst"].to_numpy() * frame["RDiffStdLst"].to_numpy()
    )
    return t1, t2


def polyanion_family(formula: str) -> str:
    comp = Composition(formula)
    present = [el for el in POLYANION_CENTERS if comp[el] > 0]
    if not present:
        raise ValueError(f"{formula}: no P, Si or S polyanion centre")
    # "-" joins, not "+": the label becomes part of MLflow metric names.
    return "-".join(present)


def assemble(
    train: pd.DataFrame,
    test: pd.DataFrame,
    train_2d: pd.DataFrame,
    test_2d: pd.DataFrame,
    features: list[str],
    exp: dict[str, list[str]],
    stable_threshold: float,
    validation_fraction: float,
    na_rich_min: float,
    seed: int,
) -> tuple[pd.DataFrame, dict]:
    """Validate and join the raw tables; return the tidy table and its checks."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"nasicon.validation_fraction must be in (0, 1), got {validation_fraction}")
    checks: dict = {}
    parts = []
    for split, frame, frame_2d in (("train", train, train_2d), ("test", test, test_2d)):
        missing = [c for c in [COMP, RAW_TARGET, *features] if c not in frame.columns]
        if missing:
            raise ValueError(f"{split}: columns {missing} missing")
        extra = sorted(set(frame.columns) - {COMP, RAW_TARGET, *features})
        if extra:
            raise ValueError(f"{split}: unexpected columns {extra}")
        n_na = int(frame[[RAW_TARGET, *features]].isna().sum().sum())
        if n_na:
            raise ValueError(f"{split}: {n_na} missing values")
        for col in (PAPER_T1_RAW, PAPER_T2_RAW, RAW_2D_TARGET, COMP):
            if col not in frame_2d.columns:
                raise ValueError(f"{split} 2D file: column {col!r} missing")
        joined = frame.merge(frame_2d, on=COMP, how="left", validate="one_to_one")
        unmatched = int(joined[PAPER_T1_RAW].isna().sum())
        if unmatched or len(frame_2d) != len(frame):
            raise ValueError(f"{split}: {unmatched} compositions without a 2D-file row")
        dev = np.abs(joined[RAW_2D_TARGET] - joined[RAW_TARGET]).max()
        if dev > TARGET_TOLERANCE:
            raise ValueError(f"{split}: 2D-file Ehull differs from {RAW_TARGET} by {dev:.3g}")
        t1, t2 = paper_descriptor(joined)
        checks[split] = {
            "rows": len(frame),
            "max_target_deviation_2d_file": float(dev),
            "t1_max_rel_deviation": float(
                np.max(np.abs(t1 - joined[PAPER_T1_RAW]) / np.maximum(np.abs(t1), 1e-12))
            ),
            "t2_max_rel_deviation": float(
                np.max(np.abs(t2 - joined[PAPER_T2_RAW]) / np.maximum(np.abs(t2), 1e-12))
            ),
        }
        out = joined[[COMP, *features]].copy()
        out[TARGET] = joined[RAW_TARGET].to_numpy()
        out[PAPER_T1] = joined[PAPER_T1_RAW].to_numpy()
        out[PAPER_T2] = joined[PAPER_T2_RAW].to_numpy()
        out[SPLIT] = split
        parts.append(out)
    data = pd.concat(parts, ignore_index=True)
    dup = data[COMP][data[COMP].duplicated()].tolist()
    if dup:
        raise ValueError(f"compositions listed twice: {dup[:5]}")
    data[STABLE] = data[TARGET] <= stable_threshold
    data[FAMILY] = [polyanion_family(f) for f in data[COMP]]
    data[NA_RICH] = data[NA_FEATURE] >= na_rich_min

    data[EXP_GROUP] = ""
    for key, group in EXP_KEYS.items():
        comps = exp.get(key)
        if comps is None:
            raise ValueError(f"experimental file: key {key!r} missing")
        absent = sorted(set(comps) - set(data[COMP]))
        if absent:
            raise ValueError(f"experimental compositions not in the data: {absent}")
        data.loc[data[COMP].isin(comps), EXP_GROUP] = group

    # Stratified validation split of the authors' training rows (sorted first,
    # so the split depends on the seed only, not on the file order).
    train_rows = data[data[SPLIT] == "train"].sort_values(COMP)
    fit_idx, val_idx = train_test_split(
        train_rows.index.to_numpy(),
        test_size=validation_fraction,
        stratify=train_rows[STABLE].to_numpy(),
        random_state=seed,
    )
    data[ROLE] = "test"
    data.loc[fit_idx, ROLE] = "fit"
    data.loc[val_idx, ROLE] = "validation"
    data["_role_order"] = data[ROLE].map({r: i for i, r in enumerate(ROLES)})
    data = data.sort_values(["_role_order", COMP]).drop(columns="_role_order").reset_index(drop=True)
    return data, checks


def table1_statistics(data: pd.DataFrame) -> dict:
    """Counts and stable fractions the released data supports (per split, chemistry, Na)."""

    def summary(frame: pd.DataFrame) -> dict:
        y = frame[TARGET]
        return {
            "n": len(frame),
            "n_stable": int(frame[STABLE].sum()),
            "stable_fraction": round(float(frame[STABLE].mean()), 6) if len(frame) else 0.0,
            "target_median": round(float(y.median()), 6),
        }

    stats = {
        "all": summary(data),
        "by_split": {s: summary(g) for s, g in data.groupby(SPLIT, sort=True)},
        "by_role": {s: summary(g) for s, g in data.groupby(ROLE, sort=True)},
        "by_polyanion": {s: summary(g) for s, g in data.groupby(FAMILY, sort=True)},
        "by_na_content": {f"{k:g}": summary(g) for k, g in data.groupby(NA_FEATURE, sort=True)},
        "target_quantiles": {
            f"q{int(q * 100):02d}": round(float(data[TARGET].quantile(q)), 6)
            for q in (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
        },
        "stability_groups": {
            "available": ["stable (ground state or likely synthesizable)", "unlikely"],
            "not_separable": "ground state vs likely synthesizable: the data holds "
            "only E_hull - T*S_ideal, not E_hull and S_ideal separately",
        },
        "experimental": {
            g: int((data[EXP_GROUP] == g).sum()) for g in EXP_KEYS.values()
        },
    }
    return stats


def load_raw(data_dir: Path) -> dict:
    src = data_dir / SUBDIR
    return {
        "train": pd.read_csv(src / TRAIN_FILE),
        "test": pd.read_csv(src / TEST_FILE),
        "train_2d": pd.read_csv(src / TRAIN_2D_FILE),
        "test_2d": pd.read_csv(src / TEST_2D_FILE),
        "features": read_feature_names(src / FEATURE_NAMES_FILE),
        "exp": json.loads((src / EXP_FILE).read_text(encoding="utf-8")),
    }


def feature_names(data: pd.DataFrame) -> list[str]:
    """The primary feature columns of the tidy table, in file order."""
    skip = {COMP, TARGET, PAPER_T1, PAPER_T2, SPLIT, STABLE, FAMILY, NA_RICH, EXP_GROUP, ROLE}
    return [c for c in data.columns if c not in skip]


@stage("nasicon-data", sections=["data_dir", "seed", "nasicon"])
def run_stage(cfg: DictConfig) -> StageResult:
    n = cfg.nasicon
    raw = load_raw(Path(cfg.data_dir))
    data, checks = assemble(
        raw["train"], raw["test"], raw["train_2d"], raw["test_2d"], raw["features"],
        raw["exp"], float(n.stable_threshold), float(n.validation_fraction),
        float(n.na_rich_min), int(cfg.seed),
    )
    out = write_parquet(data, n.paths.data)
    metrics = {"checks": checks, "table1": table1_statistics(data)}
    write_json(metrics, n.paths.data_metrics)
    log.info("wrote %s (%d compositions)", out, len(data))
    return StageResult(metrics, [n.paths.data_metrics])
