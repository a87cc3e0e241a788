"""Stage ``explore``: rank every composition of a doping space around a host.

``superionic explore`` (the DVC stage) reads the ``explore`` section of
params.yaml (conf/explore/). For your own host: ``superionic explore --spec
my_space.yaml -o out/`` with a file of the same keys, or the command line:

    superionic explore --host "Li3InCl6" --site "In:Zr,Hf,Sn4+:0:0.6:0.02" -o out/

Writes the whole ranked space (parquet), the top rows with nearest training
materials and the ensemble's cross-check (CSV), a probability-vs-dopant-level
figure with the measured compositions of the space marked, and a report.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from superionic import files
from superionic.data import columns as D
from superionic.explore import score as S
from superionic.explore.space import (
    COMPOSITION,
    N_DOPANTS,
    NONE,
    RADIUS_MISMATCH,
    SLOT_DOPANT,
    SLOT_LEVEL,
    DopingSpace,
    Enumeration,
    build_space,
    enumerate_space,
)
from superionic.reports.render import render
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

RANKED_CSV = "ranked.csv"
KNOWN_CSV = "known_compositions.csv"
METRICS_JSON = files.EXPLORE_METRICS
FIGURE = "dopant_map.png"
TEMPLATE = "explore.md.j2"
# rows of the ranked table the report shows
TOP_SHOWN = 20
# atomic-fraction tolerance for "this measured material is that grid point"
# (0.003 is about 0.05 atoms in an 18-atom formula unit)
MATCH_TOLERANCE = 0.003


@dataclass
class Exploration:
    space: DopingSpace
    enum: Enumeration
    ranked: pd.DataFrame
    known: pd.DataFrame
    faithfulness: dict[str, float]
    seconds: dict[str, float]


def explore(spec: Any, deployed: Any, ensemble: Any, train: pd.DataFrame, seed: int) -> Exploration:
    """Enumerate, featurise and rank the space; cross-check with the ensemble; place the measured materials."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    space = build_space(spec)
    enum = enumerate_space(space)
    seconds["enumerate"] = time.perf_counter() - start
    log.info("explore: %d compositions (%s dropped)", len(enum.design),
             ", ".join(f"{n} {why}" for why, n in enum.dropped.items() if n) or "none")
    mark = time.perf_counter()
    cd = S.descriptors(enum)
    X = S.model_inputs(cd, enum, deployed)
    seconds["featurize"] = time.perf_counter() - mark
    mark = time.perf_counter()
    ranked = S.rank_space(enum, X, deployed)
    seconds["rank"] = time.perf_counter() - mark
    mark = time.perf_counter()
    shown = min(int(spec["ranked_rows"]), len(ranked))
    ranked[S.NEAREST] = ""
    top_X = X.iloc[ranked[S.ENUM_ROW].to_numpy()[:shown]]
    ranked.loc[: shown - 1, S.NEAREST] = S.neighbours(top_X, deployed, train, int(spec["n_neighbors_shown"]))
    seconds["neighbours"] = time.perf_counter() - mark
    mark = time.perf_counter()
    scored, faithfulness = S.ensemble_check(ranked, cd, ensemble, int(spec["ensemble_top"]),
                                            int(spec["faithfulness_sample"]), seed, int(spec["n_jobs"]))
    for col in scored.columns:
        ranked[col] = scored[col].reindex(ranked.index)
    seconds["ensemble"] = time.perf_counter() - mark
    seconds["ensemble_rows"] = float(len(scored))
    # every training material on the grid marks its row (a rediscovery, not a new candidate);
    # the report and figure show the configured family's
    known = S.known_points(enum, ranked, train, MATCH_TOLERANCE)
    measured = known.groupby(S.ENUM_ROW)[S.KNOWN_SIGMA].max() if len(known) else pd.Series(dtype=float)
    ranked[S.MEASURED_SIGMA] = ranked[S.ENUM_ROW].map(measured)
    if spec.get("family") is not None and len(known):
        known = known[known[D.FAMILY] == spec["family"]].reset_index(drop=True)
    seconds["total"] = time.perf_counter() - start
    return Exploration(space, enum, ranked, known, faithfulness, seconds)


