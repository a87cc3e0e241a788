"""Stage ``screen-report``: ``reports/screening.md`` from the stage outputs.

:func:`context` reads the files the screening stages wrote and returns them as
plain data (metrics, tables, the paths the report links); the template
``screening.md.j2`` formats them with the shared filters of
:mod:`superionic.reports.render`. The paper's published counts come from
``references.kang2023`` in the configuration, with their citation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from superionic import files
from superionic.data.columns import ABSTAIN, P_CALIBRATED
from superionic.reports.render import link
from superionic.reports.render import render as render_template
from superionic.screening import columns as C
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

TEMPLATE = "screening.md.j2"
N_WORST_WINDOWS = 6  # worst V_ox disagreements with Wang 2024 shown
N_AGREEMENT = 5  # largest differences of V_ox sources 1 and 2 shown
N_UNKNOWN_WINDOW = 10  # best-ranked materials of the undecided-window list shown
# The ranked tables' columns; the undecided-window table drops the last (nearest training materials).
SHOW_COLUMNS = [C.RANK, C.TASK_ID, C.FORMULA, C.ANION_CLASS, C.E_HULL, C.V_OX, C.V_OX_SOURCE, C.P, C.P_STD,
                C.P_LOW, C.P_HIGH, P_CALIBRATED, ABSTAIN, C.AD_FLAG, C.STATUS, C.NEIGHBORS]
KNOWN_COLUMNS = ["formula", C.TASK_ID, "n_polymorphs", C.E_HULL, C.BAND_GAP, C.V_OX, C.V_OX_SOURCE, "fate",
                 "p_main", C.P_REFIT, "in_training"]


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _largest_abs(frame: pd.DataFrame, column: str, n: int, **sort: Any) -> pd.DataFrame:
    """The ``n`` rows of largest |column|, largest first."""
    return frame.loc[frame[column].abs().sort_values(ascending=False, **sort).index[:n]]


def _ranked(frame: pd.DataFrame, columns: list[str], n: int) -> pd.DataFrame:
    return frame[columns].head(n).rename(columns={C.TASK_ID: "MP id"})


def context(cfg: DictConfig) -> dict[str, Any]:
    """Everything screening.md.j2 shows, as plain data read from the stage outputs (no formatting)."""
    screen = cfg.screen
    d = Path(screen.report_dir)
    metrics = {name: _json(d / f) for name, f in (
        ("pool", files.SCREEN_POOL_METRICS), ("pool2024", files.SCREEN_POOL2024_METRICS),
        ("thermo", files.SCREEN_THERMO_METRICS), ("voltage", files.SCREEN_VOLTAGE_METRICS),
        ("funnel", files.SCREEN_FUNNEL_METRICS), ("predict", files.SCREEN_PREDICT_METRICS),
        ("rediscovery", files.SCREEN_REDISCOVERY_METRICS))}
    if any(metrics[k] is None for k in ("pool", "pool2024", "thermo", "voltage", "funnel")):
        raise FileNotFoundError(f"screening metrics missing in {d}: run `dvc repro funnel` first")
    base = Path(link(d, screen.report))
    links = {name: (base / name).as_posix() for name in (
        files.SCREEN_WANG_CHECK_FIGURE, files.SCREEN_FUNNEL_FIGURE, files.SCREEN_RANKED, files.SCREEN_MAP_FIGURE,
        files.SCREEN_VOTES_FIGURE, files.SCREEN_UNKNOWN_RANKED, files.SCREEN_MD_HANDOFF)}

    counts = _csv(d / files.SCREEN_FUNNEL_COUNTS)
    counts["paper"] = counts["paper"].astype("Int64")  # blank for the steps the paper does not count
    anions = _csv(d / files.SCREEN_FUNNEL_ANIONS)
    sweep = _csv(d / files.SCREEN_FUNNEL_SWEEP)
    if (d / files.SCREEN_RANKING_SWEEP).exists():
        ranking = _csv(d / files.SCREEN_RANKING_SWEEP).drop(columns=["survivors", "unknown_window"])
        sweep = sweep.merge(ranking, on="ehull_max", how="left")
    matched = _csv(d / files.SCREEN_WANG_CHECK)
    agreement = _csv(d / files.SCREEN_VOLTAGE_AGREEMENT)

    out: dict[str, Any] = {
        "screen": screen,
        "paper": OmegaConf.to_container(cfg.references.kang2023, resolve=True),
        "report_dir": str(d),
        "links": links,
        "files": files,
        "C": C,
        **metrics,
        "selected": metrics["funnel"]["release"],
        "counts": counts,
        "anions": [(release, anions[anions[C.RELEASE] == release].drop(columns=[C.RELEASE]))
                   for release in anions[C.RELEASE].unique()],
        "sweep": sweep,
        "worst_windows": _largest_abs(matched, C.DIFF_V_OX, N_WORST_WINDOWS, kind="mergesort")[
            [C.REDUCED_FORMULA, C.E_HULL, C.V_OX, C.WANG_V_OX, C.HINT]],
        "agreement": _largest_abs(agreement, C.DIFF_V_OX, N_AGREEMENT),
    }
    if metrics["predict"]:
        ranked = _csv(d / files.SCREEN_RANKED)
        unknown = _csv(d / files.SCREEN_UNKNOWN_RANKED)
        votes = _csv(d / files.SCREEN_VOTES)
        out.update({
            "members": [c for c in votes.columns if c != C.VOTES],
            "n_ranked": len(ranked),
            "ranked_top": _ranked(ranked, SHOW_COLUMNS, screen.top_n),
            "n_unknown": len(unknown),
            "unknown_top": _ranked(unknown, SHOW_COLUMNS[:-1], N_UNKNOWN_WINDOW),
        })
    if metrics["rediscovery"]:
        known = _csv(d / files.SCREEN_KNOWN_CONDUCTORS)
        out.update({
            "known": known[[c for c in KNOWN_COLUMNS if c in known.columns]],
            "n_fates": len(_csv(d / files.SCREEN_REDISCOVERY_FATES)),
            "at_k": sorted((int(k), v) for k, v in metrics["rediscovery"].get("at_k", {}).items()),
        })
    handoff = d / files.SCREEN_MD_HANDOFF
    out["n_md_handoff"] = len(_csv(handoff)) if handoff.exists() else 0
    return out


def render(cfg: DictConfig) -> str:
    return render_template(TEMPLATE, context(cfg))


@stage("screen-report", sections=["screen", "references"])
def run_stage(cfg: DictConfig) -> StageResult:
    screen = cfg.screen
    from superionic.io import write_text

    path = write_text(render(cfg), screen.report)
    log.info("wrote %s", path)
    return StageResult(artifacts=[path, screen.report_dir])