def rates(seconds: dict[str, float], n: int) -> dict[str, float]:
    """Compositions per minute: the fast path end to end, and the full ensemble alone."""
    fast = seconds["enumerate"] + seconds["featurize"] + seconds["rank"]
    return {"fast_path_per_minute": 60 * n / fast if fast else float("nan"),
            "ensemble_per_minute": 60 * seconds["ensemble_rows"] / seconds["ensemble"] if seconds["ensemble"] else 0.0}


def metrics(result: Exploration) -> dict[str, Any]:
    from superionic.classifier.generalize import ABSTAIN, IN_DOMAIN, P_CALIBRATED

    r = result.ranked
    known = result.known
    agree = float((known[S.KNOWN_LABEL] == (known[P_CALIBRATED] >= 0.5)).mean()) if len(known) else float("nan")
    return {
        "compositions": int(len(r)),
        "grid_size": result.space.size,
        "dropped": result.enum.dropped,
        "p_ge_0.5": int((r[P_CALIBRATED] >= 0.5).sum()),
        "p_ge_0.5_answered_in_domain": int(((r[P_CALIBRATED] >= 0.5) & ~r[ABSTAIN] & r[IN_DOMAIN]).sum()),
        "in_domain_share": float(r[IN_DOMAIN].mean()),
        "abstain_share": float(r[ABSTAIN].mean()),
        "best": {"composition": r[COMPOSITION].iloc[0], P_CALIBRATED: float(r[P_CALIBRATED].iloc[0])},
        "best_new": _best_new(r),
        "training_materials_on_grid": int(r[S.MEASURED_SIGMA].notna().sum()),
        "ensemble_check": result.faithfulness,
        "known_compositions": int(len(known)),
        "known_label_agreement": agree,
    }


def _best_new(ranked: pd.DataFrame) -> dict[str, Any]:
    """The highest-ranked composition that is not a training material, answered and in domain."""
    from superionic.classifier.generalize import ABSTAIN, IN_DOMAIN, P_CALIBRATED

    new = ranked[ranked[S.MEASURED_SIGMA].isna() & ~ranked[ABSTAIN] & ranked[IN_DOMAIN]]
    if new.empty:
        return {}
    row = new.iloc[0]
    return {"composition": row[COMPOSITION], S.RANK: int(row[S.RANK]), P_CALIBRATED: float(row[P_CALIBRATED])}


def plot_map(result: Exploration, path: Path, dpi: int = 110) -> Path:
    """P(superionic) against dopant amount, one panel per slot (other slots undoped), measured points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from superionic.io import PNG_METADATA, save_figure
    from superionic.classifier.generalize import P_CALIBRATED, P_SPREAD

    r, slots = result.ranked, result.space.slots
    fig, axes = plt.subplots(1, len(slots), figsize=(6.2 * len(slots), 4.6), squeeze=False, sharey=True)
    for k, (slot, ax) in enumerate(zip(slots, axes[0], strict=True), start=1):
        others = [SLOT_DOPANT.format(j) for j in range(1, len(slots) + 1) if j != k]
        alone = r[(r[others] == NONE).all(axis=1)] if others else r
        undoped = alone[alone[SLOT_DOPANT.format(k)] == NONE]
        palette = plt.get_cmap("tab10" if len(slot.dopants) <= 10 else "tab20")
        colors = [palette(i % palette.N) for i in range(len(slot.dopants))]
        for color, dopant in zip(colors, slot.dopants, strict=False):
            line = pd.concat([undoped, alone[alone[SLOT_DOPANT.format(k)] == dopant.label]])
            line = line.sort_values(SLOT_LEVEL.format(k))
            x, p = line[SLOT_LEVEL.format(k)].to_numpy(), line[P_CALIBRATED].to_numpy()
            ax.plot(x, p, color=color, lw=1.4, label=dopant.label)
            ax.fill_between(x, p - line[P_SPREAD], p + line[P_SPREAD], color=color, alpha=0.12, lw=0)
            if len(result.known):
                k_rows = result.known[(result.known[N_DOPANTS] == 1) & (result.known[SLOT_DOPANT.format(k)] == dopant.label)]
                for good, marker_face in ((1, color), (0, "white")):
                    pts = k_rows[k_rows[S.KNOWN_LABEL] == good]
                    ax.scatter(pts[SLOT_LEVEL.format(k)], pts[P_CALIBRATED], s=46, marker="o", zorder=3,
                               facecolors=marker_face, edgecolors=color, linewidths=1.5)
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xlabel(f"x: dopant on {slot.host} per formula unit ({result.space.host_formula})")
        ax.set_title(f"slot {k}: {slot.host}{slot.host_charge:+g} site", fontsize=10)
        ax.legend(fontsize=7, ncol=2, loc="best")
    axes[0][0].set_ylabel("calibrated P(σ ≥ 1e-4 S/cm)")
    fig.suptitle("Doping map (band: spread of the inner-fold models; circles: measured, filled = superionic)",
                 fontsize=10)
    fig.tight_layout()
    out = save_figure(fig, path, dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)
    return out


def context(result: Exploration, figures: dict[str, Any], spec: Any, figure_name: str = FIGURE) -> dict[str, Any]:
    """The report's data (explore.md.j2): the space, the top rows, the measured points and ``figures`` (metrics)."""
    from superionic.classifier.generalize import ABSTAIN, IN_DOMAIN, P_CALIBRATED, P_SPREAD

    space = result.space
    slots = [{"host": s.host, "host_charge": s.host_charge,
              "dopants": [{"label": d.label, "mismatch": m} for d, m in zip(s.dopants, s.mismatch, strict=True)],
              "excluded": [{"label": d, "mismatch": m} for d, m in s.excluded],
              "level_min": s.levels.min(), "level_max": s.levels.max(), "n_levels": len(s.levels)}
             for s in space.slots]
    top = result.ranked.head(TOP_SHOWN)[[S.RANK, COMPOSITION, P_CALIBRATED, P_SPREAD, ABSTAIN, IN_DOMAIN,
                                         S.P_ENSEMBLE, RADIUS_MISMATCH, S.MEASURED_SIGMA, S.NEAREST]]
    known = result.known
    return {
        "host_formula": space.host_formula,
        "charges": list(space.charges.items()),
        "compensation": space.compensation,
        "slots": slots,
        "max_radius_mismatch": spec.get("max_radius_mismatch"),
        "grid_size": space.size,
        "dropped": list(result.enum.dropped.items()),
        "figures": figures,
        "top": top,
        "table": spec["table"],
        "ranked_rows": spec["ranked_rows"],
        "report_dir": spec["report_dir"],
        "ranked_csv": RANKED_CSV,
        "n_known": len(known),
        "family": spec.get("family"),
        "match_tolerance": MATCH_TOLERANCE,
        "known": known.drop(columns=[S.ENUM_ROW, D.FAMILY]) if len(known) else known,
        "figure": f"{Path(spec['report_dir']).name}/{figure_name}",
    }


def write_outputs(result: Exploration, spec: Any) -> dict[str, Any]:
    from superionic.io import TABLE_DECIMALS, write_csv, write_json, write_parquet, write_text

    report_dir = Path(spec["report_dir"])
    figures = metrics(result)
    write_parquet(result.ranked.drop(columns=[S.NEAREST]), Path(spec["table"]))
    write_csv(result.ranked.head(int(spec["ranked_rows"])), report_dir / RANKED_CSV)
    write_csv(result.known, report_dir / KNOWN_CSV)
    write_json(figures, report_dir / METRICS_JSON, decimals=TABLE_DECIMALS)
    plot_map(result, report_dir / FIGURE)
    write_text(render(TEMPLATE, context(result, figures, spec, FIGURE)), Path(spec["report"]))
    return figures


def _load_models(cfg: Any, trust: bool = False) -> tuple[Any, Any]:
    from superionic.classifier.ensemble import Ensemble, load_verified
    from superionic.classifier.generalize import DeployedModel

    deployed = load_verified(cfg.generalize.model, DeployedModel, "generalize.model", "generalize", trust=trust)
    ensemble = load_verified(cfg.classifier.ensemble_model, Ensemble, "classifier.ensemble_model", "ensemble",
                             trust=trust)
    return deployed, ensemble


def _training_table(cfg: Any) -> pd.DataFrame:
    """The classifier's training rows in the order the models were fitted on."""
    from superionic.classifier.data import load

    return load(cfg.paths.dataset).frame


@stage("explore", sections=["explore"])
def run_stage(cfg: Any) -> StageResult:
    from omegaconf import OmegaConf

    deployed, ensemble = _load_models(cfg)
    train = _training_table(cfg)
    # enum names, not members: the spec is the same plain dict a user's --spec YAML gives
    spec = OmegaConf.to_container(cfg.explore, resolve=True, enum_to_str=True)
    result = explore(spec, deployed, ensemble, train, int(cfg.seed))
    figures = write_outputs(result, spec)
    speed = rates(result.seconds, len(result.ranked))
    log.info("explore: %d compositions ranked, %.0f per minute (fast path), ensemble %.0f per minute",
             len(result.ranked), speed["fast_path_per_minute"], speed["ensemble_per_minute"])
    # wall-clock figures go to MLflow only: the tracked outputs stay a function of the inputs
    return StageResult({**{f"seconds_{k}": v for k, v in result.seconds.items()}, **speed,
                        "compositions": figures["compositions"],
                        "known_label_agreement": figures["known_label_agreement"],
                        "spearman_sample": figures["ensemble_check"]["spearman_sample"]},
                       [spec["report"], spec["report_dir"]])


def _site(text: str) -> dict[str, Any]:
    """"Ge:Al,Ga:0:1:0.05" -> one sites entry."""
    parts = text.split(":")
    if len(parts) != 5:
        raise ValueError(f"--site {text!r}: write HOST:DOPANT[,DOPANT...]:START:STOP:STEP, e.g. Ge:Al,Ga:0:1:0.05")
    try:
        levels = [float(v) for v in parts[2:]]
    except ValueError as exc:
        raise ValueError(f"--site {text!r}: start, stop and step must be numbers") from exc
    return {"host": parts[0], "dopants": [d for d in parts[1].split(",") if d], "levels": levels}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="superionic explore", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", help="YAML file with the keys of conf/explore/*.yaml (default: params.yaml's explore)")
    parser.add_argument("--host", help="host formula (overrides the spec)")
    parser.add_argument("--site", action="append", help="HOST:DOPANTS:START:STOP:STEP, repeatable (replaces the spec's sites)")
    parser.add_argument("--compensation", help="li | site_vacancy | none")
    parser.add_argument("-o", "--output-dir", help="folder for the table, ranked CSV, figure and report")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    from omegaconf import OmegaConf

    from superionic.config import load_params

    cfg = load_params(args.params)
    if not any([args.spec, args.host, args.site, args.compensation, args.output_dir]):
        run_stage(cfg)
        return 0
    if not args.output_dir:
        print("error: give -o/--output-dir for your own space (the default outputs belong to the DVC stage)",
              file=sys.stderr)
        return 2
    spec = OmegaConf.to_container(cfg.explore, resolve=True, enum_to_str=True)
    # the configured family belongs to the configured host: your space names its own, or none
    spec["family"] = None
    try:
        if args.spec:
            user = OmegaConf.to_container(OmegaConf.load(args.spec), resolve=True)
            unknown = sorted(set(user) - set(spec))
            if unknown:
                raise ValueError(f"{args.spec}: unknown key(s) {unknown}; known: {sorted(spec)}")
            spec.update(user)
        if args.host:
            spec["host"] = args.host
        if args.site:
            spec["sites"] = [_site(s) for s in args.site]
        if args.compensation:
            spec["compensation"] = args.compensation
        out = Path(args.output_dir)
        spec.update(table=str(out / "space.parquet"), report_dir=str(out), report=str(out / "explore.md"))
        build_space(spec)  # a bad spec fails here, before any model is loaded
        deployed, ensemble = _load_models(cfg)
        result = explore(spec, deployed, ensemble, _training_table(cfg), int(cfg.seed))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    figures = write_outputs(result, spec)
    speed = rates(result.seconds, len(result.ranked))
    print(f"{figures['compositions']} compositions ranked ({speed['fast_path_per_minute']:.0f} per minute); "
          f"best {figures['best']['composition']} P={figures['best']['p_calibrated']:.3f} -> {out}")
    return 0
